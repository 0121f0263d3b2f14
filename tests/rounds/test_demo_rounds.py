"""`make demo-rounds`: the claim arithmetic on hand-made curves, the mixed-difficulty pool, and a tiny real run of
both arms (the demo's own teacher and student, in process) that resumes from its cached rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.demo import task
from distill.demo.rounds import Setup, claim, curve, requests_to_reach, run


def _pts(accs: list[float], step: int = 100) -> list[dict]:
    return [{"requests": step * (i + 1), "accuracy": a, "ci95": 0.02, "seeds": [a]} for i, a in enumerate(accs)]


def test_claim_reads_the_request_ratio_and_the_points_at_equal_requests() -> None:
    rand, gap = _pts([0.2, 0.4, 0.5, 0.6, 0.7]), _pts([0.3, 0.6, 0.8, 0.85, 0.9])
    assert requests_to_reach(gap, 0.7) == pytest.approx(250.0)  # halfway between 0.6 @200 and 0.8 @300
    c = claim(rand, gap)
    assert c["request_ratio"] == 0.5 and c["points_at_equal_requests"] == 20.0 and c["holds"]
    c2 = claim(rand, _pts([0.2, 0.3, 0.4, 0.5, 0.71]))
    assert c2["request_ratio"] == pytest.approx(0.990, abs=1e-3) and not c2["holds"]
    assert claim(rand, _pts([0.1] * 5))["gap_requests_to_random_final"] is None


def test_curve_interval_combines_item_error_and_seed_spread() -> None:
    runs = [[{"requests": 100, "accuracy": 0.5, "stderr": 0.01}], [{"requests": 100, "accuracy": 0.7, "stderr": 0.01}]]
    (p,) = curve(runs)
    assert p["accuracy"] == 0.6 and p["seeds"] == [0.5, 0.7]
    # between-seed variance 0.02, within 1e-4, over 2 seeds
    assert p["ci95"] == pytest.approx(1.96 * ((0.02 + 1e-4) / 2) ** 0.5, abs=1e-4)


def test_mixed_pool_has_the_asked_difficulty_mix_and_stays_in_its_split() -> None:
    pool = task.mixed_pool("collect", 400, seed=3, mix={0: 0.5, 3: 0.5})
    carries = [task.carries(p.a, p.b) for p in pool]
    assert len(pool) == 400 and carries.count(0) == 200 and carries.count(3) == 200
    assert all(task.pool_of(p.a, p.b) == "collect" for p in pool) and len({p.id for p in pool}) == 400
    assert task.carries(999, 1) == 3 and task.carries(100, 200) == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_run_of_both_arms_resumes_from_its_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = Setup(pool=300, eval_items=60, validation_items=20, rounds=2, first_round=20, first_round_steps=4,
                  per_round=10, steps_per_round=3, candidates=40, k=2, seeds=[0, 1])
    out = tmp_path / "dr"
    s = run(setup, out)
    assert [p["requests"] for p in s["curves"]["random"]] == [20, 30] == [p["requests"] for p in s["curves"]["gap"]]
    assert set(s["claim"]) >= {"request_ratio", "points_at_equal_requests", "holds"}
    assert (out / "curves.png").stat().st_size > 5000
    gap1 = json.loads((out / "gap-seed0/round-1/summary.json").read_text())
    rnd1 = json.loads((out / "random-seed0/round-1/summary.json").read_text())
    assert gap1["new_requests"] == rnd1["new_requests"] == 10 and gap1["selection"]["candidates"] == 40
    assert sum(gap1["picked_by"].values()) == 10 and rnd1["picked_by"] == {"random": 10}
    assert not set(gap1["picked_ids"]) & set(json.loads((out / "seed0/round-0/summary.json").read_text())["picked_ids"])
    out_text = capsys.readouterr().out
    assert "teacher requests" in out_text and "Claim" in out_text
    assert out_text.count("round 0: cached") == 2  # each seed's round 0 ran once, for both arms
    # a re-run finds every round finished: nothing trains again, the same curves come out
    again = run(setup, out)
    assert again["curves"] == s["curves"]
    assert capsys.readouterr().out.count(": cached, accuracy") == 8  # 2 seeds x 2 arms x 2 rounds
