"""Dedup benchmark: recall/precision in bins of true Jaccard against planted near copies, out of core at scale,
and speed vs datasketch.MinHashLSH.

    python bench/bench_dedup.py                        # 1M records
    python bench/bench_dedup.py --n 100000 --compare-n 20000
    python bench/bench_dedup.py --n 1000000,3000000,10000000 --compare-n 0   # growth, one size after the other

Part 1 — N synthetic records (100-200 words, a common-word core plus a 50k-word vocabulary) generated chunk by chunk
to an Arrow IPC file (the texts are never in memory whole): `--exact-rate` are exact copies of another record
re-cased / re-spaced, `--near-rate` are near copies of a distinct original with k words replaced, k drawn so the
true Jaccard of their 5-word shingle sets spreads over 0.55-1.0, with extra mass just below the threshold (hard
negatives: related texts that must stay). Curate's exact dedup then its near-dup step read the file batch by batch;
the near copies' *exact* Jaccard to their originals is computed afterwards and the pairs are binned by it:
  merged    = the copy and its original end in the same cluster (recall for bins >= threshold; for bins below it,
              the rate of false merges)
  precision = removals whose exact Jaccard to the record that stays for them is >= threshold
plus wall time and peak RSS (VmHWM, reset after generation: the dedup's own peak; the file is read with plain reads,
not mmap, so file pages cannot inflate or hide it).

Part 2 — the first `--compare-n` records (default 100k): our near-dup step vs datasketch (MinHash + MinHashLSH
insert + query per record) with equal parameters: same word n-grams, permutations, bands x rows, threshold.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill.curate.dedup import (  # noqa: E402
    _banding, _candidate_sets, candidate_probability, exact_keys, first_occurrence, near_duplicates, pair_jaccard)
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


def _edits(rng: np.random.Generator, lens: np.ndarray, ngram: int, threshold: float) -> np.ndarray:
    """Words to replace in each near copy so its true shingle Jaccard lands near a drawn target: 70% uniform in
    [0.55, 1.0], 30% just below the threshold (hard negatives). k isolated edits change ~ngram*k shingles per side:
    J = (S - nk) / (S + nk)."""
    target = np.where(rng.random(len(lens)) < 0.7, rng.uniform(0.55, 1.0, len(lens)),
                      rng.uniform(threshold - 0.08, threshold, len(lens)))
    s = np.maximum(lens - ngram + 1, 1)
    return np.maximum(1, np.rint(s * (1 - target) / (ngram * (1 + target)))).astype(np.int64)


def synth_to_file(path: Path, n: int, exact_rate: float, near_rate: float, *, ngram: int, threshold: float,
                  seed: int = 0, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Write N texts (column `text`, in the final shuffled order) to an Arrow IPC file; returns (planted source
    per text, kind per text: 0 original, 1 exact copy, 2 near copy). Each original has at most one near copy."""
    rng = np.random.default_rng(seed)
    vocab = make_vocab(rng, 50_000).cast(pa.large_string())
    n_exact, n_near = int(n * exact_rate), int(n * near_rate)
    n_base = n - n_exact - n_near
    src = np.concatenate([np.arange(n_base), rng.integers(0, n_base, size=n_exact),
                          rng.choice(n_base, size=n_near, replace=False)])
    kind = np.concatenate([np.zeros(n_base, np.int8), np.ones(n_exact, np.int8), np.full(n_near, 2, np.int8)])
    order = rng.permutation(n)
    src, kind = src[order], kind[order]
    schema = pa.schema([("text", pa.large_string())])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for s in range(0, n, chunk):
            writer.write_batch(pa.record_batch([_chunk_texts(rng, vocab, src[s : s + chunk], kind[s : s + chunk],
                                                             ngram, threshold)], schema=schema))
    return src, kind


def _chunk_texts(rng: np.random.Generator, vocab: pa.Array, src: np.ndarray, k: np.ndarray, ngram: int,
                 threshold: float) -> pa.Array:
    b = src.astype(np.uint64)
    m = len(b)
    lens = (100 + _mix(b * np.uint64(7919)) % np.uint64(100)).astype(np.int64)  # 100-199 words
    offs = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    pos = (np.arange(int(offs[-1])) - np.repeat(offs[:-1], lens)).astype(np.uint64)
    r = _mix(np.repeat(b, lens) * np.uint64(1_000_003) + pos)
    words = np.where(r % np.uint64(10) < 3, (r >> np.uint64(8)) % np.uint64(200),
                     200 + (r >> np.uint64(8)) % np.uint64(49_800)).astype(np.int64)
    near = np.flatnonzero(k == 2)
    edits = _edits(rng, lens[near], ngram, threshold)
    row = np.repeat(near, edits)
    at = offs[row] + (rng.random(len(row)) * lens[row]).astype(np.int64)
    words[at] = rng.integers(200, 50_000, size=len(row))
    lists = pa.LargeListArray.from_arrays(pa.array(offs), vocab.take(pa.array(words)))
    texts = pc.binary_join(lists, pa.scalar(" ", pa.large_string()))
    # surface noise that normalization must see through: upper-case some copies, double the spaces of others
    noisy = k > 0
    upper = noisy & (rng.random(m) < 0.3)
    spaced = noisy & (rng.random(m) < 0.3)
    texts = pc.if_else(pa.array(upper), pc.utf8_upper(texts), texts)
    return pc.if_else(pa.array(spaced), pc.replace_substring(texts, " ", "  "), texts)


