"""Prices from the provider's model list (OpenRouter's shape, served over real HTTP by the fake server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.config import parse_config
from distill.errors import DistillError
from distill.evaluate import run_eval
from distill.llm import EndpointConfig
from distill.llm import provider_prices as pp
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"


@pytest.fixture(autouse=True)
def _fresh_lists() -> None:
    pp._LISTS.clear()  # each test starts its own server: no list read by an earlier one


def _ep(url: str, model: str, **kw: Any) -> EndpointConfig:
    return EndpointConfig(name="m", base_url=url, model=model, api_key="sk-or-secret-123456789", **kw)


def test_openrouter_list_prices_config_wins_and_table_elsewhere(fake_server: Any) -> None:
    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    ep, rec = pp.resolve_price(_ep(url, "meta-llama/llama-3-70b-instruct", price_source="openrouter"))
    # "0.0000003" $/token -> $0.30 per 1M; the built-in table knows no llama-3 (non-3.1) price at all
    assert ep.price is not None and (ep.price.prompt, ep.price.completion) == (0.3, 0.4)
    assert rec["source"] == "openrouter" and rec["url"] == f"{url}/models" and rec["fetched_at"].endswith("Z")
    assert rec["provider_pricing"]["prompt"] == "0.0000003"
    # one GET per base URL, however many models are priced
    pp.resolve_price(_ep(url, "openai/gpt-4o", price_source="openrouter"))
    assert sum(e.get("kind") == "models_list" for e in srv.served()) == 1
    # a configured price always wins: the list is not even read
    ep2, rec2 = pp.resolve_price(_ep("https://openrouter.ai/api/v1", "openai/gpt-4o",
                                     price={"prompt": 1.0, "completion": 2.0}))
    assert rec2["source"] == "config" and ep2.price is not None and ep2.price.completion == 2.0
    # auto elsewhere: the built-in table (no request)
    _, rec3 = pp.resolve_price(_ep(url, "gpt-4o-mini"))
    assert rec3["source"] == "table" and rec3["usd_per_1m_completion"] == 0.60
    assert pp.uses_provider_list(_ep("https://openrouter.ai/api/v1", "x/y"))
    assert not pp.uses_provider_list(_ep("https://openrouter.ai/api/v1", "x/y", price_source="table"))


def test_unknown_model_variable_price_and_unreachable_list_are_one_line_errors(fake_server: Any) -> None:
    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    with pytest.raises(DistillError, match=r"'openai/gpt-4oo' is not in the model list .*did you mean openai/gpt-4o"):
        pp.resolve_price(_ep(url, "openai/gpt-4oo", price_source="openrouter"))
    with pytest.raises(DistillError, match="no fixed price for 'openrouter/auto'"):
        pp.resolve_price(_ep(url, "openrouter/auto", price_source="openrouter"))
    with pytest.raises(DistillError, match="cannot read the model list") as e:
        pp.resolve_price(_ep("http://127.0.0.1:9/api/v1", "openai/gpt-4o", price_source="openrouter"))
    assert "sk-or-secret" not in str(e.value)


def test_eval_bills_at_the_listed_price_and_records_it(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    cfg = parse_config({"name": "p", "run_dir": str(tmp_path / "run"), "eval": {"progress": False, "models": [
        {"name": "llama", "base_url": url, "model": "meta-llama/llama-3-70b-instruct", "price_source": "openrouter",
         "api_key": "sk-or-secret-123456789"},
        {"name": "gpt", "base_url": url, "model": "openai/gpt-4o", "price_source": "openrouter",
         "price": {"prompt": 5.0, "completion": 15.0}}],
        "benchmarks": [{"name": "echo", "kind": "local", "source": str(F / "echo_numeric.jsonl")}]}})
    run_eval(cfg.eval, cfg.layout, pipeline="p")
    run = tmp_path / "run"
    s = json.loads((run / "eval" / "llama" / "summary.json").read_text())
    rows = [json.loads(x) for x in (run / "eval" / "llama" / "echo.jsonl").read_text().splitlines()]
    assert s["cost"]["price"]["source"] == "openrouter" and s["cost"]["usd_per_1m_output_tokens"] == 0.4
    # every row is billed at the listed price from the fake's usage
    assert all(r["cost_usd"] == pytest.approx((0.3 * r["prompt_tokens"] + 0.4 * r["completion_tokens"]) / 1e6)
               for r in rows)
    prices = json.loads((run / "prices.json").read_text())["eval"]
    assert prices["llama"]["usd_per_1m_prompt"] == 0.3 and prices["llama"]["recorded_at"].endswith("Z")
    assert prices["gpt"]["source"] == "config" and prices["gpt"]["usd_per_1m_completion"] == 15.0
    man = json.loads((run / "eval" / "manifest.json").read_text())
    assert man["models"]["llama"]["price"]["fetched_at"] == prices["llama"]["fetched_at"]
    for f in (run / "prices.json", run / "eval" / "manifest.json", run / "eval" / "llama" / "summary.json"):
        assert "sk-or-secret" not in f.read_text()


def test_collect_teacher_on_openrouter_is_billed_at_the_listed_price(tmp_path: Path, fake_server: Any) -> None:
    from distill.collect import run_collect, run_estimate

    srv = fake_server()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"q": f"What is {i} + {i}?"}) + "\n" for i in range(4)))
    cfg = parse_config({"name": "c", "run_dir": str(tmp_path / "run"), "collect": {
        "progress": False, "output_format": "jsonl", "prompts": {"path": str(prompts), "field": "q"},
        "estimate": {"pilot": 1},
        "teachers": [{"name": "qwen", "base_url": f"http://127.0.0.1:{srv.port}/api/v1",
                      "model": "qwen/qwen-2-72b-instruct", "price_source": "openrouter",
                      "params": {"max_tokens": 64}}]}})
    est = run_estimate(cfg.collect, cfg.layout)
    assert est[0]["cost_usd_online"]["expected"] > 0  # priced: the table knows no qwen-2 (only qwen-2.5)
    s = run_collect(cfg.collect, cfg.layout)
    rec = json.loads((tmp_path / "run" / "prices.json").read_text())["collect"]["qwen"]
    assert rec["source"] == "openrouter" and rec["usd_per_1m_prompt"] == 0.9
    assert s["cost_usd"] == pytest.approx((0.9 * s["prompt_tokens"] + 0.9 * s["completion_tokens"]) / 1e6, abs=1e-6)


def test_routing_suffixes_are_priced_as_the_listed_model(fake_server: Any) -> None:
    """`:nitro` / `:floor` / `:online` are OpenRouter routing shortcuts of a listed model, not listed themselves."""
    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    ep, rec = pp.resolve_price(_ep(url, "meta-llama/llama-3-70b-instruct:nitro", price_source="openrouter"))
    assert ep.price is not None and (ep.price.prompt, ep.price.completion) == (0.3, 0.4)
    assert ep.model == "meta-llama/llama-3-70b-instruct:nitro"  # what is sent stays as configured
    assert rec["listed_as"] == "meta-llama/llama-3-70b-instruct" and "fastest provider" in rec["note"]
    _, rec = pp.resolve_price(_ep(url, "openai/gpt-4o:online", price_source="openrouter"))
    assert rec["usd_per_1m_completion"] == 10.0 and "web-search fees" in rec["note"]
    # a listed-or-not variant with its own price is never guessed from the base model
    with pytest.raises(DistillError, match=r"'openai/gpt-4o:free' is not in the model list"):
        pp.resolve_price(_ep(url, "openai/gpt-4o:free", price_source="openrouter"))


def test_prices_json_keeps_the_date_of_models_not_re_run(tmp_path: Path, fake_server: Any) -> None:
    import time

    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    models = [{"name": n, "base_url": url, "model": mid, "price_source": "openrouter", "api_key": "sk-or-1234567890"}
              for n, mid in (("llama", "meta-llama/llama-3-70b-instruct"), ("gpt", "openai/gpt-4o"))]
    cfg = parse_config({"name": "p", "run_dir": str(tmp_path / "run"), "eval": {"progress": False, "models": models,
                        "benchmarks": [{"name": "echo", "kind": "local", "source": str(F / "echo_numeric.jsonl")}]}})
    run_eval(cfg.eval, cfg.layout, pipeline="p", models=["llama"])
    first = json.loads((tmp_path / "run" / "prices.json").read_text())["eval"]["llama"]["recorded_at"]
    time.sleep(1.1)
    run_eval(cfg.eval, cfg.layout, pipeline="p")  # llama is up to date, gpt runs
    prices = json.loads((tmp_path / "run" / "prices.json").read_text())["eval"]
    assert prices["llama"]["recorded_at"] == first and prices["gpt"]["recorded_at"] > first


def test_openrouter_usage_cost_is_what_is_counted(tmp_path: Path, fake_server: Any) -> None:
    """OpenRouter reports the real charge (`usage.cost`, asked with `usage: {include: true}`); a provider dearer
    than the list (the fake bills 1.5x) is counted at what it billed, in the rows, the ledger and the cap."""
    from distill.llm.budget import read_ledger

    srv = fake_server(usage_cost_factor=1.5)
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    cfg = parse_config({"name": "p", "run_dir": str(tmp_path / "run"), "eval": {"progress": False, "models": [
        {"name": "llama", "base_url": url, "model": "meta-llama/llama-3-70b-instruct", "price_source": "openrouter",
         "api_key": "sk-or-secret-123456789"}],
        "benchmarks": [{"name": "echo", "kind": "local", "source": str(F / "echo_numeric.jsonl")}]}})
    run_eval(cfg.eval, cfg.layout, pipeline="p")
    run = tmp_path / "run"
    rows = [json.loads(x) for x in (run / "eval" / "llama" / "echo.jsonl").read_text().splitlines()]
    listed = [(0.3 * r["prompt_tokens"] + 0.4 * r["completion_tokens"]) / 1e6 for r in rows]
    assert all(r["cost_source"] == "provider" for r in rows)
    assert [r["cost_usd"] for r in rows] == pytest.approx([1.5 * x for x in listed])
    assert read_ledger(run / "spend.jsonl", "eval") == pytest.approx(1.5 * sum(listed), rel=1e-4)
    s = json.loads((run / "eval" / "llama" / "summary.json").read_text())
    assert s["cost"]["charged"] == "provider usage.cost" and s["cost"]["usd_per_1m_output_tokens"] == 0.4
