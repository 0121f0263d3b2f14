"""The comparison table's cells say what they are: $ per 1M tokens on one basis for API and GPU rows, intervals
that do not vanish at 0% / 100%, incomplete cells marked, a protocol footnote that notices what differs, and
published numbers of models not evaluated yet left out instead of failing the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.config import parse_config
from distill.errors import InputError
from distill.evaluate import run_eval
from distill.llm import provider_prices
from distill.report import run_report, score_interval
from distill.report_config import ReportConfig
from distill.rundir import RunLayout, write_json
from tests.eval.test_report import make_eval_dir
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"
RESULTS = {"gpt": {"mmlu": [1] * 80 + [0] * 20, "gsm8k": [1] * 20}, "student": {"mmlu": [0] * 20, "gsm8k": [1] * 10}}


@pytest.fixture(autouse=True)
def _fresh_lists() -> None:
    provider_prices._LISTS.clear()


def _edit(run: Path, model: str, fn: Any) -> None:
    f = run / "eval" / model / "summary.json"
    s = json.loads(f.read_text())
    fn(s)
    write_json(f, s)


def _row(md: str, model: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| {model} "))


def test_api_and_gpu_rows_price_every_token_processed(tmp_path: Path, fake_server: Any) -> None:
    """An API row's $ per 1M is its prompt and completion prices at its own token mix (from a real eval against
    the fake OpenRouter); a GPU row's is GPU $/hour over prompt + completion tokens per hour."""
    srv = fake_server()
    cfg = parse_config({"name": "t", "run_dir": str(tmp_path / "run"), "eval": {"progress": False, "models": [
        {"name": "gpt", "base_url": f"http://127.0.0.1:{srv.port}/api/v1", "model": "openai/gpt-4o",
         "price_source": "openrouter", "api_key": "sk-or-test-123456789", "params": {"max_tokens": 64}}],
        "benchmarks": [{"name": "gsm8k", "source": str(F / "gsm8k_test.jsonl")}]}})
    run_eval(cfg.eval, cfg.layout, pipeline="t")
    run = tmp_path / "run"
    s = json.loads((run / "eval" / "gpt" / "summary.json").read_text())
    p, c = s["benchmarks"]["gsm8k"]["prompt_tokens"], s["benchmarks"]["gsm8k"]["completion_tokens"]
    assert s["cost"]["basis"] == "per token"  # not "price table": the price came from OpenRouter's list
    assert s["cost"]["usd_per_1m_tokens"] == pytest.approx((2.5 * p + 10.0 * c) / (p + c), abs=1e-6)
    assert p > 5 * c  # 8-shot prompts: the blended figure sits near the prompt price, far from $10 out
    # a served student next to it: 2.50 $/hour, 1M tokens/hour processed (of which 10k written)
    student = run / "eval" / "student"
    student.mkdir()
    ss = dict(s, model="student", role="student", cost={
        "basis": "gpu", "gpu_usd_per_hour": 2.5, "output_tokens_per_hour": 1e4, "tokens_per_hour": 1e6,
        "usd_per_1m_output_tokens": 250.0, "usd_per_1m_tokens": 2.5, "price": {"source": "gpu"}})
    write_json(student / "summary.json", ss)
    (student / "gsm8k.jsonl").write_text((run / "eval" / "gpt" / "gsm8k.jsonl").read_text())
    run_report(ReportConfig(), RunLayout(run), pipeline="t")
    md = (run / "report" / "report.md").read_text()
    blended = s["cost"]["usd_per_1m_tokens"]
    assert _row(md, "gpt").endswith(f"| ${blended:.2f} ($2.50 in / $10.00 out) |")
    assert _row(md, "student").endswith("| $2.50 (GPU) |")  # not $250 "out": prefill is in the GPU time too
    assert "over every token the eval processed, prompt + completion" in md
    assert "student: GPU $/hour ÷ 1,000,000 tokens/hour (prompt + completion) measured during eval." in md


def test_intervals_near_0_and_100_and_incomplete_cells(tmp_path: Path) -> None:
    assert score_interval({"score": 0.0, "items": 20}) == (0.0, pytest.approx(0.1611, abs=1e-4))
    assert score_interval({"score": 1.0, "items": 20})[0] == pytest.approx(0.8389, abs=1e-4)
    run = make_eval_dir(tmp_path / "run", RESULTS)
    _edit(run, "student", lambda s: s["benchmarks"]["mmlu"].update(failed=8, samples=20))
    rcfg = ReportConfig(benchmarks=["mmlu", "gsm8k"], published={"student": {"scores": {"mmlu": 5.0}}})
    run_report(rcfg, RunLayout(run), pipeline="t")
    md = (run / "report" / "report.md").read_text()
    # 0 of 20 keeps an interval that holds 5.0 (± 1.96 SE gave [0, 0]: Δ in bold); 8 of 20 were never answered
    assert "| student (student) | 0.0 [0.0, 16.1] † 12/20 answered · pub. 5.0, Δ -5.0 |" in md
    assert "| gpt | 80.0 [71.1, 86.7] | 100.0 [83.9, 100.0] |" in md


def test_protocol_footnote_notices_items_and_sampling(tmp_path: Path) -> None:
    run = make_eval_dir(tmp_path / "run", RESULTS)  # gpt ran 100 MMLU items, the student 20
    _edit(run, "gpt", lambda s: s["benchmarks"]["gsm8k"].update(sampling={"temperature": 0, "top_p": 0.9, "n": 1}))
    run_report(ReportConfig(), RunLayout(run), pipeline="t")
    md = (run / "report" / "report.md").read_text()
    assert "Protocol (a model in parentheses ran differently): MMLU (5-shot): 100 (student 20) items" in md
    assert 'other sampling {"top_p":0.9} (student default)' in md
    same = make_eval_dir(tmp_path / "same", {"a": {"gsm8k": [1, 0]}, "b": {"gsm8k": [0, 1]}})
    run_report(ReportConfig(), RunLayout(same), pipeline="t")
    assert "Protocol, the same for every row: GSM8K (8-shot): 2 items" in (same / "report" / "report.md").read_text()


def test_published_for_a_configured_model_not_evaluated_yet(tmp_path: Path) -> None:
    """`eval --model gpt` then `report`: the published numbers of the others wait, a typo is still an error."""
    run = make_eval_dir(tmp_path / "run", {"gpt": RESULTS["gpt"]})
    rcfg = ReportConfig(published={"gpt": {"scores": {"mmlu": 88.7}}, "llama": {"scores": {"mmlu": 82.0}}})
    run_report(rcfg, RunLayout(run), pipeline="t", eval_models=["gpt", "llama"])
    md = (run / "report" / "report.md").read_text()
    assert "pub. 88.7" in md and "gpt: ." not in md and "Published scores not shown for llama: not evaluated yet." in md
    with pytest.raises(InputError, match=r"report.published: lama not evaluated"):
        run_report(ReportConfig(published={"lama": {"scores": {"mmlu": 82.0}}}), RunLayout(run), pipeline="t",
                   eval_models=["gpt", "llama"], force=True)
