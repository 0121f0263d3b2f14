"""Exact dedup on normalized text, and near-duplicate removal with MinHash LSH (one kept per cluster).

Near-dup pipeline, chosen for recall first and then precision:
1. word n-gram shingles per text (vectorized, `text.py`), spilled to a temp file so pass 2 does not re-shingle;
2. rensa (Rust) MinHash signatures and rensa's LSH index, used as a fast *prefilter*: only texts that share a
   band with some other text are looked at again (usually a small fraction);
3. for those, numpy banding with our own bands x rows (by default the largest rows whose candidate probability
   at the threshold is >= 0.99; datasketch's default 9x13 at 0.8 finds only ~40% of pairs at Jaccard 0.8)
   gives candidate pairs, each *verified* by its signature-estimated Jaccard >= threshold (precision);
4. verified pairs -> connected components; the first text of each component (dataset order) is kept.

`exact_dedup_step` and `near_dedup_step` are the two curate steps over these.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill.curate.config import ExactDedupConfig, NearDedupConfig
from distill.curate.step import Outcome, Rows
from distill.curate.text import _MIX, normalize_words, window_hashes, word_hashes


def exact_keys(texts: pa.Array) -> np.ndarray:
    """64-bit key of each text after NFKC, lower-casing and whitespace collapsing ("A  b" == "a b").

    A Python loop over one batch: str.split/join and blake2b run in C and beat Arrow's regex replace here.
    """
    arr = pc.utf8_lower(pc.utf8_normalize(pc.fill_null(texts, ""), "NFKC"))
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(" ".join(s.split()).encode(), digest_size=8).digest(), "little")
         for s in arr.to_pylist()),
        dtype=np.uint64, count=len(arr))


def first_occurrence(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, index of the kept row each row duplicates): the first row of each key is kept."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rep = first[inverse]
    keep = rep == np.arange(len(keys))
    return keep, rep


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """P(two texts with Jaccard s share at least one band)."""
    return 1.0 - (1.0 - s**rows) ** bands


def choose_bands(num_perm: int, threshold: float, target: float = 0.99) -> tuple[int, int]:
    """The largest rows r (fewest spurious candidates) whose b = num_perm // r bands reach `target` at threshold."""
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1:
            break
        if candidate_probability(threshold, b, r) >= target:
            best = (b, r)
    return best


@dataclass
class NearDupResult:
    keep: np.ndarray  # bool per text
    rep: np.ndarray  # index of the kept text of its cluster (itself when kept)
    bands: int
    rows: int
    prefiltered: int = 0  # texts the rensa LSH flagged for a closer look
    candidate_pairs: int = 0
    verified_pairs: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _gather_rows(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = offsets[rows + 1] - offsets[rows]
    new_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    idx = np.repeat(offsets[rows] - new_off[:-1], lengths) + np.arange(int(new_off[-1]))
    return flat[idx], new_off


def _band_pairs(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Candidate pairs (i < j) sharing a band: each bucket member is paired with the bucket's first member and
    with its predecessor, so a bucket of k texts costs 2k checks, not k^2."""
    n = len(sig)
    out = []
    with np.errstate(over="ignore"):
        for b in range(bands):
            key = sig[:, b * rows].astype(np.uint64)
            for c in range(1, rows):
                key = key * _MIX + sig[:, b * rows + c].astype(np.uint64)
            order = np.argsort(key, kind="stable")
            ks = key[order]
            same = np.empty(n, dtype=bool)
            same[0] = False
            same[1:] = ks[1:] == ks[:-1]
            if not same.any():
                continue
            group_start = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
            members = np.flatnonzero(same)
            leader = order[group_start[members]]
            prev = order[members - 1]
            me = order[members]
            out.append(np.stack([leader, me], 1))
            out.append(np.stack([prev, me], 1)[group_start[members] != members - 1])
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(out)
    pairs = np.sort(pairs, axis=1)
    code = np.unique(pairs[:, 0].astype(np.int64) * n + pairs[:, 1])
    return np.stack([code // n, code % n], 1)


def _verify(sig: np.ndarray, pairs: np.ndarray, threshold: float, chunk: int = 100_000) -> np.ndarray:
    ok = np.zeros(len(pairs), dtype=bool)
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        est = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
        ok[s : s + chunk] = est >= threshold
    return ok


def near_duplicates(
    batches: Callable[[], Iterable[pa.Array]],
    total: int,
    *,
    ngram: int = 5,
    num_perm: int = 128,
    threshold: float = 0.8,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    on_progress: Callable[[int], None] | None = None,
    tmp_dir: str | Path | None = None,
) -> NearDupResult:
    """Near-duplicate clusters over `total` texts yielded (in order) by `batches()` as Arrow string arrays."""
    bands, rows = _banding(num_perm, threshold, bands, rows)
    timings: dict[str, float] = {}
    ids, sig = _flagged_signatures(batches, total, ngram=ngram, perms=bands * rows, bands=bands, threshold=threshold,
                                   seed=seed, on_progress=on_progress, tmp_dir=tmp_dir, timings=timings)
    keep = np.ones(total, dtype=bool)
    rep = np.arange(total)
    if not len(ids):
        return NearDupResult(keep, rep, bands, rows, timings=timings)
    t2 = time.monotonic()
    pairs = _band_pairs(sig, bands, rows)
    ok = _verify(sig, pairs, threshold)
    leader = _first_of_components(ids, pairs[ok])
    rep[ids] = leader
    keep[ids] = leader == ids
    timings["verify_and_cluster_s"] = time.monotonic() - t2
    return NearDupResult(keep, rep, bands, rows, prefiltered=len(ids), candidate_pairs=len(pairs),
                         verified_pairs=int(ok.sum()), timings=timings)


def _banding(num_perm: int, threshold: float, bands: int | None, rows: int | None) -> tuple[int, int]:
    """bands x rows: as configured, the missing one filled from num_perm, or both chosen for recall."""
    if bands is None or rows is None:
        b_auto, r_auto = choose_bands(num_perm, threshold)
        bands = bands or (num_perm // rows if rows else b_auto)
        rows = rows or (num_perm // bands if bands != b_auto else r_auto)
    if bands * rows > num_perm or bands < 1 or rows < 1:
        raise ValueError(f"bands x rows = {bands} x {rows} exceeds num_perm={num_perm}")
    return bands, rows


def _flagged_signatures(batches: Callable[[], Iterable[pa.Array]], total: int, *, ngram: int, perms: int, bands: int,
                        threshold: float, seed: int, on_progress: Callable[[int], None] | None,
                        tmp_dir: str | Path | None, timings: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, numpy signatures) of the texts rensa's LSH flags as sharing a band with another (steps 1-2)."""
    import rensa

    t0 = time.monotonic()
    lsh = rensa.RMinHashLSH(threshold, perms, bands)
    spill = tempfile.TemporaryDirectory(prefix="distill-neardup-", dir=tmp_dir)
    spilled: list[tuple[int, str, np.ndarray]] = []
    start = 0
    ids_parts, sig_parts = [], []
    try:
        # pass 1: shingle, sign, index
        for i, texts in enumerate(batches()):
            wh, off = word_hashes(normalize_words(texts))
            flat, soff = window_hashes(wh, off, ngram)
            m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, soff.astype(np.uint64), perms, seed)
            lsh.insert_matrix(m, start)
            path = os.path.join(spill.name, f"{i}.npy")
            np.save(path, flat)
            spilled.append((start, path, soff))
            start += len(texts)
            if on_progress:
                on_progress(len(texts))
        if start != total:
            raise ValueError(f"near_duplicates: batches yielded {start} texts, expected {total}")
        timings["sign_and_index_s"] = time.monotonic() - t0
        # pass 2: which texts share a band with another; numpy signatures for those only
        t1 = time.monotonic()
        for start_i, path, soff in spilled:
            flat = np.load(path)
            m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, soff.astype(np.uint64), perms, seed)
            flags = np.asarray(lsh.query_duplicate_flags_matrix(m), dtype=bool)
            rows_i = np.flatnonzero(flags)
            if len(rows_i):
                sub, sub_off = _gather_rows(flat, soff, rows_i)
                sm = rensa.RMinHash.digest_matrix_from_flat_token_hashes(sub, sub_off.astype(np.uint64), perms, seed)
                sig_parts.append(np.asarray(sm.to_rows(), dtype=np.uint32))
                ids_parts.append(rows_i + start_i)
            os.remove(path)
        timings["prefilter_s"] = time.monotonic() - t1
    finally:
        spill.cleanup()
    if not ids_parts:
        return np.zeros(0, dtype=np.int64), np.zeros((0, perms), dtype=np.uint32)
    return np.concatenate(ids_parts), np.concatenate(sig_parts)


