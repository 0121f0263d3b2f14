"""`eval --dry-run` against the fake server standing in for OpenRouter: the stated $ range holds what the run then
spends (billed from the server's own usage), the pilot's answers are the run's cache hits, and the cap counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.config import parse_config
from distill.collect.estimate import total_interval
from distill.evaluate import run_eval
from distill.llm import provider_prices
from distill.llm.budget import read_ledger
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"
BENCHES = [
    {"name": "mmlu", "source": str(F / "mmlu_test.jsonl")},
    {"name": "humaneval", "source": str(F / "humaneval_sample.jsonl"), "options": {"timeout_s": 5}},
    {"name": "gsm8k", "source": str(F / "gsm8k_test.jsonl")},
]


@pytest.fixture(autouse=True)
def _fresh_lists() -> None:
    provider_prices._LISTS.clear()


def _cfg(tmp_path: Path, url: str, **extra: Any) -> Any:
    models = [{"name": n, "base_url": url, "model": mid, "api_key": "sk-or-test-123456789",
               "price_source": "openrouter", "params": {"max_tokens": 400}}
              for n, mid in (("gpt-4o", "openai/gpt-4o"), ("llama-3-70b", "meta-llama/llama-3-70b-instruct"))]
    return parse_config({"name": "est", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False, "models": models, "benchmarks": BENCHES, "estimate": {"pilot": 2}, **extra}})


def _ok(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if e.get("kind") == "ok"]


def test_dry_run_range_holds_the_runs_spend(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server()
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{srv.port}/api/v1", budget_usd=1.0)
    run = tmp_path / "run"
    from distill.eval_estimate import run_eval_estimate

    est = run_eval_estimate(cfg.eval, cfg.layout)
    pilot_sent = len(_ok(srv.served()))
    assert pilot_sent == 2 * 3 * 2  # 2 models x 3 benchmarks x a pilot of 2
    gpt = est["models"][0]
    assert gpt["price"]["source"] == "openrouter" and gpt["price"]["usd_per_1m_completion"] == 10.0
    g = gpt["benchmarks"]["gsm8k"]
    assert (g["items"], g["requests"], g["samples"], g["pilot_requests"]) == (5, 5, 5, 2)
    assert g["token_count_method"].startswith("chars/4")  # no tokenizer for these here (tiktoken is offline)
    assert g["prompt_tokens"]["low"] <= g["prompt_tokens"]["expected"] <= g["prompt_tokens"]["high"]
    assert g["prompt_tokens"]["high"] <= g["prompt_tokens_upper_bound"]
    assert json.loads(cfg.layout.eval_estimate.read_text())["totals"] == est["totals"]

    run_eval(cfg.eval, cfg.layout, pipeline="est")
    ok = _ok(srv.served())
    assert len(ok) == 2 * (6 + 3 + 5)  # every item once: the pilot's answers were the run's cache hits
    spent = read_ledger(run / "spend.jsonl", "eval")  # pilot + run, billed from the fake server's usage
    t = est["totals"]
    assert t["cost_usd"]["low"] <= spent <= t["cost_usd"]["high"], (t["cost_usd"], spent)
    assert t["cost_usd"]["high"] <= t["cost_usd_worst_case"]
    done = {"prompt_tokens": 0, "completion_tokens": 0}
    for name in ("gpt-4o", "llama-3-70b"):  # prompt tokens per model x benchmark as the server counted them
        s = json.loads((run / "eval" / name / "summary.json").read_text())
        e = next(m for m in est["models"] if m["model"] == name)["benchmarks"]
        for b, agg in s["benchmarks"].items():
            assert e[b]["prompt_tokens"]["low"] <= agg["prompt_tokens"] <= e[b]["prompt_tokens"]["high"], (name, b)
            done = {k: v + agg[k] for k, v in done.items()}
    # answer length: over the run (one benchmark's interval from a pilot of 2 of its 3 items may miss: HumanEval's
    # two piloted echoes are near-equal and the third is longer; that is what a 95% interval from 2 values means)
    for k, v in done.items():
        assert t[k]["low"] <= v <= t[k]["high"], (k, t[k], v)


def test_dry_run_cli_budget_verdict_and_second_dry_run_is_free(tmp_path: Path, fake_server: Any,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    srv = fake_server()
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{srv.port}/api/v1", budget_usd=0.05)
    raw = cfg.model_dump(mode="json", exclude={"layout"})
    for m in raw["eval"]["models"]:
        m["api_key"] = "sk-or-test-123456789"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["eval", "-c", str(path), "--dry-run", "--limit", "3"]) == 0
    said = capsys.readouterr()
    assert "gpt-4o: $2.50 / $10.00 per 1M prompt" in " ".join((said.out + said.err).split())  # not $2.5 / $10.0
    out = json.loads((tmp_path / "run" / "eval-estimate.json").read_text())
    assert out["limit"] == 3 and out["budget"]["cap_usd"] == 0.05 and out["budget"]["verdict"] in (
        "fits", "may stop at the cap", "expected to stop at the cap")
    assert out["budget"]["spent_usd"] == pytest.approx(out["totals"]["pilot_cost_usd"], abs=1e-5)
    sent = len(_ok(srv.served()))
    # again: the pilot is in the cache, nothing is paid twice
    assert main(["eval", "-c", str(path), "--dry-run", "--limit", "3"]) == 0
    assert len(_ok(srv.served())) == sent
    again = json.loads((tmp_path / "run" / "eval-estimate.json").read_text())
    g = again["models"][0]["benchmarks"]["gsm8k"]
    assert again["totals"]["pilot_cost_usd"] == 0 and g["pilot_requests"] == 0
    assert g["samples_cached"] == g["cached_answers_used"] == 2 and g["requests"] == 1  # 3 items, 2 answered
    assert g["wall_s"] is not None  # timed from the cached answers' latencies, not "—"
    assert "sk-or-test" not in (tmp_path / "run" / "eval-estimate.json").read_text()


def test_total_interval_is_a_prediction_interval_for_the_sum() -> None:
    iv = total_interval([100.0, 140.0, 120.0], 30, 512)
    assert iv["expected"] == pytest.approx(3600)
    # sd 20 over 3 values (t with 2 degrees of freedom: 4.303): half = 4.303 * 20 * sqrt(30 + 900 / 3)
    assert iv["high"] - iv["expected"] == pytest.approx(4.303 * 20 * (30 + 300) ** 0.5)
    assert total_interval([500.0, 510.0], 10, 512)["high"] == 5120  # never past max_tokens x answers
    assert total_interval([5.0], 4, None)["low"] == 0.0  # one value: its own size as the spread


def test_dry_run_under_a_cap_too_small_for_the_pilot(tmp_path: Path, fake_server: Any) -> None:
    """The pilot is paid, so it is held to budget_usd like the run: what does not fit is not sent, and said."""
    from distill.eval_estimate import run_eval_estimate

    srv = fake_server()
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{srv.port}/api/v1", budget_usd=0.002)
    est = run_eval_estimate(cfg.eval, cfg.layout)
    gsm = est["models"][0]["benchmarks"]["gsm8k"]  # gpt-4o, 8-shot: one request's worst case is ~$0.01
    assert gsm["pilot_errors"]["not sent"] == 2 and gsm["completion_tokens_source"].startswith("max_tokens")
    assert est["budget"]["spent_usd"] <= 0.002 and est["budget"]["verdict"] != "fits"
