"""The comparison table: published scores beside measured ones with the difference, the price column's source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.errors import InputError
from distill.report import run_report
from distill.report_config import ReportConfig
from distill.rundir import RunLayout, write_json
from tests.eval.test_report import make_eval_dir

RESULTS = {"gpt": {"mmlu": [1] * 80 + [0] * 20, "humaneval": [1] * 9 + [0], "gsm8k": [1] * 45 + [0] * 5},
           "student": {"mmlu": [1] * 40 + [0] * 60, "humaneval": [0] * 10, "gsm8k": [1] * 20 + [0] * 30}}


def _run(tmp_path: Path) -> Path:
    run = make_eval_dir(tmp_path / "run", RESULTS)
    f = run / "eval" / "gpt" / "summary.json"
    s = json.loads(f.read_text())
    s["cost"] = {"basis": "price table", "usd_per_1m_output_tokens": 10.0, "usd_per_1m_prompt_tokens": 2.5,
                 "price": {"source": "openrouter", "url": "https://openrouter.ai/api/v1/models",
                           "fetched_at": "2026-12-02T13:00:00Z"}}
    write_json(f, s)
    return run


def test_published_scores_beside_measured_with_difference(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rcfg = ReportConfig(benchmarks=["mmlu", "humaneval", "gsm8k"], published={
        "gpt": {"scores": {"mmlu": 88.7, "humaneval": 90.2}, "source": "the maker's announcement",
                "note": "MMLU 5-shot; HumanEval 0-shot"}})
    run_report(rcfg, RunLayout(run), pipeline="cmp")
    md = (run / "report" / "report.md").read_text()
    assert "| Model | MMLU (5-shot) | HumanEval (pass@1) | GSM8K (8-shot) | $ per 1M tokens |" in md
    # MMLU measured 80.0 [71.1, 86.7] (Wilson): the published 88.7 lies outside (Δ in bold); HumanEval 90.0
    # [59.6, 98.2] holds 90.2; GSM8K has no published number
    row = next(line for line in md.splitlines() if line.startswith("| gpt |"))
    assert row == ("| gpt | 80.0 [71.1, 86.7] · pub. 88.7, Δ **-8.7** | 90.0 [59.6, 98.2] · pub. 90.2, Δ -0.2 | "
                   "90.0 [78.6, 95.7] | $2.50 in / $10.00 out |")
    assert "gpt: the maker's announcement; MMLU 5-shot; HumanEval 0-shot." in md
    assert ("gpt: $ per 1M prompt / completion tokens from OpenRouter's model list "
            "(https://openrouter.ai/api/v1/models, read 2026-12-02T13:00:00Z).") in md
    assert "Protocol, the same for every row: MMLU (5-shot): 100 items, 5 shots" in md
    rep = json.loads((run / "report" / "report.json").read_text())
    pub = rep["rows"][0]["published"]
    assert pub["mmlu"]["diff"] == pytest.approx(0.80 - 0.887) and pub["mmlu"]["inside_interval"] is False
    assert pub["humaneval"]["inside_interval"] is True and "gsm8k" not in pub


def test_published_for_unknown_model_or_column_is_one_error(tmp_path: Path) -> None:
    run = _run(tmp_path)
    with pytest.raises(InputError, match=r"report.published: claude not evaluated \(have: gpt, student\)"):
        run_report(ReportConfig(published={"claude": {"scores": {"mmlu": 80}}}), RunLayout(run), pipeline="c")
    with pytest.raises(InputError, match=r"report.published.gpt.scores: mmlu_pro is not a column"):
        run_report(ReportConfig(published={"gpt": {"scores": {"mmlu_pro": 70}}}), RunLayout(run), pipeline="c")
    with pytest.raises(ValueError, match="less than or equal to 100"):
        ReportConfig(published={"gpt": {"scores": {"mmlu": 887}}})  # a share typed as per-mille, caught on load
