"""Dedup benchmark: recall/precision against planted duplicates at scale, and speed vs datasketch.MinHashLSH.

    python bench/bench_dedup.py            # 1M records (several minutes on 2 cores)
    python bench/bench_dedup.py --n 100000 --compare-n 20000

Part 1 — N synthetic records (100-200 words, a common-word core plus a 50k-word vocabulary), of which
`--exact-rate` are exact copies of another record re-cased / re-spaced, and `--near-rate` are near copies (one
word replaced, two in records of 160+ words, sometimes re-cased), shuffled. Runs curate's exact dedup then its
near-dup step and scores them against the planted clusters:
  recall    = near-dup removals / (planted duplicates that survived exact dedup)
  precision = removals whose kept representative is in the same planted cluster / removals
plus wall time and peak RSS (ru_maxrss of this process, data generation included).

Part 2 — the first `--compare-n` records (default 100k): our near-dup step vs datasketch (MinHash + MinHashLSH
insert + query per record) with equal parameters: same word n-grams, permutations, bands x rows, threshold.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.curate.dedup import choose_bands, exact_keys, first_occurrence, near_duplicates  # noqa: E402
from distill.curate.text import normalize_words  # noqa: E402


def rss_gib(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process, GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def reset_peak() -> bool:
    """Start the peak-RSS count afresh (Linux: clear_refs 5), so the figure is the dedup's, not the generator's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def make_vocab(rng: np.random.Generator, n: int) -> pa.Array:
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    lens = rng.integers(3, 10, size=n)
    chars = letters[rng.integers(0, 26, size=int(lens.sum()))]
    offs = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lens, out=offs[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offs.tobytes()), pa.py_buffer(chars.tobytes()))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a counter-based random stream, so a base record's words are recomputed, never stored."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def synth(n: int, exact_rate: float, near_rate: float, seed: int = 0,
          chunk: int = 100_000) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(texts, planted cluster id per text, kind per text: 0 original, 1 exact copy, 2 near copy).

    Generated chunk by chunk in the final (shuffled) order, so memory holds the texts and little else.
    """
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng, 50_000).cast(pa.large_string())
    n_exact, n_near = int(n * exact_rate), int(n * near_rate)
    n_base = n - n_exact - n_near
    src = np.concatenate([np.arange(n_base), rng.integers(0, n_base, size=n_exact + n_near)])
    kind = np.concatenate([np.zeros(n_base, np.int8), np.ones(n_exact, np.int8), np.full(n_near, 2, np.int8)])
    order = rng.permutation(n)
    src, kind = src[order], kind[order]
    parts = []
    for s in range(0, n, chunk):
        b = src[s : s + chunk].astype(np.uint64)
        k = kind[s : s + chunk]
        m = len(b)
        lens = (100 + _mix(b * np.uint64(7919)) % np.uint64(100)).astype(np.int64)  # 100-199 words
        offs = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(lens, out=offs[1:])
        pos = (np.arange(int(offs[-1])) - np.repeat(offs[:-1], lens)).astype(np.uint64)
        r = _mix(np.repeat(b, lens) * np.uint64(1_000_003) + pos)
        words = np.where(r % np.uint64(10) < 3, (r >> np.uint64(8)) % np.uint64(200),
                         200 + (r >> np.uint64(8)) % np.uint64(49_800)).astype(np.int64)
        # near copies: replace 1 word (2 when the record has 160+ words) at random positions
        near = np.flatnonzero(k == 2)
        for extra in (0, 1):
            rows = near if extra == 0 else near[lens[near] >= 160]
            at = offs[rows] + (rng.random(len(rows)) * lens[rows]).astype(np.int64)
            words[at] = rng.integers(200, 50_000, size=len(rows))
        lists = pa.LargeListArray.from_arrays(pa.array(offs), vocab.take(pa.array(words)))
        texts = pc.binary_join(lists, pa.scalar(" ", pa.large_string()))
        # surface noise that normalization must see through: upper-case some copies, double the spaces of others
        noisy = k > 0
        upper = noisy & (rng.random(m) < 0.3)
        spaced = noisy & (rng.random(m) < 0.3)
        texts = pc.if_else(pa.array(upper), pc.utf8_upper(texts), texts)
        texts = pc.if_else(pa.array(spaced), pc.replace_substring(texts, " ", "  "), texts)
        parts.append(texts)
    return pa.chunked_array(parts).combine_chunks(), src, kind


def planted_jaccard(texts: pa.Array, cluster: np.ndarray, kind: np.ndarray, n: int, sample: int = 2000) -> str:
    """min / median / max exact Jaccard between a sample of near copies and their originals (what recall means)."""
    orig = {int(c): i for i, c in enumerate(cluster) if kind[i] == 0} if len(cluster) <= 50_000 else None
    near = np.flatnonzero(kind == 2)[:sample]
    if orig is None:
        want = set(cluster[near].tolist())
        orig = {int(cluster[i]): int(i) for i in np.flatnonzero(kind == 0) if int(cluster[i]) in want}
    words = lambda i: normalize_words(texts.slice(int(i), 1))[0].as_py()  # noqa: E731
    vals = []
    for i in near:
        a, b = words(i), words(orig[int(cluster[i])])
        sa = {tuple(a[j : j + n]) for j in range(len(a) - n + 1)}
        sb = {tuple(b[j : j + n]) for j in range(len(b) - n + 1)}
        vals.append(len(sa & sb) / len(sa | sb))
    v = np.array(vals)
    return f"min {v.min():.3f}, median {np.median(v):.3f}, max {v.max():.3f} over {len(v)} pairs"


def batches(texts: pa.Array, size: int = 50_000):
    return lambda: (texts.slice(s, min(size, len(texts) - s)) for s in range(0, len(texts), size))


def score(cluster: np.ndarray, keep: np.ndarray, rep: np.ndarray, alive: np.ndarray) -> tuple[float, float, int]:
    """(recall, precision, removed) of one dedup step over the `alive` records."""
    c = cluster[alive]
    members = np.bincount(c, minlength=cluster.max() + 1)
    should_remove = int((members[members > 0] - 1).sum())
    removed = np.flatnonzero(~keep)
    true_pos = int((c[removed] == c[rep[removed]]).sum())
    recall = true_pos / should_remove if should_remove else 1.0
    precision = true_pos / len(removed) if len(removed) else 1.0
    return recall, precision, len(removed)


def ours(texts: pa.Array, args: argparse.Namespace):
    return near_duplicates(batches(texts), len(texts), ngram=args.ngram, num_perm=args.num_perm,
                           threshold=args.threshold, bands=args.bands, rows=args.rows)


def datasketch_run(texts: pa.Array, args: argparse.Namespace, bands: int, rows: int) -> int:
    from datasketch import MinHash, MinHashLSH

    perms = bands * rows
    lsh = MinHashLSH(threshold=args.threshold, num_perm=perms, params=(bands, rows))
    flagged = 0
    words = normalize_words(texts)
    for i in range(len(texts)):
        w = words[i].as_py()
        grams = {" ".join(w[j : j + args.ngram]).encode() for j in range(max(1, len(w) - args.ngram + 1))}
        m = MinHash(num_perm=perms, seed=1)
        m.update_batch(list(grams))
        if lsh.query(m):
            flagged += 1
        lsh.insert(i, m)
    return flagged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="records in part 1")
    ap.add_argument("--compare-n", type=int, default=100_000, help="records in the datasketch comparison (0: skip)")
    ap.add_argument("--exact-rate", type=float, default=0.1)
    ap.add_argument("--near-rate", type=float, default=0.1)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--bands", type=int, default=None)
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args()
    if args.bands is None or args.rows is None:
        args.bands, args.rows = choose_bands(args.num_perm, args.threshold)
    print(f"params: {args.ngram}-word shingles, {args.bands} bands x {args.rows} rows "
          f"({args.bands * args.rows} permutations), threshold {args.threshold}")

    t = time.monotonic()
    texts, cluster, kind = synth(args.n, args.exact_rate, args.near_rate)
    print(f"generated {args.n:,} records in {time.monotonic() - t:.1f}s "
          f"({int((kind == 1).sum()):,} exact copies, {int((kind == 2).sum()):,} near copies planted); "
          f"RSS now {rss_gib('VmRSS'):.2f} GiB (texts {texts.nbytes / 2**30:.2f} GiB)")
    pa.default_memory_pool().release_unused()  # generator scratch space back to the OS before the peak is reset
    print(f"planted near copies vs their originals, true Jaccard of {args.ngram}-word shingle sets: "
          f"{planted_jaccard(texts, cluster, kind, args.ngram)}")
    fresh = reset_peak()

    t0 = time.monotonic()
    keys = np.concatenate([exact_keys(b) for b in batches(texts)()])
    keep_e, rep_e = first_occurrence(keys)
    t_exact = time.monotonic() - t0
    # for exact dedup only exact copies count as duplicates: each near copy is its own cluster here
    exact_cluster = np.where(kind == 2, cluster.max() + 1 + np.arange(args.n), cluster)
    r, p, k = score(exact_cluster, keep_e, rep_e, np.ones(args.n, dtype=bool))
    print(f"exact dedup: removed {k:,} in {t_exact:.1f}s (recall {r:.4f} of the removals planted copies call for, "
          f"precision {p:.4f})")
    alive = np.flatnonzero(keep_e)
    t1 = time.monotonic()
    # the survivors are read batch by batch (as curate reads them from its memory-mapped Arrow), never copied whole
    def alive_batches(size: int = 50_000):
        return (texts.take(pa.array(alive[s : s + size])) for s in range(0, len(alive), size))

    res = near_duplicates(alive_batches, len(alive), ngram=args.ngram, num_perm=args.num_perm,
                          threshold=args.threshold, bands=args.bands, rows=args.rows)
    t_near = time.monotonic() - t1
    recall, precision, removed = score(cluster[alive], res.keep, res.rep, np.ones(len(alive), dtype=bool))
    total = time.monotonic() - t0
    print(f"near dedup: removed {removed:,} of {len(alive):,} in {t_near:.1f}s "
          f"(prefiltered {res.prefiltered:,}, {res.candidate_pairs:,} candidate pairs, {res.verified_pairs:,} verified; "
          f"{ {k: round(v, 1) for k, v in res.timings.items()} })")
    print(f"RESULT n={args.n:,}: near-dup recall {recall:.4f} precision {precision:.4f} | exact+near wall "
          f"{total:.1f}s ({args.n / total:,.0f} docs/s) | peak RSS {rss_gib():.2f} GiB "
          f"({'dedup only, texts included' if fresh else 'whole process, generation included'})")

    if args.compare_n:
        m = min(args.compare_n, args.n)
        sub = texts.slice(0, m)
        t = time.monotonic()
        ours(sub, args)
        t_ours = time.monotonic() - t
        t = time.monotonic()
        datasketch_run(sub, args, args.bands, args.rows)
        t_ds = time.monotonic() - t
        print(f"RESULT compare n={m:,}: ours {m / t_ours:,.0f} docs/s ({t_ours:.1f}s), datasketch.MinHashLSH "
              f"{m / t_ds:,.0f} docs/s ({t_ds:.1f}s) -> ratio {t_ds / t_ours:.1f}x")


if __name__ == "__main__":
    main()
