"""Spend guardrails over real HTTP: the dry-run estimate, truncation policies, and budget with reasoning usage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records
from tests.collect.test_collect import KEY, write_config


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def _edit(cfg: Path, **collect: object) -> None:
    data = yaml.safe_load(cfg.read_text())
    data["collect"].update(collect)
    cfg.write_text(yaml.safe_dump(data))


def test_dry_run_estimate_brackets_the_real_cost(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=100, model="my-model",
                       price={"prompt": 2.0, "completion": 8.0})
    _edit(cfg, estimate={"pilot": 10})
    assert main(["collect", "-c", str(cfg), "--dry-run"]) == 0
    assert len(srv.served()) == 10, "a dry run sends only its pilot"
    est = json.loads((tmp_path / "run" / "estimate.json").read_text())["teachers"][0]
    assert est["samples_to_send"] == 100 and est["pilot_requests"] == 10
    assert est["token_count_method"] == "chars/4"
    out = capsys.readouterr()
    assert "$ batch" in out.err and "chars/4" in out.err
    on, ba = est["cost_usd_online"], est["cost_usd_batch"]
    assert on["low"] <= on["expected"] <= on["high"] and ba["expected"] < on["expected"]

    assert main(["collect", "-c", str(cfg)]) == 0
    real = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert real["from_cache"] == 10  # the pilot is reused, not paid twice
    total = real["cost_usd"] + est["pilot_cost_usd"]
    assert on["low"] * 0.8 <= total <= on["high"] * 1.2
    assert 0.7 < total / on["expected"] < 1.3


def test_dry_run_with_unknown_price_says_how_to_set_it(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=5, model="mystery-model-7b")
    assert main(["collect", "-c", str(cfg), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no price for model 'mystery-model-7b'" in err and "price: {prompt: X, completion: Y}" in err
    assert srv.served() == []


def _truncating(tmp_path: Path, fake_server, policy: str) -> tuple[Path, object]:
    srv = fake_server(api_key=KEY)
    # answers are "Echo: What is i plus i? The answer is N." = 10 words; max_tokens 8 cuts them
    cfg = write_config(tmp_path, srv.base_url, n_prompts=12, params={"max_tokens": 8})
    _edit(cfg, on_truncated=policy)
    return cfg, srv


def test_truncated_answers_retried_once_with_larger_max_tokens(tmp_path: Path, fake_server) -> None:
    cfg, srv = _truncating(tmp_path, fake_server, "retry")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 12 and all(ds["length_retry"]) and set(ds["finish_reason"]) == {"stop"}
    assert {json.loads(p)["max_tokens"] for p in ds["params"]} == {16}
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["length_retries"]["t1"]["completed"] == 12
    assert s["completion_tokens"] == 12 * 8 + 12 * 10  # the cut answers were paid for too
    assert len(srv.served()) == 24


def test_truncated_answers_dropped_and_counted(tmp_path: Path, fake_server) -> None:
    cfg, _ = _truncating(tmp_path, fake_server, "drop")
    assert main(["collect", "-c", str(cfg)]) == 0
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["dropped_truncated"] == 12 and s["records"] == 0


def test_truncated_answers_kept_by_default(tmp_path: Path, fake_server) -> None:
    cfg, _ = _truncating(tmp_path, fake_server, "keep")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert set(ds["finish_reason"]) == {"length"} and not any(ds["length_retry"])
