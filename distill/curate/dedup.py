"""Exact dedup on normalized text, and near-duplicate removal with MinHash LSH (one kept per cluster).

Near-dup pipeline, chosen for recall first, then exactness, and out of core (texts are streamed twice, never held):
1. pass 1, per batch: word n-gram shingles (vectorized, `text.py`), rensa (Rust) MinHash signatures, one 64-bit
   key per band; each band's keys are appended to its own temp file (8 bytes x bands per text on disk);
2. banding, one band in memory at a time: texts with equal keys are candidate pairs. bands x rows are by default
   the cheapest banding with candidate probability >= 0.99 at the threshold and <= 0.15 at half of it (128 perms
   at 0.8 -> 12 x 5; datasketch's default 9x13 at 0.8 finds only ~40% of pairs at Jaccard 0.8);
3. pass 2: the candidates' shingle sets are rebuilt and every candidate pair is *verified by its exact shingle
   Jaccard* >= threshold (no estimate decides at the threshold, so precision is exact by construction);
4. verified pairs -> connected components; the first text of each component (dataset order) is kept.

`exact_dedup_step` and `near_dedup_step` are the two curate steps over these.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def choose_bands(num_perm: int, threshold: float, target: float = 0.99, far: float = 0.15) -> tuple[int, int]:
    """The cheapest banding (fewest permutations, <= num_perm) that makes a pair at the threshold a candidate with
    probability >= `target` while one at half the threshold stays one with probability <= `far` (candidates are
    verified exactly, so spurious ones cost time, not precision). 128 perms at 0.8 -> 12 x 5 (60 permutations:
    P = 0.9915 at 0.8, 0.12 at 0.4); the largest-rows choice 21 x 6 reaches 0.9983 with twice the hashing."""
    best: tuple[int, int] | None = None
    for r in range(1, num_perm + 1):
        for b in range(1, num_perm // r + 1):
            if candidate_probability(threshold, b, r) >= target:
                if candidate_probability(threshold / 2, b, r) <= far and (best is None or b * r < best[0] * best[1]):
                    best = (b, r)
                break
    if best is None:  # no banding within num_perm meets both: the most recall-first one that fits
        r = max((r for r in range(1, num_perm + 1) if candidate_probability(threshold, num_perm // r, r) >= target),
                default=1)
        best = (num_perm // r, r)
    return best


@dataclass
class NearDupResult:
    keep: np.ndarray  # bool per text
    rep: np.ndarray  # index of the kept text of its cluster (itself when kept)
    bands: int
    rows: int
    prefiltered: int = 0  # texts in at least one candidate pair (their shingle sets were rebuilt for verification)
    candidate_pairs: int = 0
    verified_pairs: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def shingles(texts: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint64 word n-gram hashes, int64 row offsets) of each text, in text order (may repeat within a row)."""
    wh, off = word_hashes(normalize_words(texts))
    return window_hashes(wh, off, ngram)


