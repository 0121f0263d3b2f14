"""Paired bootstrap on hand-made item vectors: identical models, a known shift, pairing, gap recovered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distill.benchmarks import mean_stderr
from distill.stats import paired_gap, paired_recovered, resampled_means


def test_identical_models_have_a_zero_tight_gap() -> None:
    v = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1] * 10
    g = paired_gap(v, v)
    assert g["estimate"] == 0.0 and g["low"] == 0.0 and g["high"] == 0.0 and g["items"] == 100
    r = paired_recovered(v, v)
    assert r["estimate"] == pytest.approx(1.0) and r["low"] == pytest.approx(1.0) and r["high"] == pytest.approx(1.0)


def test_known_shift_excludes_zero_and_contains_the_truth() -> None:
    # teacher right on 80 of 100 items, the student on 50 of those 80: a true gap of 0.30
    teacher = [1] * 80 + [0] * 20
    student = [1] * 50 + [0] * 50
    g = paired_gap(teacher, student)
    assert g["estimate"] == pytest.approx(0.30)
    assert 0 < g["low"] < 0.30 < g["high"] < 0.5
    # the pairing matters: student-correct items are a subset of teacher-correct ones, so the paired interval is
    # narrower than the one two independent standard errors would give
    (_, se_t), (_, se_s) = mean_stderr(teacher), mean_stderr(student)
    assert g["high"] - g["low"] < 2 * 1.96 * math.sqrt(se_t**2 + se_s**2) * 0.8


def test_student_better_than_teacher_gives_a_negative_gap() -> None:
    g = paired_gap([0] * 30 + [1] * 10, [1] * 40)
    assert g["estimate"] == pytest.approx(-0.75) and g["high"] < 0


def test_same_seed_same_interval_and_other_seed_differs() -> None:
    rng = np.random.default_rng(1)
    t, s = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert paired_gap(t, s) == paired_gap(t, s)
    other = paired_gap(t, s, seed=7)
    assert other["seed"] == 7 and not np.array_equal(resampled_means([t], 100, 7)[0], resampled_means([t], 100)[0])


def test_gap_recovered_with_and_without_base() -> None:
    teacher = [1] * 80 + [0] * 20
    student = [1] * 60 + [0] * 40
    base = [1] * 20 + [0] * 80
    r = paired_recovered(teacher, student, base)
    assert r["estimate"] == pytest.approx((0.6 - 0.2) / (0.8 - 0.2))
    assert r["low"] < r["estimate"] < r["high"] and r["low"] > 0.4 and r["high"] <= 1.0
    assert r["definition"] == "(student - base) / (teacher - base)" and r["undefined_resamples"] == 0
    r2 = paired_recovered(teacher, student)
    assert r2["estimate"] == pytest.approx(0.75) and r2["definition"] == "student / teacher"


def test_no_gap_to_recover_is_undefined_not_a_crash() -> None:
    same = [1, 0] * 5
    r = paired_recovered(same, [1] * 10, same)
    assert r["estimate"] is None and r["low"] is None and r["undefined_resamples"] == r["resamples"]


def test_resampled_means_share_the_resamples_and_bad_input() -> None:
    a = np.arange(50, dtype=float)
    ma, mb = resampled_means([a, a + 1], resamples=500, seed=3)
    assert len(ma) == 500 and np.allclose(mb - ma, 1.0)  # same indices for both vectors
    with pytest.raises(ValueError, match="same length"):
        paired_gap([1, 0], [1])
    with pytest.raises(ValueError, match="empty"):
        paired_gap([], [])
