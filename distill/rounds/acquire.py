"""Acquisition functions: which pool prompts should the teacher answer next? None of them asks the teacher.

- `disagreement`: the student's k sampled final answers (read by `distill.answers`) disagree -> it does not know;
- `failure_similarity`: word n-gram MinHash sketch (curate's shingling) nearest to items the student failed;
- `pick`: rank-normalised weighted combination, then curate's MinHash near-dup clustering so one round never
  spends two requests on near-dups (nor on a near-dup of an earlier round's prompt);
- `stratified_sample`: round 0's slice, proportional per category.

Pure functions over lists and numpy arrays, so each is tested on hand-made pools and shared by `distill rounds`
(vLLM-served student) and `make demo-rounds` (in-process student).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def disagreement(samples: Sequence[Sequence[str | None]]) -> np.ndarray:
    """Per prompt, 1 - (share of the most common final answer): 0 when all k agree, near 1 when all differ.
    A sample with no readable answer agrees with nothing (a student that cannot finish does not know)."""
    out = np.zeros(len(samples), dtype=np.float64)
    for i, answers in enumerate(samples):
        if not answers:
            continue
        counts = Counter(a for a in answers if a is not None)
        top = max(counts.values()) if counts else 0
        out[i] = 1.0 - top / len(answers)
    return out


def _signatures(texts: Sequence[str], ngram: int, num_perm: int, seed: int = 1) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures of each text's word n-gram set (curate's text.py + rensa)."""
    import pyarrow as pa
    import rensa

    from distill.curate.text import normalize_words, window_hashes, word_hashes

    wh, off = word_hashes(normalize_words(pa.array(list(texts), type=pa.string())))
    flat, soff = window_hashes(wh, off, ngram)
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, soff.astype(np.uint64), num_perm, seed)
    return np.asarray(m.to_rows(), dtype=np.uint32).reshape(len(texts), num_perm)


def failure_similarity(pool_texts: Sequence[str], failed_texts: Sequence[str], *, ngram: int = 2,
                       num_perm: int = 64, chunk: int = 512) -> np.ndarray:
    """Per pool prompt: the highest estimated Jaccard similarity of its word n-grams with any failed item's."""
    if not len(pool_texts) or not len(failed_texts):
        return np.zeros(len(pool_texts), dtype=np.float64)
    p = _signatures(pool_texts, ngram, num_perm)
    f = _signatures(failed_texts, ngram, num_perm)
    out = np.zeros(len(p), dtype=np.float64)
    for s in range(0, len(p), chunk):
        eq = p[s : s + chunk, None, :] == f[None, :, :]  # (chunk, failed, perms)
        out[s : s + chunk] = eq.mean(axis=2).max(axis=1)
    return out


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores -> [0, 1] by rank (ties share their lowest rank, so the many prompts a function has no signal on
    all get 0; all-equal -> all 0), so weights mix functions whose scales differ."""
    n = len(scores)
    if n == 0 or np.all(scores == scores[0]):
        return np.zeros(n)
    from scipy.stats import rankdata

    return (rankdata(scores, method="min") - 1) / (n - 1)


@dataclass
class Picked:
    """A round's selection: pool indices in pick order, which function each came from, and what was skipped."""

    indices: list[int]
    picked_by: list[str]
    scores: dict[str, list[float]] = field(default_factory=dict)  # function -> raw score of each picked prompt
    skipped_near_dups: int = 0
    filled_with_near_dups: int = 0

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.picked_by))


def near_dup_mask(texts: Sequence[str], *, threshold: float, ngram: int, num_perm: int) -> np.ndarray:
    """True for each text that is a near-dup of an earlier text in the list (curate's MinHash LSH)."""
    import pyarrow as pa

    from distill.curate.dedup import near_duplicates

    if len(texts) < 2:
        return np.zeros(len(texts), dtype=bool)
    arr = pa.array(list(texts), type=pa.string())
    res = near_duplicates(lambda: [arr], len(arr), ngram=ngram, num_perm=num_perm, threshold=threshold)
    return ~res.keep


def pick(candidates: Sequence[int], texts: Sequence[str], budget: int, scores: dict[str, np.ndarray],
         weights: dict[str, float], *, seed: int = 0, diversity: dict[str, Any] | None = None,
         already: Sequence[str] = ()) -> Picked:
    """The `budget` best candidates (pool indices; `texts[i]` their prompt texts, aligned with `candidates`) by
    the weighted sum of rank-normalised scores; ties broken at random (seeded). With `diversity`
    ({threshold, ngram, num_perm}), a candidate that is a near-dup of a better one or of an `already`
    collected prompt is skipped; only when too few remain are skipped ones used to fill the budget."""
    n = len(candidates)
    if n == 0 or budget <= 0:
        return Picked([], [])
    rng = np.random.default_rng(seed)
    parts = {name: weights[name] * rank_normalise(np.asarray(s, dtype=np.float64)) for name, s in scores.items()}
    total = sum(parts.values()) if parts else np.zeros(n)
    order = np.lexsort((rng.random(n), -np.asarray(total)))  # best first, random among ties
    skipped = np.zeros(n, dtype=bool)
    if diversity is not None:
        ranked = [texts[i] for i in order]
        dup = near_dup_mask(list(already) + ranked, **diversity)[len(already):]
        skipped[order[dup]] = True
    chosen = [i for i in order if not skipped[i]][:budget]
    filled = 0
    if len(chosen) < budget:
        extra = [i for i in order if skipped[i]][: budget - len(chosen)]
        filled = len(extra)
        chosen += extra
    names = list(parts)

    def by(i: int) -> str:
        if not names or total[i] == 0:
            return "random"  # no function ranked it above the rest: a tie broken by the seed
        return max(names, key=lambda k: parts[k][i])

    return Picked(indices=[int(candidates[i]) for i in chosen], picked_by=[by(i) for i in chosen],
                  scores={k: [float(scores[k][i]) for i in chosen] for k in names},
                  skipped_near_dups=int(skipped.sum()), filled_with_near_dups=filled)


def stratified_sample(n_pool: int, k: int, *, categories: Sequence[Any] | None = None, seed: int = 0) -> list[int]:
    """`k` distinct pool indices at random; with `categories`, each category gets its proportional share
    (largest remainders), so a small category is not missed by chance."""
    rng = random.Random(seed)
    k = min(k, n_pool)
    if categories is None:
        return sorted(rng.sample(range(n_pool), k))
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, c in enumerate(categories):
        groups[c].append(i)
    quota = {c: k * len(ix) / n_pool for c, ix in groups.items()}
    take = {c: int(q) for c, q in quota.items()}
    for c in sorted(groups, key=lambda c: quota[c] - take[c], reverse=True)[: k - sum(take.values())]:
        take[c] += 1
    out: list[int] = []
    for c in sorted(groups, key=str):
        out += rng.sample(groups[c], take[c])
    return sorted(out)
