"""Where curate's data-parallel work runs: in this process (`local`) or on a Ray cluster (`ray`), same results.

Steps never talk to an engine: they call the three operations below through `rows.executor`, and anything that
is global (exact-dup keys, candidate pairs, the clusters, the decontamination verdicts) is combined here in the
driver, in dataset order, so both executors keep exactly the same records.

- `map_records(records, fn, fn_kwargs, ...)`: the one batched per-record pass (derived text, token counts, every
  per-record filter's keep column). Local: `datasets.map` (num_proc). Ray: Ray Data `map_batches` over the
  records, written back in order to an Arrow file that is memory-mapped like the local cache.
- `map_texts(batches, fn, *args)`: `fn(*args, texts)` on each text batch, results in batch order (exact-dup keys,
  benchmark n-gram hits). Ray: one task per batch, `args` (the benchmark index) put in the object store once and
  broadcast; at most `2 x CPUs` batches in flight.
- `band_pairs(batches, sign, total)`: near-dup candidate pairs. Local: `None` (the near-dup step bands its own
  spilled band files, one band at a time). Ray: a shuffle on band hashes: map tasks sign a batch and split its
  (row, band, key) triples into partitions by key; reduce tasks pair rows with equal (band, key) exactly as the
  local banding does (bucket leader + predecessor, rows in dataset order), so the candidate set is identical.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from distill.errors import ConfigError


class LocalExecutor:
    """Everything in this process (datasets' num_proc for the per-record pass)."""

    name = "local"

    def map_records(self, records: Any, fn: Callable[..., dict[str, Any]], fn_kwargs: dict[str, Any], *,
                    num_proc: int | None, desc: str) -> Any:
        return records.map(fn, batched=True, batch_size=1000, num_proc=num_proc, fn_kwargs=fn_kwargs, desc=desc)

    def map_texts(self, batches: Iterable[pa.Array], fn: Callable[..., Any], *args: Any) -> list[Any]:
        return [fn(*args, texts) for texts in batches]

    def band_pairs(self, batches: Iterable[pa.Array], sign: Callable[[pa.Array], np.ndarray],
                   total: int) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass


def _with_outputs(table: pa.Table, fn: Callable[..., dict[str, Any]], fn_kwargs: dict[str, Any]) -> pa.Table:
    """A Ray batch (Arrow) -> the same rows plus `fn`'s derived columns (the local pass's function, unchanged)."""
    out = fn(table.to_pydict(), **fn_kwargs)
    for name, values in out.items():
        table = table.append_column(name, pa.array(values))
    return table


def _sign_and_partition(sign: Callable[[pa.Array], np.ndarray], start: int, texts: pa.Array,
                        parts: int) -> list[np.ndarray]:
    """Map side of the band shuffle: (row, band, key) triples of one batch, split by key into `parts`."""
    keys = sign(texts)  # (bands, n)
    bands, n = keys.shape
    row = np.tile(np.arange(start, start + n, dtype=np.int64), bands)
    band = np.repeat(np.arange(bands, dtype=np.int64), n)
    key = keys.reshape(-1)
    dest = (key % np.uint64(parts)).astype(np.int64)
    order = np.argsort(dest, kind="stable")
    bounds = np.searchsorted(dest[order], np.arange(parts + 1))
    trip = np.stack([row[order], band[order], key[order].view(np.int64)], 1)
    return [trip[bounds[p] : bounds[p + 1]] for p in range(parts)]


def _pairs_of_partition(total: int, *parts: np.ndarray) -> np.ndarray:
    """Reduce side: codes i * total + j of the candidate pairs among rows sharing a (band, key)."""
    from distill.curate.dedup import _bucket_pairs

    trip = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
    codes = [np.zeros(0, np.int64)]
    for b in np.unique(trip[:, 1]):
        sel = trip[trip[:, 1] == b]
        sel = sel[np.argsort(sel[:, 0], kind="stable")]  # dataset order within the band, as the local banding
        p = _bucket_pairs(sel[:, 2].view(np.uint64))
        if len(p):
            codes.append(sel[p[:, 0], 0] * total + sel[p[:, 1], 0])
    return np.unique(np.concatenate(codes))


class RayExecutor:
    """Curate's data-parallel work on a Ray cluster (`ray.init(address=...)`)."""

    name = "ray"

    def __init__(self, address: str | None):
        try:
            import ray
        except ImportError:
            raise ConfigError("curate.executor: ray needs the `scale` extra: pip install -e '.[scale]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            address = address or os.environ.get("RAY_ADDRESS") or None
            try:
                ray.init(address=address, log_to_driver=False, include_dashboard=False,
                         ignore_reinit_error=True)
            except ConnectionError as err:
                raise ConfigError(f"curate.ray_address: cannot reach a Ray cluster at {address!r} ({err})") from None
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.tmp = Path(tempfile.mkdtemp(prefix="distill-ray-"))

    def map_records(self, records: Any, fn: Callable[..., dict[str, Any]], fn_kwargs: dict[str, Any], *,
                    num_proc: int | None, desc: str) -> Any:
        from datasets import Dataset

        table = records.data.table
        refs = [self.ray.put(table.slice(s, 10_000)) for s in range(0, len(table), 10_000)]
        ds = self.ray.data.from_arrow_refs(refs).map_batches(
            _with_outputs, batch_format="pyarrow", batch_size=1000, fn_args=(fn, fn_kwargs))
        path = self.tmp / f"prepared-{len(list(self.tmp.iterdir()))}.arrow"
        writer, schema = None, None
        with pa.OSFile(str(path), "wb") as sink:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
                if writer is None:
                    schema = batch.schema
                    writer = pa.ipc.new_stream(sink, schema)
                writer.write_table(batch.cast(schema))
            if writer is not None:
                writer.close()
        return Dataset.from_file(str(path))

    def map_texts(self, batches: Iterable[pa.Array], fn: Callable[..., Any], *args: Any) -> list[Any]:
        remote = self.ray.remote(lambda a, t: fn(*a, t))
        args_ref = self.ray.put(args)
        return self._ordered(remote.remote(args_ref, texts) for texts in batches)

    def _ordered(self, submits: Iterable[Any]) -> list[Any]:
        """Results of the submitted tasks in submission order, with at most 2 x CPUs in flight."""
        results: dict[int, Any] = {}
        pending: dict[Any, int] = {}
        for i, ref in enumerate(submits):
            pending[ref] = i
            if len(pending) >= 2 * self.cpus:
                done, _ = self.ray.wait(list(pending), num_returns=1)
                results[pending.pop(done[0])] = self.ray.get(done[0])
        for ref, i in pending.items():
            results[i] = self.ray.get(ref)
        return [results[i] for i in range(len(results))]

    def band_pairs(self, batches: Iterable[pa.Array], sign: Callable[[pa.Array], np.ndarray],
                   total: int) -> np.ndarray:
        parts = max(2, self.cpus)
        mapper = self.ray.remote(num_returns=parts)(_sign_and_partition)
        reducer = self.ray.remote(_pairs_of_partition)
        outs, start = [], 0
        sign_ref = self.ray.put(sign)
        for texts in batches:
            refs = mapper.remote(sign_ref, start, texts, parts)
            outs.append(refs if isinstance(refs, list) else [refs])
            start += len(texts)
        codes = self.ray.get([reducer.remote(total, *[o[p] for o in outs]) for p in range(parts)])
        allc = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
        return np.stack([allc // total, allc % total], 1) if len(allc) else np.zeros((0, 2), dtype=np.int64)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, address: str | None = None) -> LocalExecutor | RayExecutor:
    return RayExecutor(address) if kind == "ray" else LocalExecutor()
