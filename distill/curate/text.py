"""Vectorized text -> word hashes -> word n-gram hashes, shared by near-dup detection and decontamination.

Everything runs on Arrow arrays and numpy (no Python loop per word): lower-case, punctuation -> space, split on
whitespace, hash each distinct word once, then roll n-word windows with a few multiply-adds over contiguous
slices. Hashes are deterministic across processes and runs (no Python `hash()`), so a benchmark's n-grams and a
record's n-grams always agree.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# not a letter, digit, combining mark, underscore or space (RE2's \w is ASCII-only: "é" and every CJK
# character would be dropped, leaving whole non-Latin texts with no words, all alike)
_PUNCT = r"[^\p{L}\p{N}\p{M}_\s]+"
_MIX = np.uint64(0x9E3779B97F4A7C15)
_rng = np.random.default_rng(0x5EED)
_POS_KEYS = _rng.integers(1, 2**63 - 1, size=4096, dtype=np.uint64) | np.uint64(1)


def normalize_words(texts: pa.Array | list[str]) -> pa.ListArray:
    """Each text as a list of lower-cased words with punctuation dropped ("Hello,  World!" -> ["hello", "world"])."""
    arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.fill_null(arr, "")
    # ASCII-only batches (the usual case) lower-case 50x faster with ascii_lower; the result is the same
    ascii_only = len(arr) > 0 and pc.all(pc.string_is_ascii(arr)).as_py() is True
    low = pc.ascii_lower(arr) if ascii_only else pc.utf8_lower(arr)
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(low, _PUNCT, " "))
    return pc.utf8_split_whitespace(arr)  # an empty text gives [""]; word_hashes drops empty words


def _splitmix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_strings(arr: pa.Array) -> np.ndarray:
    """A stable 64-bit hash of each string: position-keyed sum of its bytes, then a splitmix64 finalizer."""
    arr = pc.cast(arr, pa.large_string()) if arr.type != pa.large_string() else arr
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]].astype(np.uint64) + np.uint64(1)
    lengths = np.diff(offsets)
    starts = offsets[:-1] - offsets[0]
    pos = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    keys = _POS_KEYS[pos % len(_POS_KEYS)] if len(data) else np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        prod = data * keys
        sums = np.zeros(n, dtype=np.uint64)
        nonempty = lengths > 0
        if len(prod):
            sums[nonempty] = np.add.reduceat(prod, starts[nonempty])
        return _splitmix(sums ^ (lengths.astype(np.uint64) * _MIX))


def word_hashes(words: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint64 word hashes, int64 row offsets) for a list-of-words array; each distinct word hashed once."""
    flat = words.flatten()
    offsets = words.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    # after trimming, an empty word can only be the single word of an empty text
    single = np.flatnonzero(np.diff(offsets) == 1)
    empty = np.zeros(len(flat), dtype=bool)
    if len(single):
        empty[offsets[single]] = pc.equal(pc.binary_length(flat.take(pa.array(offsets[single]))), 0).to_numpy(
            zero_copy_only=False)
    if empty.any():
        row_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        keep = ~empty
        flat = flat.filter(pa.array(keep))
        offsets = np.zeros(len(offsets), dtype=np.int64)
        np.cumsum(np.bincount(row_of[keep], minlength=len(offsets) - 1), out=offsets[1:])
    if len(flat) == 0:
        return np.zeros(0, dtype=np.uint64), offsets
    enc = flat.dictionary_encode()
    uniq = hash_strings(enc.dictionary)
    return uniq[enc.indices.to_numpy(zero_copy_only=False)], offsets


def window_hashes(wh: np.ndarray, offsets: np.ndarray, n: int, *, short: str = "whole") -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n-word window inside each row -> (flat uint64 hashes, int64 row offsets).

    Rows shorter than n words give one hash of all their words when short="whole" (so a 3-word answer still
    has a signature), or nothing when short="skip" (decontamination: only full n-word matches count).
    """
    n_rows = len(offsets) - 1
    lengths = np.diff(offsets)
    total = len(wh)
    with np.errstate(over="ignore"):
        if total >= n:
            h = wh[: total - n + 1].copy()
            for k in range(1, n):
                h = h * _MIX + wh[k : total - n + 1 + k]
            row_end = np.repeat(offsets[1:], lengths)[: total - n + 1]
            out = h[np.arange(n, total + 1) <= row_end]  # the window fits inside its row
            counts = np.maximum(lengths - n + 1, 0)
        else:
            out = np.zeros(0, dtype=np.uint64)
            counts = np.zeros(n_rows, dtype=np.int64)
        if short == "whole":
            short_rows = np.flatnonzero(lengths < n)
            if len(short_rows):
                extra = np.empty(len(short_rows), dtype=np.uint64)
                for i, r in enumerate(short_rows):  # rows shorter than n words are rare; a tiny loop is fine
                    acc = np.uint64(len(wh[offsets[r] : offsets[r + 1]]) + 1)
                    for w in wh[offsets[r] : offsets[r + 1]]:
                        acc = acc * _MIX + w
                    extra[i] = acc
                # merge the extra hashes into row order
                counts_all = counts.copy()
                counts_all[short_rows] += 1
                new_off = np.zeros(n_rows + 1, dtype=np.int64)
                np.cumsum(counts_all, out=new_off[1:])
                merged = np.empty(int(new_off[-1]), dtype=np.uint64)
                old_off = np.zeros(n_rows + 1, dtype=np.int64)
                np.cumsum(counts, out=old_off[1:])
                is_extra = np.zeros(len(merged), dtype=bool)
                is_extra[new_off[short_rows] + counts[short_rows]] = True
                merged[is_extra] = extra
                merged[~is_extra] = out
                return merged, new_off
    off = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return out, off
