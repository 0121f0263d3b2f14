"""`provider: anthropic` online, over real HTTP against a server speaking the Messages API wire format: system
prompt, thinking blocks, stop reasons, cache-token pricing, faults retried exactly once, errors named."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records
from tests.collect.test_collect import KEY, write_config
from tests.paths import FIXTURES

PRICE = {"prompt": 3.0, "completion": 15.0}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def anthropic_config(tmp: Path, base_url: str, n: int, **teacher: object) -> Path:
    teacher = {"provider": "anthropic", "model": "claude-sonnet-4-5", "price": PRICE,
               "params": {"temperature": 0.0, "max_tokens": 64}, **teacher}
    return write_config(tmp, base_url, n_prompts=n, **teacher)


def edit(cfg: Path, fn) -> Path:
    data = yaml.safe_load(cfg.read_text())
    fn(data)
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def summary(tmp: Path) -> dict:
    return json.loads((tmp / "run" / "collect" / "summary.json").read_text())


def test_anthropic_online_exactly_once_under_faults(tmp_path: Path, fake_api) -> None:
    srv = fake_api("anthropic", "--api-key", KEY, "--hang", "6", "--fault", "rate_limit=0.15",
                   "--fault", "overloaded=0.15", "--fault", "server_error=0.1", "--fault", "malformed=0.05",
                   "--fault", "drop=0.05")
    cfg = anthropic_config(tmp_path, srv.base_url, 60, system_prompt="You are terse.", timeout_s=3.0)
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert sorted(ds["prompt_id"]) == sorted(f"q{i}" for i in range(60))
    served = srv.served()
    kinds = Counter(e["kind"] for e in served)
    ok = Counter(e["key"] for e in served if e["kind"] == "ok")
    assert len(ok) == 60 and max(ok.values()) == 1, "an answered request was sent again"
    s = summary(tmp_path)
    assert s["completed"] == 60 and s["failed"] == 0
    assert s["errors"]["rate_limit"] == kinds["rate_limit"] > 0
    assert s["errors"]["overloaded"] == kinds["overloaded"] > 0  # 529 retried like a 5xx
    assert s["errors"]["server_error"] == kinds["server_error"] > 0
    assert s["errors"]["malformed"] == kinds["malformed"] > 0  # a truncated 200 body
    # the wire: system prompt at the top level (not a message), max_tokens and temperature sent, no `n`
    first = next(e for e in served if e["kind"] == "ok")
    assert first["system"] == "You are terse."
    assert first["params"]["max_tokens"] == 64 and first["params"]["temperature"] == 0.0 and "n" not in first["params"]
    row = ds[0]
    assert row["completion"].startswith("Echo: " + row["messages"][-1]["content"])
    assert row["messages"][0] == {"role": "system", "content": "You are terse."}  # the record keeps what was asked
    assert row["finish_reason"] == "stop" and row["reasoning_status"] == "absent"
    assert row["model"] == "claude-sonnet-4-5" and row["base_url"] == srv.base_url.removesuffix("/v1")
    assert row["cost_usd"] == pytest.approx((row["prompt_tokens"] * 3.0 + row["completion_tokens"] * 15.0) / 1e6)
    assert s["cost_usd"] == pytest.approx(sum(ds["cost_usd"]), rel=1e-6)
    # a re-run is free: the cache holds every answer
    before = len(served)
    assert main(["collect", "-c", str(cfg), "--force"]) == 0
    assert len(srv.served()) == before and summary(tmp_path)["from_cache"] == 60


def test_thinking_blocks_become_the_reasoning_column(tmp_path: Path, fake_api) -> None:
    srv = fake_api("anthropic", "--api-key", KEY)
    cfg = anthropic_config(tmp_path, srv.base_url, 3)
    with (tmp_path / "prompts.jsonl").open("a") as f:
        f.write(json.dumps({"qid": "think", "question": "[thinking] 2+2?", "answer": "4"}) + "\n")
        f.write(json.dumps({"qid": "hidden", "question": "[redacted] 3+3?", "answer": "6"}) + "\n")
        f.write(json.dumps({"qid": "omitted", "question": "[omitted] 4+4?", "answer": "8"}) + "\n")
        f.write(json.dumps({"qid": "long", "question": " ".join(["word"] * 80), "answer": "0"}) + "\n")
    assert main(["collect", "-c", str(cfg)]) == 0
    rows = {r["prompt_id"]: r for r in load_records(tmp_path / "run" / "collect")}
    think = rows["think"]
    assert think["reasoning"].startswith("First I think about") and think["reasoning_status"] == "summarized"
    assert think["completion"].startswith("Echo: [thinking] 2+2?") and "First I think" not in think["completion"]
    assert think["reasoning_tokens"] == len(think["reasoning"].split()) > 0  # output_tokens_details.thinking_tokens
    for hidden in ("hidden", "omitted"):  # redacted_thinking, or thinking display `omitted` (empty + signature)
        assert rows[hidden]["reasoning"] is None and rows[hidden]["reasoning_status"] == "redacted"
    assert rows["long"]["finish_reason"] == "length"  # stop_reason max_tokens
    assert rows["q0"]["reasoning_status"] == "absent"
    # Claude 3.7 returns the full trace, not a summary
    edit(cfg, lambda d: d["collect"]["teachers"][0].update(model="claude-3-7-sonnet-20250219"))
    assert main(["collect", "-c", str(cfg)]) == 0
    rows = {r["prompt_id"]: r for r in load_records(tmp_path / "run" / "collect")}
    assert rows["think"]["reasoning_status"] == "full"


def test_prompt_cache_tokens_priced_at_their_rates(tmp_path: Path, fake_api) -> None:
    srv = fake_api("anthropic", "--api-key", KEY)
    system = "You are a careful grader. " * 20
    cfg = anthropic_config(tmp_path, srv.base_url, 6, system_prompt=system, prompt_cache=True, concurrency=1)
    assert main(["collect", "-c", str(cfg)]) == 0
    rows = sorted(load_records(tmp_path / "run" / "collect"), key=lambda r: int(r["prompt_id"][1:]))
    written = [r for r in rows if r["cache_write_tokens"]]
    read = [r for r in rows if r["cache_read_tokens"]]
    assert len(written) == 1 and len(read) == 5  # the first request writes the cache, the rest read it
    for r in rows:
        plain = r["prompt_tokens"] - r["cache_read_tokens"] - r["cache_write_tokens"]
        want = (plain * 3.0 + r["cache_read_tokens"] * 0.3 + r["cache_write_tokens"] * 3.75
                + r["completion_tokens"] * 15.0) / 1e6
        assert r["cost_usd"] == pytest.approx(want)
    assert read[0]["cost_usd"] < written[0]["cost_usd"]
    sent = next(e for e in srv.served() if e["kind"] == "ok")
    assert sent["system"].strip() == system.strip()


def test_wrong_key_fails_fast_naming_teacher_and_api_key(tmp_path: Path, fake_api, capsys) -> None:
    srv = fake_api("anthropic", "--api-key", "the-right-key")
    cfg = anthropic_config(tmp_path, srv.base_url, 20)
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "`api_key` of 't1'" in err and KEY not in err
    assert len([e for e in srv.served() if e.get("status") == 401]) <= 8  # stopped, not retried per prompt


@pytest.mark.parametrize(("params", "expected"), [
    ({"max_tokens": 64, "seed": 1}, "params.seed has no Anthropic Messages API equivalent"),
    ({"temperature": 0.5}, "params.max_tokens is required by the Messages API"),
])
def test_anthropic_config_mistakes_are_one_line(tmp_path: Path, params: dict, expected: str, capsys) -> None:
    cfg = anthropic_config(tmp_path, "http://127.0.0.1:9", 2, params=params)
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "'t1'" in err and "Traceback" not in err


def test_samples_are_one_request_each(tmp_path: Path, fake_api) -> None:
    """The Messages API has no `n`: n=3 is three requests, each its own cached record with its own tries."""
    srv = fake_api("anthropic", "--api-key", KEY, "--fault", "overloaded=0.3")
    cfg = anthropic_config(tmp_path, srv.base_url, 5, params={"max_tokens": 64, "n": 3, "temperature": 1.0},
                           retry={"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05})
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 15 and len(set(ds["id"])) == 15
    assert Counter(e["kind"] for e in srv.served())["ok"] == 15
    assert all(r["attempts"] <= 4 for r in ds)


@pytest.mark.parametrize(("key", "expected"), [(KEY, "key accepted, model listed"), ("wrong", "key rejected")])
def test_doctor_probes_anthropic_models_endpoint(tmp_path: Path, fake_api, monkeypatch, key: str,
                                                 expected: str) -> None:
    srv = fake_api("anthropic", "--api-key", KEY)
    monkeypatch.setenv("TEST_KEY", key)
    cfg = anthropic_config(tmp_path, srv.base_url, 1)
    out = tmp_path / "doctor.json"
    main(["doctor", "-c", str(cfg), "--json", str(out)])
    row = next(r for r in json.loads(out.read_text())["rows"] if r["check"] == "endpoint t1")
    assert expected in row["value"] and key not in row["value"]


def test_eval_scores_an_anthropic_model(tmp_path: Path, fake_api) -> None:
    """Eval goes through the same request path: an Anthropic model needs no max_tokens of its own (each
    benchmark gives one), is scored and priced, and a re-run is answered from the cache."""
    from distill.config import parse_config
    from distill.evaluate import run_eval

    srv = fake_api("anthropic", "--api-key", KEY)
    bench = FIXTURES / "benchmarks" / "echo_numeric.jsonl"
    cfg = parse_config({"name": "ev", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False, "benchmarks": [{"name": "echo", "kind": "local", "source": str(bench)}],
        "models": [{"name": "claude", "role": "teacher", "provider": "anthropic", "base_url": srv.base_url,
                    "model": "claude-sonnet-4-5", "api_key": KEY}]}})
    top = run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    assert top["models"]["claude"]["scores"]["echo"] == pytest.approx(0.6)  # as the OpenAI fake's same answers
    sent = [e for e in srv.served() if e["kind"] == "ok"]
    assert len(sent) == 5 and all(e["params"]["max_tokens"] > 0 for e in sent)
    s = json.loads((tmp_path / "run" / "eval" / "claude" / "summary.json").read_text())
    assert s["eval_cost_usd"] > 0 and KEY not in json.dumps(s)
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, force=True)
    assert len([e for e in srv.served() if e["kind"] == "ok"]) == 5


def test_dry_run_pilots_through_the_messages_api(tmp_path: Path, fake_api) -> None:
    srv = fake_api("anthropic", "--api-key", KEY)
    cfg = edit(anthropic_config(tmp_path, srv.base_url, 40), lambda d: d["collect"].update(estimate={"pilot": 5}))
    assert main(["collect", "-c", str(cfg), "--dry-run"]) == 0
    assert Counter(e["kind"] for e in srv.served())["ok"] == 5, "a dry run sends only its pilot"
    est = json.loads((tmp_path / "run" / "estimate.json").read_text())["teachers"][0]
    assert est["pilot_requests"] == 5 and est["pilot_cost_usd"] > 0
    assert est["cost_usd_batch"]["expected"] == pytest.approx(
        est["pilot_cost_usd"] + (est["cost_usd_online"]["expected"] - est["pilot_cost_usd"]) * 0.5, rel=1e-3)
    assert main(["collect", "-c", str(cfg)]) == 0
    real = summary(tmp_path)
    assert real["from_cache"] == 5 and real["completed"] == 35
    on = est["cost_usd_online"]
    assert on["low"] * 0.8 <= real["cost_usd"] + est["pilot_cost_usd"] <= on["high"] * 1.2


def test_response_format_is_validated_here_not_sent(tmp_path: Path, fake_api) -> None:
    """The Messages API has no response_format: it is not put on the wire (Anthropic would refuse the field), but
    every answer is still validated against it, retried, then recorded failed with the validation error."""
    srv = fake_api("anthropic", "--api-key", KEY)
    cfg = anthropic_config(tmp_path, srv.base_url, 3,
                           params={"max_tokens": 64, "temperature": 0.0, "response_format": {"type": "json_object"}},
                           retry={"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05})
    main(["collect", "-c", str(cfg)])
    ok = [e for e in srv.served() if e["kind"] == "ok"]
    assert len(ok) == 6, "each prompt asked max_attempts times: the echo answer is never JSON"
    assert all("response_format" not in e["params"] for e in ok)
    s = summary(tmp_path)
    assert s["failed"] == 3 and s["errors"]["invalid_output"] == 6
    fails = [json.loads(ln) for ln in (tmp_path / "run" / "collect" / "failures.jsonl").read_text().splitlines()]
    assert len(fails) == 3 and all("JSON" in f["error"] or "json" in f["error"] for f in fails), fails[0]