class TextFile:
    """The generated texts, read back batch by batch with plain reads (optionally only some rows)."""

    def __init__(self, path: Path):
        self.path = path
        with pa.OSFile(str(path)) as f:
            reader = pa.ipc.open_file(f)
            self.sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]

    def batches(self, rows: np.ndarray | None = None, size: int = 50_000):
        """Texts of `rows` (sorted indices; all when None) in order, about `size` at a time."""
        def gen():
            with pa.OSFile(str(self.path)) as f:
                reader = pa.ipc.open_file(f)
                start = 0
                for i in range(reader.num_record_batches):
                    col = reader.get_batch(i).column(0)
                    n = len(col)
                    if rows is not None:
                        lo, hi = np.searchsorted(rows, [start, start + n])
                        col = col.take(pa.array(rows[lo:hi] - start))
                    start += n
                    for s in range(0, len(col), size):
                        yield col.slice(s, min(size, len(col) - s))
        return gen


def jaccard_of(textfile: TextFile, pairs: np.ndarray, ngram: int) -> np.ndarray:
    """Exact shingle Jaccard of each (i, j) pair of file rows (same shingles as curate's near-dup, 64-bit)."""
    ids = np.unique(pairs)
    flat, off = _candidate_sets(textfile.batches(ids), np.arange(len(ids)), ngram, fold=False)  # 64-bit truth
    return pair_jaccard(flat, off, np.searchsorted(ids, pairs))


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


BINS = (0.0, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001)


def binned(j: np.ndarray, merged: np.ndarray, threshold: float) -> str:
    lines = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (j >= lo) & (j < hi)
        if m.any():
            what = "recall" if lo >= threshold else "false merges"
            lines.append(f"  true J [{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'}: {int(m.sum()):>8,} pairs, "
                         f"merged {merged[m].mean():.4f} ({what})")
    return "\n".join(lines)


def _sample(rng: np.random.Generator, idx: np.ndarray, k: int) -> np.ndarray:
    return idx if len(idx) <= k else np.sort(rng.choice(idx, size=k, replace=False))


