"""Paired statistics for teacher-vs-student comparisons on the same benchmark items.

Why paired: teacher and student answer the *same* items, so most of the item-to-item variance is shared. Two
independent standard errors overstate the uncertainty of the gap; resampling items (not models) keeps the pairing.
The intervals are percentile intervals of a paired bootstrap with a fixed seed, so a report re-rendered from the
same eval results prints the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

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
        idx = rng.integers(0, n, size=(k, n))
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


def paired_gap(teacher: Sequence[float], student: Sequence[float], *, resamples: int = RESAMPLES,
               seed: int = SEED, level: float = LEVEL) -> dict[str, float | int | None]:
    """Teacher minus student accuracy on the same items, with a paired bootstrap interval."""
    t, s = _vectors(teacher, student)
    mt, ms = resampled_means([t, s], resamples, seed)
    lo, hi = _interval(mt - ms, level)
    return {"estimate": float(t.mean() - s.mean()), "low": lo, "high": hi, "level": level,
            "resamples": resamples, "seed": seed, "items": len(t)}


def paired_recovered(teacher: Sequence[float], student: Sequence[float], base: Sequence[float] | None = None, *,
                     resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict[str, object]:
    """Share of the teacher's score the student reached, with a paired bootstrap interval.

    With a base model: (student - base) / (teacher - base), the share of the teacher's lead over the undistilled
    student that distillation won back. Without: student / teacher. A resample whose denominator is 0 has no
    ratio; those are counted (`undefined_resamples`) and left out of the interval.
    """
    vecs = _vectors(teacher, student, base)
    means = resampled_means(vecs, resamples, seed)
    if base is None:
        t, s = vecs
        mt, ms = means
        num, den, est_num, est_den, kind = ms, mt, s.mean(), t.mean(), "student / teacher"
    else:
        t, s, b = vecs
        mt, ms, mb = means
        num, den, est_num, est_den = ms - mb, mt - mb, s.mean() - b.mean(), t.mean() - b.mean()
        kind = "(student - base) / (teacher - base)"
    ok = np.abs(den) > 1e-12
    ratios = np.full(len(den), np.nan)
    ratios[ok] = num[ok] / den[ok]
    lo, hi = _interval(ratios, level)
    return {"estimate": float(est_num / est_den) if abs(est_den) > 1e-12 else None, "low": lo, "high": hi,
            "definition": kind, "undefined_resamples": int((~ok).sum()), "level": level, "resamples": resamples,
            "seed": seed, "items": len(vecs[0])}
