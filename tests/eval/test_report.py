"""report and the gap-explorer notebook render from stored eval results (hand-made eval dirs, no model calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.errors import InputError
from distill.report import build_table, gap_recovered, run_report
from distill.report_config import ReportConfig
from distill.rundir import RunLayout, base_summary, write_json
from tests.paths import REPO

NOTEBOOK = REPO / "notebooks" / "gap_explorer.ipynb"

# model -> benchmark -> per-item correctness; subjects for mmlu
RESULTS = {
    "teacher": {"gsm8k": [1, 1, 1, 1, 0], "mmlu": [1, 1, 1, 0], "humaneval": [1, 0]},
    "student": {"gsm8k": [1, 1, 1, 0, 0], "mmlu": [1, 0, 1, 0], "humaneval": [0, 0]},
    "base": {"gsm8k": [1, 0, 0, 0, 0], "mmlu": [0, 0, 1, 0], "humaneval": [0, 0]},
}
ROLES = {"teacher": "teacher", "student": "student", "base": "base"}
INFO = {"gsm8k": ("gsm8k", 8, "accuracy"), "mmlu": ("mmlu", 5, "accuracy"), "humaneval": ("humaneval", 0, "pass@1")}


def make_eval_dir(run: Path, results: dict[str, dict[str, list[int]]] = RESULTS) -> Path:
    """Write what `distill eval` writes: per-item rows, per-model summaries, the eval index."""
    from distill.benchmarks import mean_stderr

    index = {}
    for model, benches in results.items():
        d = run / "eval" / model
        d.mkdir(parents=True)
        summ_b = {}
        for b, correct in benches.items():
            rows = []
            for i, c in enumerate(correct):
                subject = ("astronomy" if i % 2 else "algebra") if b == "mmlu" else None
                toks = 10 * (i + 1) + (20 if model == "teacher" else 0)
                # the teacher ends its replies as the exemplars do ("The answer is N."); the others do not, so
                # lm-eval's strict-match fails them while its flexible-extract (last number) does not
                said = i if c else -1
                output = f"{model} thinks. The answer is {said}." if model == "teacher" else f"{model} says {said}"
                rows.append({"id": f"{b}-{i}", "benchmark": b, "subject": subject, "sample_index": 0,
                             "prompt": [{"role": "user", "content": f"{b} question {i}?"}],
                             "output": output, "reasoning": None, "reference": str(i),
                             "extracted": str(i if c else -1), "correct": bool(c), "detail": None,
                             "prompt_tokens": 5, "completion_tokens": toks, "latency_s": 0.1,
                             "finish_reason": "stop", "cost_usd": 0.0, "error": None})
            (d / f"{b}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            score, se = mean_stderr([float(c) for c in correct])
            kind, k, metric = INFO[b]
            summ_b[b] = {"metric": metric, "score": score, "stderr": se, "items": len(correct), "failed": 0,
                         "k_shot": k, "benchmark": {"name": b, "kind": kind, "k_shot": k, "metric": metric},
                         "max_tokens": 1024 if model == "teacher" and b == "gsm8k" else 512, "temperature": 0.0,
                         "n": 1}
        s = base_summary("eval", f"fp-{model}", {})
        cost = ({"basis": "price table", "usd_per_1m_output_tokens": 0.6} if model == "teacher" else
                {"basis": "gpu", "usd_per_1m_output_tokens": 0.02, "output_tokens_per_hour": 1e8})
        s.update(model=model, role=ROLES.get(model, "other"), benchmarks=summ_b, cost=cost, complete=True,
                 grader_version="test-1")
        write_json(d / "summary.json", s)
        index[model] = {"role": s["role"], "complete": True}
    top = base_summary("eval", "fp", {})
    top.update(models=index, complete=True)
    write_json(run / "eval" / "summary.json", top)
    return run


def test_gap_recovered() -> None:
    assert gap_recovered(0.6, 0.2, 0.8) == pytest.approx(2 / 3)
    assert gap_recovered(0.9, 0.2, 0.8) == pytest.approx(7 / 6)  # the student can overtake the teacher
    assert gap_recovered(0.5, 0.5, 0.5) is None and gap_recovered(None, 0.1, 0.5) is None


def test_report_renders_table_json_chart(tmp_path: Path) -> None:
    run = make_eval_dir(tmp_path / "run")
    s = run_report(None, RunLayout(run), pipeline="demo")
    out = run / "report"
    md = (out / "report.md").read_text()
    assert "| Model | GSM8K (8-shot) | MMLU (5-shot) | HumanEval (pass@1) | $ per 1M tokens |" in md
    # 95% Wilson intervals (4 of 5: [37.6, 96.4]; 0 of 2 keeps an interval, [0.0, 65.8]); the served model's $ is GPU
    assert "| teacher (teacher) | 80.0 [37.6, 96.4] | 75.0 [30.1, 95.4] | 50.0 [9.5, 90.5] | $0.60 |" in md
    assert "| student (student) | 60.0 [23.1, 88.2] | 50.0 [15.0, 85.0] | 0.0 [0.0, 65.8] | $0.0200 out (GPU) |" in md
    assert "Protocol (a model in parentheses ran differently): GSM8K (8-shot): 5 items, 8 shots" in md
    assert "max 512 (teacher 1024) tokens" in md
    # gsm8k: (0.6 - 0.2) / (0.8 - 0.2) = 67%; mmlu: (0.5 - 0.25) / (0.75 - 0.25) = 50%; humaneval: 0 / 0.5 = 0%,
    # each with its paired bootstrap interval, and the gap in points
    assert "| **gap recovered** | 67% [0%, 100%] | 50% [0%, 100%] | 0% [0%, 0%] | |" in md
    assert "| **gap (teacher − student, points)** | +20.0 [+0.0, +60.0] | +25.0 [+0.0, +75.0] |" in md
    assert "95% paired bootstrap interval over the items both models answered (10,000 resamples" in md
    # the protocol of each column; a setting the models did not share is shown per model
    assert ("| GSM8K (8-shot) | 8 | chat, exemplars as multi-turn user/assistant turns | generative: the final "
            "number read from the reply, compared by value | 512 (teacher 1024) | 0 | 1 | test-1 |"
            ) in md
    assert "| HumanEval (pass@1) | 0 | chat, zero-shot | generative: the reply's code run" in md
    assert "(not log-likelihood)" in md
    # lm-eval's own filters on the same generations: the teacher's "The answer is N." passes strict-match,
    # the student's "student says N" only flexible-extract
    assert "| teacher | 80.0 ± 20.0 | 80.0 ± 20.0 | 80.0 ± 20.0 |" in md
    assert "| student | 60.0 ± 24.5 | 0.0 | 60.0 ± 24.5 |" in md
    assert "task `gsm8k_cot` (version 3.0), filters read from its installed `lm_eval/tasks/gsm8k/gsm8k-cot.yaml`" in md
    rep = json.loads((out / "report.json").read_text())
    assert [c["benchmark"] for c in rep["columns"]] == ["gsm8k", "mmlu", "humaneval"]
    assert rep["gap_recovered"]["gsm8k"] == pytest.approx(2 / 3)
    assert rep["rows"][1]["usd_per_1m_tokens"] == 0.02 and rep["roles"] == ROLES
    png = (out / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert s["teacher_accuracy"] == pytest.approx(0.8) and s["student_accuracy"] == pytest.approx(0.6)
    assert s["student_over_teacher"] == pytest.approx(0.75) and s["primary"] == "gsm8k"
    p = s["paired"]["gsm8k"]
    assert p["items"] == 5 and p["gap"]["estimate"] == pytest.approx(0.2) and p["gap"]["resamples"] == 10_000
    assert p["recovered"]["estimate"] == pytest.approx(2 / 3)
    assert p["recovered"]["low"] <= 2 / 3 <= p["recovered"]["high"]
    assert s["lm_eval"]["gsm8k"]["models"]["student"]["strict-match"]["score"] == 0.0
    assert s["protocol"]["mmlu"]["shots"] == "5" and rep["paired"]["mmlu"]["gap"]["estimate"] == pytest.approx(0.25)
    # the chart: one decimal, $/1M in the legend, gap recovered under each group
    assert s["chart"]["bars"]["teacher"]["gsm8k"] == "80.0" and s["chart"]["missing"]["teacher"] == []
    assert s["chart"]["legend"][0] == "teacher (teacher) · $0.60/1M tokens"
    assert s["chart"]["xlabels"][0] == "GSM8K (8-shot)\ngap recovered: 67% [0%, 100%]"
    # up to date: skipped (same summary); --force re-renders
    mtime = (out / "report.md").stat().st_mtime_ns
    run_report(None, RunLayout(run), pipeline="demo")
    assert (out / "report.md").stat().st_mtime_ns == mtime
    s2 = run_report(ReportConfig(benchmarks=["mmlu"], primary="mmlu", title="T"), RunLayout(run), pipeline="demo")
    assert s2["student_over_teacher"] == pytest.approx(0.5 / 0.75)
    assert "| Model | MMLU (5-shot) | $ per 1M tokens |" in (out / "report.md").read_text()


def test_report_without_base_and_bad_input(tmp_path: Path) -> None:
    run = make_eval_dir(tmp_path / "run", {k: v for k, v in RESULTS.items() if k != "base"})
    from distill.report import _load_models

    table = build_table(_load_models(run / "eval"), ReportConfig(), run / "eval")
    assert table["gap_recovered"] == {"gsm8k": None, "mmlu": None, "humaneval": None}
    # without a base the last row is student / teacher, with its paired interval
    assert table["paired"]["gsm8k"]["recovered"]["definition"] == "student / teacher"
    assert table["paired"]["gsm8k"]["recovered"]["estimate"] == pytest.approx(0.75)
    from distill.report import render_markdown

    assert "| **student / teacher** | 75% [" in render_markdown(table, "t")
    with pytest.raises(InputError, match="report.benchmarks: arc not evaluated"):
        build_table(_load_models(run / "eval"), ReportConfig(benchmarks=["arc"]))
    with pytest.raises(InputError, match="no finished eval stage"):
        run_report(None, RunLayout(tmp_path / "nothing"), pipeline="x")


def test_report_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_eval_dir(tmp_path / "run")
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"name: demo\nrun_dir: {run}\nreport:\n  title: My distillation\n")
    assert main(["report", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "# My distillation" in out and "gap recovered" in out and "chart.png" in out


def test_gap_explorer_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run = make_eval_dir(tmp_path / "run")
    monkeypatch.setenv("DISTILL_RUN_DIR", str(run))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs: list[dict[str, Any]] = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "comparing teacher='teacher' vs student='student'" in text
    # gsm8k item 3 + mmlu item 1 + humaneval item 0: solved by the teacher only; none the other way round
    assert "teacher solves, student fails: 3 of 11 items" in text
    assert "student solves, teacher fails: 0 of 11 items" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # per-benchmark, per-subject, output lengths


def test_chart_labels_one_decimal_and_leaves_a_missing_score_out(tmp_path: Path) -> None:
    # 997 of 1000 right must read 99.7, not 100; the student never ran mmlu: a gap marked n/a, not a 0 bar
    results = {"teacher": {"gsm8k": [1] * 997 + [0] * 3, "mmlu": [1, 0]}, "student": {"gsm8k": [1] * 900 + [0] * 100}}
    run = make_eval_dir(tmp_path / "run", results)
    s = run_report(None, RunLayout(run), pipeline="c")
    assert s["chart"]["bars"]["teacher"] == {"gsm8k": "99.7", "mmlu": "50.0"}
    assert s["chart"]["bars"]["student"] == {"gsm8k": "90.0"} and s["chart"]["missing"]["student"] == ["mmlu"]
    assert s["chart"]["legend"][1] == "student (student) · $0.0200/1M tokens"
    assert s["chart"]["xlabels"][0].startswith("GSM8K (8-shot)\nstudent/teacher: 90% [")
    md = (run / "report" / "report.md").read_text()
    assert "| student (student) | 90.0 [88.0, 91.7] | — | $0.0200 out (GPU) |" in md


def test_report_says_how_to_get_lm_eval_when_it_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now raises ImportError
    run = make_eval_dir(tmp_path / "run")
    s = run_report(None, RunLayout(run), pipeline="d")
    md = (run / "report" / "report.md").read_text()
    assert "lm-eval is not installed: pip install 'lm-eval>=0.4.13,<0.5'" in md
    assert s["lm_eval"]["gsm8k"]["available"] is False and "gap recovered" in md