def _first_of_components(ids: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per id: the first id (dataset order) of its connected component over the verified pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ids)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)  # local indices are in dataset order: first = smallest id
    return ids[first[labels]]


def exact_dedup_step(rows: Rows, alive: np.ndarray, cfg: ExactDedupConfig) -> Outcome:
    """Curate step: the first record of each normalized text (prompt, answer or both) stays."""
    idx = np.flatnonzero(alive)
    keys = np.concatenate([exact_keys(a) for a in rows.texts(cfg.on, idx)]) if len(idx) else np.zeros(0, np.uint64)
    keep_local, rep = first_occurrence(keys)
    keep = np.ones(len(rows), dtype=bool)
    keep[idx] = keep_local
    return Outcome(keep, {"on": cfg.on}, rows.duplicates_of(idx, keep_local, rep))


def near_dedup_step(rows: Rows, alive: np.ndarray, cfg: NearDedupConfig) -> Outcome:
    """Curate step: one record per near-duplicate cluster (the first) stays."""
    from distill.progress import make_progress

    idx = np.flatnonzero(alive)
    with make_progress(rows.progress) as progress:
        task = progress.add_task("curate: near-dup sign + index", total=len(idx), stats="")
        res = near_duplicates(lambda: rows.texts(cfg.on, idx), len(idx), ngram=cfg.ngram, num_perm=cfg.num_perm,
                              threshold=cfg.threshold, bands=cfg.bands, rows=cfg.rows, seed=cfg.seed,
                              on_progress=lambda k: progress.advance(task, k))
    keep = np.ones(len(rows), dtype=bool)
    keep[idx] = res.keep
    info = {"on": cfg.on, "bands": res.bands, "rows": res.rows, "threshold": cfg.threshold, "ngram": cfg.ngram,
            "candidate_pairs": res.candidate_pairs, "verified_pairs": res.verified_pairs,
            "note": f"MinHash LSH {res.bands}x{res.rows}, Jaccard >= {cfg.threshold}"}
    return Outcome(keep, info, rows.duplicates_of(idx, keep_local=res.keep, rep=res.rep))


def arrow_batches(table_column: pa.ChunkedArray | pa.Array, batch_size: int = 50_000) -> Iterator[pa.Array]:
    """Fixed-size slices of an Arrow column (zero-copy)."""
    n = len(table_column)
    for s in range(0, n, batch_size):
        chunk = table_column.slice(s, min(batch_size, n - s))
        yield chunk.combine_chunks() if isinstance(chunk, pa.ChunkedArray) else chunk