def run_size(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    """Generate, dedup (exact then near, out of core) and score one size; returns its figures."""
    path = workdir / f"texts_{n}.arrow"
    t = time.monotonic()
    src, kind = synth_to_file(path, n, args.exact_rate, args.near_rate, ngram=args.ngram, threshold=args.threshold)
    tf = TextFile(path)
    print(f"\n== n={n:,}: generated in {time.monotonic() - t:.1f}s ({int((kind == 1).sum()):,} exact copies, "
          f"{int((kind == 2).sum()):,} near copies planted; file {path.stat().st_size / 2**30:.2f} GiB)", flush=True)
    pa.default_memory_pool().release_unused()
    fresh = reset_peak()
    t0 = time.monotonic()
    keys = np.concatenate([exact_keys(b) for b in tf.batches()()])
    keep_e, rep_e = first_occurrence(keys)
    del keys
    t_exact = time.monotonic() - t0
    # for exact dedup only exact copies count as duplicates: each near copy is its own cluster here
    exact_cluster = np.where(kind == 2, src.max() + 1 + np.arange(n), src)
    r, p, k = score(exact_cluster, keep_e, rep_e, np.ones(n, dtype=bool))
    print(f"exact dedup: removed {k:,} in {t_exact:.1f}s (recall {r:.4f}, precision {p:.4f})", flush=True)
    alive = np.flatnonzero(keep_e)
    t1 = time.monotonic()
    res = near_duplicates(tf.batches(alive), len(alive), ngram=args.ngram, num_perm=args.num_perm,
                          threshold=args.threshold, bands=args.bands, rows=args.rows)
    t_near = time.monotonic() - t1
    total, peak = time.monotonic() - t0, rss_gib()
    print(f"near dedup: removed {int((~res.keep).sum()):,} of {len(alive):,} in {t_near:.1f}s "
          f"({res.prefiltered:,} texts in {res.candidate_pairs:,} candidate pairs, {res.verified_pairs:,} verified by "
          f"exact Jaccard; { {k: round(v, 1) for k, v in res.timings.items()} })", flush=True)
    final = np.arange(n)
    final[alive] = alive[res.rep]
    final = final[rep_e]  # each record -> the record that stays for it (exact, then near)
    rng = np.random.default_rng(1)
    orig_row = np.zeros(int(src.max()) + 1, dtype=np.int64)
    orig_row[src[kind == 0]] = np.flatnonzero(kind == 0)
    copies = _sample(rng, np.flatnonzero((kind == 2) & keep_e), args.score_sample)
    pairs = np.stack([copies, orig_row[src[copies]]], 1)
    j = jaccard_of(tf, pairs, args.ngram)
    merged = final[pairs[:, 0]] == final[pairs[:, 1]]
    above = j >= args.threshold
    recall = float(merged[above].mean()) if above.any() else 1.0
    removed = _sample(rng, alive[~res.keep], args.score_sample)
    jr = jaccard_of(tf, np.stack([removed, final[removed]], 1), args.ngram) if len(removed) else np.ones(0)
    precision = float((jr >= args.threshold).mean()) if len(jr) else 1.0
    print(f"planted near copies vs their originals, by exact Jaccard of {args.ngram}-word shingle sets "
          f"({len(pairs):,} pairs scored):\n{binned(j, merged, args.threshold)}")
    print(f"RESULT n={n:,}: recall {recall:.4f} of pairs at J >= {args.threshold} | precision {precision:.4f} "
          f"({len(jr):,} removals checked) | exact+near wall {total:.1f}s ({n / total:,.0f} docs/s) | peak RSS "
          f"{peak:.2f} GiB ({'dedup only' if fresh else 'whole process, generation included'})", flush=True)
    if not args.keep_files:
        path.unlink()
    return {"n": n, "wall": total, "peak": peak, "recall": recall, "precision": precision}


def compare(args: argparse.Namespace, workdir: Path) -> None:
    """Ours vs datasketch on the same `--compare-n` texts."""
    m = args.compare_n
    path = workdir / "compare.arrow"
    synth_to_file(path, m, args.exact_rate, args.near_rate, ngram=args.ngram, threshold=args.threshold)
    sub = pa.chunked_array(list(TextFile(path).batches()())).combine_chunks()
    path.unlink()
    t = time.monotonic()
    ours(sub, args)
    t_ours = time.monotonic() - t
    t = time.monotonic()
    datasketch_run(sub, args, args.bands, args.rows)
    t_ds = time.monotonic() - t
    print(f"RESULT compare n={m:,}: ours {m / t_ours:,.0f} docs/s ({t_ours:.1f}s), datasketch.MinHashLSH "
          f"{m / t_ds:,.0f} docs/s ({t_ds:.1f}s) -> ratio {t_ds / t_ours:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="1000000", help="records in part 1; several sizes comma-separated run in turn")
    ap.add_argument("--compare-n", type=int, default=100_000, help="records in the datasketch comparison (0: skip)")
    ap.add_argument("--exact-rate", type=float, default=0.1)
    ap.add_argument("--near-rate", type=float, default=0.1)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--bands", type=int, default=None)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--score-sample", type=int, default=200_000, help="pairs / removals scored by exact Jaccard")
    ap.add_argument("--workdir", default=None, help="where the generated text files go (default: a temp dir)")
    ap.add_argument("--keep-files", action="store_true")
    args = ap.parse_args()
    args.bands, args.rows = _banding(args.num_perm, args.threshold, args.bands, args.rows)
    print(f"params: {args.ngram}-word shingles, {args.bands} bands x {args.rows} rows "
          f"({args.bands * args.rows} permutations), threshold {args.threshold} "
          f"(candidate probability at it {candidate_probability(args.threshold, args.bands, args.rows):.4f})")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-dedup-", dir=args.workdir) as tmp:
        if args.compare_n:  # first: the speed ratio is the quick figure
            compare(args, Path(tmp))
        figures = [run_size(int(n), args, Path(tmp)) for n in args.n.split(",")]
        if len(figures) > 1:
            base = figures[0]
            print("RESULT growth: " + "; ".join(
                f"n={f['n']:,}: {f['wall']:.0f}s ({f['wall'] / base['wall']:.2f}x time for "
                f"{f['n'] / base['n']:.1f}x records), peak RSS {f['peak']:.2f} GiB" for f in figures))


if __name__ == "__main__":
    main()
