"""What must fail before anything is paid: a model id the provider does not list, a student whose weights do not
exist, a replay asked for as a dry run; and a pilot request that got no answer is still counted in the estimate.
Against the fake server standing in for OpenRouter (real HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.config import parse_config
from distill.errors import DistillError
from distill.eval_estimate import run_eval_estimate
from distill.evaluate import run_eval
from distill.llm import provider_prices
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"
BENCHES = [{"name": "gsm8k", "source": str(F / "gsm8k_test.jsonl")},
           {"name": "mmlu", "source": str(F / "mmlu_test.jsonl")}]


@pytest.fixture(autouse=True)
def _fresh_lists() -> None:
    provider_prices._LISTS.clear()


def _api(name: str, url: str, model: str) -> dict[str, Any]:
    return {"name": name, "base_url": url, "model": model, "api_key": "sk-or-test-123456789",
            "price_source": "openrouter", "params": {"max_tokens": 400}}


def _cfg(tmp_path: Path, models: list[dict[str, Any]], **extra: Any) -> Any:
    return parse_config({"name": "chk", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False, "models": models, "benchmarks": BENCHES, "estimate": {"pilot": 2}, **extra}})


def _chats(srv: Any) -> int:
    return sum(e.get("kind") != "models_list" for e in srv.served())


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_typo_in_the_last_models_id_fails_before_any_request(tmp_path: Path, fake_server: Any,
                                                               dry_run: bool) -> None:
    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    cfg = _cfg(tmp_path, [_api("gpt-4o", url, "openai/gpt-4o"), _api("llama", url, "meta-llama/llama-3-70b-instruct"),
                          _api("qwen", url, "qwen/qwen-2-72b-instructt")])
    with pytest.raises(DistillError, match="'qwen/qwen-2-72b-instructt' is not in the model list"):
        (run_eval_estimate if dry_run else run_eval)(cfg.eval, cfg.layout)
    assert _chats(srv) == 0  # the price list was read; not one chat request was paid


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_missing_student_fails_before_any_request(tmp_path: Path, fake_server: Any, dry_run: bool) -> None:
    srv = fake_server()
    url = f"http://127.0.0.1:{srv.port}/api/v1"
    student = {"name": "student", "role": "student", "serve": {"model": str(tmp_path / "no" / "such" / "merged")},
               "gpu_usd_per_hour": 2.5}
    cfg = _cfg(tmp_path, [_api("gpt-4o", url, "openai/gpt-4o"), student])
    with pytest.raises(DistillError, match="neither a local model dir nor a hub id"):
        (run_eval_estimate if dry_run else run_eval)(cfg.eval, cfg.layout)
    assert _chats(srv) == 0


def test_replay_with_dry_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    rc = main(["eval", "--replay", str(manifest), "--dry-run", "--base-url", "http://127.0.0.1:9/v1",
               "--model", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "--replay and --dry-run" in err and err.count("\n") == 1


def test_pilot_requests_without_an_answer_are_still_estimated(tmp_path: Path, fake_server: Any) -> None:
    """A pilot held back by the cap answered nothing: its items are still to be paid and stay in the estimate."""
    srv = fake_server()
    cfg = _cfg(tmp_path, [_api("gpt-4o", f"http://127.0.0.1:{srv.port}/api/v1", "openai/gpt-4o")],
               budget_usd=0.002)
    est = run_eval_estimate(cfg.eval, cfg.layout)
    gsm = est["models"][0]["benchmarks"]["gsm8k"]  # 5 items; one 8-shot request's worst case is ~$0.01
    assert gsm["pilot_errors"]["not sent"] == 2 and gsm["requests"] == 5
    # no answers: every one of the 5 items may take max_tokens (before: the 2 piloted items were dropped -> 3)
    assert gsm["completion_tokens"]["high"] == 5 * 400
    assert gsm["cost_usd_worst_case"] >= gsm["cost_usd"]["high"] > 0


def test_estimate_tokenizers_name_eval_models_and_errors_name_eval_fields(tmp_path: Path, fake_server: Any) -> None:
    url = "http://127.0.0.1:9/api/v1"
    with pytest.raises(DistillError, match=r"estimate.tokenizers: gpt4o is not an eval model \(models: gpt-4o\)"):
        parse_config({"name": "chk", "run_dir": str(tmp_path / "run"), "eval": {
            "benchmarks": BENCHES, "models": [_api("gpt-4o", url, "openai/gpt-4o")],
            "estimate": {"tokenizers": {"gpt4o": str(tmp_path)}}}})
    srv = fake_server()
    cfg = parse_config({"name": "chk", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False, "benchmarks": BENCHES, "models": [_api("llama", f"http://127.0.0.1:{srv.port}/api/v1",
                                                                   "meta-llama/llama-3-70b-instruct")],
        "estimate": {"pilot": 1, "tokenizers": {"llama": str(tmp_path / "no-such-tokenizer")}}}})
    with pytest.raises(DistillError, match=r"^eval.estimate.tokenizers.llama: cannot load"):
        run_eval_estimate(cfg.eval, cfg.layout)
