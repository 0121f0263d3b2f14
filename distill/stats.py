"""Paired statistics for teacher-vs-student comparisons on the same benchmark items.

Why paired: teacher and student answer the *same* items, so most of the item-to-item variance is shared. Two
independent standard errors overstate the uncertainty of the gap; resampling items (not models) keeps the pairing.
The intervals are percentile intervals of a paired bootstrap with a fixed seed, so a report re-rendered from the
same eval results prints the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RESAMPLES = 10_000
SEED = 20240531
LEVEL = 0.95
_CHUNK_CELLS = 4_000_000  # resamples x items drawn at once (~32 MB of indices)


def _vectors(*vs: Sequence[float] | None) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=float) for v in vs if v is not None]
    n = {len(a) for a in arrays}
    if len(n) != 1:
        raise ValueError(f"paired vectors must have the same length (got {sorted(len(a) for a in arrays)})")
    if not n.pop():
        raise ValueError("paired vectors are empty")
    return arrays


def resampled_means(vectors: list[np.ndarray], resamples: int = RESAMPLES, seed: int = SEED) -> list[np.ndarray]:
    """Means of each vector over the same bootstrap resamples of item indices: one array of `resamples` each."""
    n = len(vectors[0])
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in vectors]
    chunk = max(1, _CHUNK_CELLS // n)
    done = 0
    while done < resamples:
        k = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(k, n), dtype=np.int32 if n < 2**31 else np.int64)
        for acc, v in zip(out, vectors, strict=True):
            acc.append(v[idx].mean(axis=1))
        done += k
    return [np.concatenate(acc) for acc in out]


def _interval(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_comparison(teacher: Sequence[float], student: Sequence[float], base: Sequence[float] | None = None, *,
                       resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict[str, dict[str, Any]]:
    """Teacher minus student, and the share of the teacher's score the student reached, on the same items, each
    with a paired bootstrap interval over one shared set of resamples.

    gap = mean(teacher) - mean(student). recovered: with a base model (student - base) / (teacher - base), the
    share of the teacher's lead over the undistilled student that distillation won back; without one, student /
    teacher. A resample whose denominator is 0 has no ratio; those are counted (`undefined_resamples`) and left
    out of the interval.
    """
    vecs = _vectors(teacher, student, base)
    t, s = vecs[0], vecs[1]
    num, den = (s - vecs[2], t - vecs[2]) if base is not None else (s, t)
    m_gap, m_num, m_den = resampled_means([t - s, num, den], resamples, seed)
    common = {"level": level, "resamples": resamples, "seed": seed, "items": len(t)}
    lo, hi = _interval(m_gap, level)
    gap = {"estimate": float(t.mean() - s.mean()), "low": lo, "high": hi, **common}
    ok = np.abs(m_den) > 1e-12
    ratios = np.full(len(m_den), np.nan)
    ratios[ok] = m_num[ok] / m_den[ok]
    lo, hi = _interval(ratios, level)
    est_den = float(den.mean())
    recovered = {"estimate": float(num.mean()) / est_den if abs(est_den) > 1e-12 else None, "low": lo, "high": hi,
                 "definition": "(student - base) / (teacher - base)" if base is not None else "student / teacher",
                 "undefined_resamples": int((~ok).sum()), **common}
    return {"gap": gap, "recovered": recovered}


def paired_gap(teacher: Sequence[float], student: Sequence[float], **kw: Any) -> dict[str, Any]:
    """Teacher minus student accuracy on the same items, with a paired bootstrap interval."""
    return paired_comparison(teacher, student, **kw)["gap"]


def paired_recovered(teacher: Sequence[float], student: Sequence[float], base: Sequence[float] | None = None,
                     **kw: Any) -> dict[str, Any]:
    """The gap recovered (or student / teacher without a base), with a paired bootstrap interval."""
    return paired_comparison(teacher, student, base, **kw)["recovered"]
