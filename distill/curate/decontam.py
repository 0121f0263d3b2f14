"""Benchmark decontamination: drop records sharing a long word n-gram (default 13) with a benchmark's test items.

Benchmark texts come from the same loaders evaluate uses (`distill.benchmarks`), so what is checked here is what
is scored there. Matching is on normalized words (case and punctuation ignored): a copied question is caught
even re-punctuated; a paraphrase is not (n-gram overlap is the standard, documented trade-off). Benchmark texts
shorter than `ngram` words but at least `min_words` long must appear whole. `decontam_step` is the curate step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from distill.curate.step import EXAMPLES, Outcome, Rows
from distill.curate.text import normalize_words, window_hashes, word_hashes
from distill.errors import DistillError, InputError

if TYPE_CHECKING:
    from distill.curate.config import DecontamConfig


@dataclass
class DecontamIndex:
    names: list[str]
    ngram: int
    by_length: dict[int, tuple[np.ndarray, np.ndarray]]  # n -> (sorted hashes, benchmark index per hash)
    texts: dict[str, int] = field(default_factory=dict)  # benchmark -> texts indexed
    too_short: dict[str, int] = field(default_factory=dict)  # benchmark -> texts below min_words (not checked)


def build_index(texts_by_benchmark: dict[str, list[str]], ngram: int = 13, min_words: int = 8) -> DecontamIndex:
    """Index every `ngram`-word window of each benchmark text (whole text when min_words <= len < ngram)."""
    names = list(texts_by_benchmark)
    parts: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    index = DecontamIndex(names, ngram, {})
    for b, name in enumerate(names):
        texts = texts_by_benchmark[name]
        index.texts[name] = len(texts)
        wh, off = word_hashes(normalize_words(pa.array(texts, type=pa.string())))
        lengths = np.diff(off)
        index.too_short[name] = int((lengths < min_words).sum())
        full, _ = window_hashes(wh, off, ngram, short="skip")
        parts.setdefault(ngram, []).append((full, np.full(len(full), b, dtype=np.int32)))
        for n in np.unique(lengths[(lengths >= min_words) & (lengths < ngram)]):
            rows = np.flatnonzero(lengths == n)
            # a text of exactly n words has one n-word window: the whole text
            h, woff = window_hashes(wh, off, int(n), short="skip")
            whole = h[woff[rows]]
            parts.setdefault(int(n), []).append((whole, np.full(len(whole), b, dtype=np.int32)))
    for n, ps in parts.items():
        h = np.concatenate([p[0] for p in ps])
        who = np.concatenate([p[1] for p in ps])
        order = np.argsort(h, kind="stable")
        index.by_length[n] = (h[order], who[order])
    return index


def find_hits(index: DecontamIndex, texts: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text: (benchmark index of its first hit or -1, word position of that hit, its n-gram length)."""
    wh, off = word_hashes(normalize_words(texts))
    n_rows = len(off) - 1
    bench = np.full(n_rows, -1, dtype=np.int32)
    pos = np.full(n_rows, -1, dtype=np.int64)
    glen = np.zeros(n_rows, dtype=np.int32)
    for n in sorted(index.by_length, reverse=True):
        keys, who = index.by_length[n]
        if not len(keys):
            continue
        h, hoff = window_hashes(wh, off, n, short="skip")
        if not len(h):
            continue
        at = np.searchsorted(keys, h)
        at_c = np.minimum(at, len(keys) - 1)
        hit = keys[at_c] == h
        if not hit.any():
            continue
        row_of = np.repeat(np.arange(n_rows), np.diff(hoff))
        hit_idx = np.flatnonzero(hit)
        rows, first = np.unique(row_of[hit_idx], return_index=True)
        new = bench[rows] < 0
        rows, first = rows[new], first[new]
        w = hit_idx[first]
        bench[rows] = who[at_c[w]]
        pos[rows] = w - hoff[rows]
        glen[rows] = n
    return bench, pos, glen


def matched_text(text: str, pos: int, n: int) -> str:
    """The normalized words of a hit, for the report."""
    words = [w for w in normalize_words(pa.array([text], type=pa.string()))[0].as_py() if w]
    return " ".join(words[pos : pos + n])


def load_benchmark_texts(cfg: DecontamConfig) -> dict[str, list[str]]:
    """benchmark name -> texts to guard, through the evaluate stage's loaders."""
    from distill.benchmarks import get_benchmark

    out: dict[str, list[str]] = {}
    for ref in cfg.benchmarks:
        try:
            bench = get_benchmark(ref.name, kind=ref.kind, **ref.options)
            items = bench.load(source=ref.source, split=ref.split)
        except DistillError as err:
            raise InputError(f"curate.decontam.benchmarks[{ref.name}]: could not load it ({err}); set `source:` to a "
                             f"local copy of its {ref.split or 'default'} split, or remove it from "
                             "curate.decontam.benchmarks") from None
        out[ref.name] = bench.decontam_texts(items)
    return out


def decontam_step(rows: Rows, alive: np.ndarray, cfg: DecontamConfig) -> Outcome:
    """Curate step: drop alive records that share an n-gram with a benchmark item; counts per benchmark."""
    index = build_index(load_benchmark_texts(cfg), cfg.ngram, cfg.min_words)
    idx = np.flatnonzero(alive)
    bench = np.full(len(rows), -1, dtype=np.int32)
    pos = np.full(len(rows), -1, dtype=np.int64)
    glen = np.zeros(len(rows), dtype=np.int32)
    start = 0
    for b, p, g in rows.map_texts(cfg.on, idx, find_hits, index):  # the index is broadcast once (Ray)
        at = idx[start : start + len(b)]
        bench[at], pos[at], glen[at] = b, p, g
        start += len(b)
    hit_rows = np.flatnonzero(bench >= 0)
    shown = hit_rows[:EXAMPLES]
    texts_of = {int(r): t.as_py() for r, t in zip(shown, next(rows.texts(cfg.on, shown), pa.array([])))}
    per = {name: {"items": index.texts[name], "too_short_to_check": index.too_short[name],
                  "removed": int((bench[hit_rows] == i).sum())} for i, name in enumerate(index.names)}
    extra = {r: {"benchmark": index.names[bench[r]], "matched": matched_text(txt, int(pos[r]), int(glen[r]))}
             for r, txt in texts_of.items()}
    info = {"ngram": cfg.ngram, "on": cfg.on, "per_benchmark": per,
            "note": "; ".join(f"{k}: {v['removed']}" for k, v in per.items())}
    return Outcome(bench < 0, info, extra)