def shingle_sets(texts: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Each text's distinct n-gram hashes: (flat uint64, int64 row offsets); a row's order is its text's order.

    Distinct within a row via one sort of (row-tagged) hashes, several times faster than a two-key lexsort."""
    flat, off = shingles(texts, ngram)
    row = np.repeat(np.arange(len(off) - 1), np.diff(off))
    _, first = np.unique(flat ^ _splitmix_u64(row.astype(np.uint64) + np.uint64(1)), return_index=True)
    keep = np.zeros(len(flat), dtype=bool)
    keep[first] = True
    new_off = np.zeros(len(off), dtype=np.int64)
    np.cumsum(np.bincount(row[keep], minlength=len(off) - 1), out=new_off[1:])
    return flat[keep], new_off


def pair_jaccard(flat: np.ndarray, offsets: np.ndarray, pairs: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each (a, b) pair (rows of `shingle_sets`' output).

    Both sides' elements are tagged with their pair and sorted once; equal neighbours are the intersection.
    32-bit shingle hashes (what near dedup keeps, `_candidate_sets`) are tagged exactly, pair index in the high
    bits; 64-bit ones by XOR with a splitmix of the pair index (a collision between two different (pair, shingle)
    values is ~1e-8 at a billion elements).
    """
    out = np.zeros(len(pairs), dtype=np.float64)
    sizes = np.diff(offsets)
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        a, a_off = _gather_rows(flat, offsets, p[:, 0])
        b, b_off = _gather_rows(flat, offsets, p[:, 1])
        pid = np.concatenate([np.repeat(np.arange(len(p)), np.diff(a_off)),
                              np.repeat(np.arange(len(p)), np.diff(b_off))])
        if flat.dtype == np.uint32:
            ts = np.sort((pid.astype(np.uint64) << np.uint64(32)) | np.concatenate([a, b]).astype(np.uint64))
            hit = (ts[np.flatnonzero(ts[1:] == ts[:-1])] >> np.uint64(32)).astype(np.int64)
        else:
            with np.errstate(over="ignore"):
                tagged = np.concatenate([a, b]) ^ _splitmix_u64(pid.astype(np.uint64) + np.uint64(1))
            order = np.argsort(tagged)
            ts = tagged[order]
            hit = pid[order[np.flatnonzero(ts[1:] == ts[:-1]) + 1]]
        inter = np.bincount(hit, minlength=len(p)).astype(np.float64)
        union = sizes[p[:, 0]] + sizes[p[:, 1]] - inter
        out[s : s + chunk] = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return out


def _splitmix_u64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x * _MIX
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _gather_rows(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = offsets[rows + 1] - offsets[rows]
    new_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    idx = np.repeat(offsets[rows] - new_off[:-1], lengths) + np.arange(int(new_off[-1]))
    return flat[idx], new_off


def _bucket_pairs(key: np.ndarray) -> np.ndarray:
    """Candidate pairs (i < j) among texts with equal band keys: each bucket member is paired with the bucket's
    first member and with its predecessor, so a bucket of k texts costs 2k checks, not k^2 (a verified pair to
    either links the member into the cluster)."""
    n = len(key)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    same = np.empty(n, dtype=bool)
    same[0] = False
    same[1:] = ks[1:] == ks[:-1]
    if not same.any():
        return np.zeros((0, 2), dtype=np.int64)
    group_start = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
    members = np.flatnonzero(same)
    me = order[members]
    pairs = [np.stack([order[group_start[members]], me], 1)]
    not_leader_prev = group_start[members] != members - 1
    pairs.append(np.stack([order[members - 1], me], 1)[not_leader_prev])
    return np.sort(np.concatenate(pairs), axis=1).astype(np.int64)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) uint64: one hash per band of each signature (rows x uint32 values multiply-added)."""
    s = sig[:, : bands * rows].reshape(len(sig), bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        key = s[:, :, 0] + np.uint64(1)
        for c in range(1, rows):
            key = key * _MIX + s[:, :, c]
        key ^= np.arange(bands, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93)
    return np.ascontiguousarray(key.T)


def signatures(flat: np.ndarray, offsets: np.ndarray, perms: int, seed: int) -> np.ndarray:
    """(n, perms) uint32 MinHash signatures (rensa, Rust) of rows of shingle hashes."""
    import rensa

    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets.astype(np.uint64), perms, seed)
    n = len(offsets) - 1
    return np.fromiter(itertools.chain.from_iterable(m.to_rows()), dtype=np.uint32, count=n * perms).reshape(n, perms)


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
    executor: Any = None,
) -> NearDupResult:
    """Near-duplicate clusters over `total` texts yielded (in order) by `batches()` as Arrow string arrays.

    `batches()` is called twice (sign, then rebuild the candidates' shingle sets), so the texts are never held
    whole: memory is the band keys of one band at a time, the candidate pairs and the candidates' shingle sets.
    An `executor` with `band_pairs` (Ray) signs and bands instead, as a shuffle on band hashes (same pairs).
    """
    bands, rows = _banding(num_perm, threshold, bands, rows)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    sign = functools.partial(sign_batch, ngram=ngram, bands=bands, rows=rows, seed=seed)
    pairs = executor.band_pairs(batches(), sign, total) if executor is not None else None
    if pairs is None:
        with tempfile.TemporaryDirectory(prefix="distill-neardup-", dir=tmp_dir) as spill:
            band_files = _sign_to_band_files(batches, total, spill, sign, bands, on_progress=on_progress)
            timings["sign_s"] = time.monotonic() - t0
            pairs = _candidate_pairs(band_files, total)
    timings["sign_and_band_s"] = time.monotonic() - t0
    keep = np.ones(total, dtype=bool)
    rep = np.arange(total)
    if not len(pairs):
        return NearDupResult(keep, rep, bands, rows, timings=timings)
    t2 = time.monotonic()
    ids = np.unique(pairs)
    flat, off = _candidate_sets(batches, ids, ngram)
    local = np.searchsorted(ids, pairs)
    ok = pair_jaccard(flat, off, local) >= threshold
    del flat, off
    leader = _first_of_components(ids, local[ok])
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


def sign_batch(texts: pa.Array, *, ngram: int, bands: int, rows: int, seed: int) -> np.ndarray:
    """(bands, n) band keys of a batch of texts: shingle, MinHash-sign, hash each band's rows."""
    flat, off = shingles(texts, ngram)
    return band_keys(signatures(flat, off, bands * rows, seed), bands, rows)


def _sign_to_band_files(batches: Callable[[], Iterable[pa.Array]], total: int, spill: str,
                        sign: Callable[[pa.Array], np.ndarray], bands: int, *,
                        on_progress: Callable[[int], None] | None) -> list[str]:
    """Pass 1: shingle and sign each batch; each band's keys are appended to its own file (one band is read back
    at a time, so the index never sits in memory whole)."""
    paths = [os.path.join(spill, f"band{b}.u64") for b in range(bands)]
    files = [open(path, "wb") for path in paths]  # noqa: SIM115 - closed below
    seen = 0
    try:
        for texts in batches():
            keys = sign(texts)
            for b, f in enumerate(files):
                f.write(keys[b].tobytes())
            seen += len(texts)
            if on_progress:
                on_progress(len(texts))
    finally:
        for f in files:
            f.close()
    if seen != total:
        raise ValueError(f"near_duplicates: batches yielded {seen} texts, expected {total}")
    return paths


def _candidate_pairs(band_files: list[str], total: int) -> np.ndarray:
    """Pass over the bands, one at a time: the distinct (i < j) pairs sharing at least one band."""
    codes = np.zeros(0, dtype=np.int64)
    for path in band_files:
        key = np.fromfile(path, dtype=np.uint64)
        os.remove(path)
        p = _bucket_pairs(key)
        del key
        if len(p):
            codes = np.union1d(codes, p[:, 0] * total + p[:, 1])
    return np.stack([codes // total, codes % total], 1) if len(codes) else np.zeros((0, 2), dtype=np.int64)


def _candidate_sets(batches: Callable[[], Iterable[pa.Array]], ids: np.ndarray, ngram: int,
                    fold: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2: the shingle sets of the candidate texts `ids` (sorted), rebuilt from their batches.

    `fold`: kept as 32-bit hashes (the two halves XORed), half the memory of the largest global state; two distinct
    shingles of one pair collide with probability ~300^2 / 2^33 = 1e-5, moving its Jaccard by < 1%."""
    flats, sizes = [], []
    start = 0
    for texts in batches():
        lo, hi = np.searchsorted(ids, [start, start + len(texts)])
        if hi > lo:
            sub = texts.take(pa.array(ids[lo:hi] - start))
            f, o = shingle_sets(sub, ngram)
            flats.append((f ^ (f >> np.uint64(32))).astype(np.uint32) if fold else f)
            sizes.append(np.diff(o))
        start += len(texts)
    off = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(sizes), out=off[1:])
    return np.concatenate(flats), off


def _first_of_components(ids: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per id: the first id (dataset order) of its connected component over the verified pairs (local indices)."""
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
    keys = np.concatenate(rows.map_texts(cfg.on, idx, exact_keys)) if len(idx) else np.zeros(0, np.uint64)
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
                              on_progress=lambda k: progress.advance(task, k), executor=rows.executor)
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
