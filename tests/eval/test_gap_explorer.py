"""The gap explorer's rules (error taxonomy, first differing step, difficulty features, rounds curves) and its
notebook's new sections, executed on a hand-made demo-like eval dir and a rounds summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill import gaps
from distill.rundir import base_summary, write_json
from tests.paths import REPO

NOTEBOOK = REPO / "notebooks" / "gap_explorer.ipynb"
T = "7+6+0=13 4+8+1=13 3+5+1=9 The answer is 933."  # the teacher's solution of 347 + 586


def row(output: str | None, correct: bool, *, extracted: str | None = "0", detail: str | None = None,
        finish: str = "stop", reference: str = "933") -> dict[str, Any]:
    return {"output": output, "correct": correct, "extracted": extracted, "detail": detail, "finish_reason": finish,
            "reference": reference}


def test_steps_and_first_difference() -> None:
    assert gaps.equations(T)[:2] == [("7+6+0", "13"), ("4+8+1", "13")]
    assert gaps.steps("First 12 * 3 = 36. Then 36 + 4 = 40.") == ["12*3=36", "36+4=40"]
    assert gaps.steps("No maths here. Just words!") == ["No maths here.", "Just words!"]
    d = gaps.first_difference(T, "7+6+0=13 4+8+1=12 3+5+1=9 The answer is 923.")
    assert d == {"step": 1, "teacher": "4+8+1=13", "student": "4+8+1=12", "shared": 1}
    assert gaps.first_difference(T, T)["step"] is None
    short = gaps.first_difference(T, "7+6+0=13")
    assert short["step"] == 1 and short["student"] == "(stops)"
    assert gaps.equation_true("4+8+1", "13") and gaps.equation_true("4+8+1", "12") is False
    assert gaps.equation_true("12*3-6", "30") and gaps.equation_true("7/0", "1") is None


def test_error_taxonomy_rules() -> None:
    assert gaps.error_type(row(T, True)) is None
    assert gaps.error_type(row("7+6+0=13 4+8", False, detail="truncated", finish="length")) == "truncated"
    assert gaps.error_type(row("I am not sure", False, extracted=None, detail="no_answer")) == "no answer"
    assert gaps.error_type(row("it comes to 933 or so", False, extracted=None, detail="no_answer")) == "format"
    slip = row("7+6+0=13 4+8+1=12 3+5+1=9 The answer is 923.", False, extracted="923", detail="mismatch")
    assert gaps.error_type(slip, T) == "wrong answer, right method"  # the teacher's steps, one result wrong
    assert gaps.error_type(slip) == "wrong answer, right method"  # without the teacher: a false equation
    other = row("3+5+0=8 4+8+0=12 7+6+0=13 The answer is 8213.", False, extracted="8213", detail="mismatch")
    assert gaps.error_type(other, T) == "wrong method"
    consistent = row("3+4=7 The answer is 7.", False, extracted="7", detail="mismatch")
    assert gaps.error_type(consistent) == "wrong method"  # every equation true, yet the wrong answer


QUESTIONS = [(347, 586), (120, 311), (999, 999), (405, 105), (555, 445), (101, 202), (678, 789), (250, 250),
             (132, 864), (909, 191), (444, 444), (318, 276)]


def _steps(a: int, b: int, slip_at: int | None = None) -> str:
    from distill.demo.task import solution

    s = solution(a, b)
    if slip_at is None:
        return s
    parts = s.split(" ")
    left, right = parts[slip_at].split("=")
    parts[slip_at] = f"{left}={int(right) + 1}"
    total = a + b + 10 ** slip_at
    return " ".join(parts[:-4]) + f" The answer is {total}."


def make_demo_eval(run: Path) -> Path:
    """A demo-like eval dir: a teacher solving every item, a student with one error of each type."""
    from distill.benchmarks import mean_stderr

    student_out = {0: _steps(347, 586, slip_at=1), 1: "The total might be 431 or 432.", 2: "9+9+0=18 9+9+1=19 9+",
                   3: "I cannot tell",
                   4: "5+5+0=10 The answer is 10."}
    index = {}
    for model in ("teacher", "student"):
        rows = []
        for i, (a, b) in enumerate(QUESTIONS):
            out = _steps(a, b) if model == "teacher" or i not in student_out else student_out[i]
            ok = out == _steps(a, b)
            from distill.answers import grade

            g = grade(out, str(a + b), "number", finish_reason="length" if (model, i) == ("student", 2) else "stop")
            assert g.correct == ok
            rows.append({"id": f"arith-{i}", "benchmark": "arith", "subject": None, "sample_index": 0,
                         "prompt": [{"role": "user", "content": f"Ann has {a} coins and gets {b} more." + " x" * i}],
                         "output": out, "reasoning": None, "reference": str(a + b), "extracted": g.extracted,
                         "correct": g.correct, "detail": g.reason, "prompt_tokens": 5, "completion_tokens": 20,
                         "latency_s": 0.1, "finish_reason": "length" if (model, i) == ("student", 2) else "stop",
                         "cost_usd": 0.0, "error": None})
        d = run / "eval" / model
        d.mkdir(parents=True)
        (d / "arith.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        score, se = mean_stderr([float(r["correct"]) for r in rows])
        s = base_summary("eval", f"fp-{model}", {})
        s.update(model=model, role=model, complete=True, grader_version="t",
                 benchmarks={"arith": {"metric": "accuracy", "score": score, "stderr": se, "items": len(rows),
                                       "failed": 0, "benchmark": {"name": "arith", "kind": "local"}, "n": 1}},
                 cost={"usd_per_1m_output_tokens": 0.5 if model == "teacher" else 0.01})
        write_json(d / "summary.json", s)
        index[model] = {"role": model, "complete": True}
    top = base_summary("eval", "fp", {})
    top.update(models=index, complete=True)
    write_json(run / "eval" / "summary.json", top)
    return run


def _rounds_summary(run: Path) -> None:
    rounds = [{"round": r, "teacher_requests": 100, "cost_usd": 0.1, "picked_by": {"uncertainty": 100},
               "student": {"arith": {"score": 0.5 + 0.1 * r, "stderr": 0.02}}} for r in range(3)]
    (run / "rounds").mkdir(parents=True)
    write_json(run / "rounds" / "summary.json", {"stage": "rounds", "rounds": rounds})


def test_taxonomy_features_and_rounds_curves_on_a_demo_eval(tmp_path: Path) -> None:
    import pandas as pd

    from distill.report import eval_rows_frame

    run = make_demo_eval(tmp_path / "run")
    rows = eval_rows_frame(run)
    tax = gaps.taxonomy(rows, "teacher")
    got = dict(zip(tax[tax["model"] == "student"]["id"], tax[tax["model"] == "student"]["error_type"]))
    assert got["arith-0"] == "wrong answer, right method" and got["arith-1"] == "format"
    assert got["arith-2"] == "truncated" and got["arith-3"] == "no answer" and got["arith-4"] == "wrong method"
    assert pd.isna(got["arith-5"]) and tax[tax["model"] == "teacher"]["error_type"].isna().all()
    feats = gaps.difficulty_features(rows, "teacher")
    assert set(feats["teacher_steps"]) == {3} and feats["question_words"].nunique() == len(QUESTIONS)
    _rounds_summary(run)
    c = gaps.rounds_curves(run / "rounds" / "summary.json")
    assert [p["requests"] for p in c["arith"]] == [100, 200, 300]
    assert c["arith"][2]["accuracy"] == pytest.approx(0.7) and c["arith"][0]["ci95"] == pytest.approx(0.0392)
    # make demo-rounds' summary: one curve per arm, as written
    curves = {"random": [{"requests": 200, "accuracy": 0.8, "ci95": 0.1, "seeds": [0.7, 0.9]}],
              "gap": [{"requests": 200, "accuracy": 0.85, "ci95": 0.05, "seeds": [0.8, 0.9]}]}
    write_json(tmp_path / "demo.json", {"stage": "demo-rounds", "curves": curves})
    assert gaps.rounds_curves(tmp_path / "demo.json") == curves


def test_gap_explorer_new_sections_execute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run = make_demo_eval(tmp_path / "run")
    _rounds_summary(run)
    monkeypatch.setenv("DISTILL_RUN_DIR", str(run))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "errors per model and type:" in text
    assert "[wrong answer, right method] student arith/arith-0" in text and "[format] student arith/arith-1" in text
    assert "where the student departs" in text and "->  1  4+8+1=13" in text  # side by side, first departure
    assert "arith [(100, 50.0), (200, 60.0), (300, 70.0)]" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # scores, lengths, taxonomy, difficulty, frontier, rounds (no subjects here)
    assert len(images) >= 6, len(images)
