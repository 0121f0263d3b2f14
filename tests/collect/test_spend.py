"""The spend cap over real HTTP: no prompts, n, max_tokens, concurrency, re-runs or kill -9 spend over it; a capped
run uses the cap; a budget that cannot be bounded (unknown price, no max_tokens) refuses to start.

What was spent is read from the fake server's own log (the tokens it billed), not from distill's bookkeeping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from distill.cli import main
from tests.paths import FIXTURES

KEY = "sk-test-spend-0123456789abcdef"
PRICE = {"prompt": 1000.0, "completion": 1000.0}  # $1000 per 1M tokens: one token costs $0.001


def write_prompt_file(path: Path, texts: list[str], ids: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"qid": ids[i] if ids else f"q{i}", "question": text}, ensure_ascii=False) + "\n")
    return path


def pipeline(tmp: Path, base_url: str, texts: list[str], *, budget: float | None = None, ids: list[str] | None = None,
             prompts_extra: dict[str, Any] | None = None, **teacher: Any) -> Path:
    """A pipeline YAML with one teacher 't1' (gpt-4o-mini unless `model=`) over the given prompt texts."""
    t: dict[str, Any] = {
        "name": "t1", "base_url": base_url, "api_key": "${TEST_KEY}", "model": "gpt-4o-mini",
        "params": {"temperature": 0.0, "max_tokens": 64}, "concurrency": 8,
        "retry": {"max_attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05}, "timeout_s": 10.0,
    }
    t.update(teacher)
    prompts = {"path": str(write_prompt_file(tmp / "prompts.jsonl", texts, ids)), "field": "question",
               "id_field": "qid", **(prompts_extra or {})}
    cfg: dict[str, Any] = {"name": "s", "run_dir": str(tmp / "run"),
                           "collect": {"prompts": prompts, "teachers": [t], "progress": False}}
    if budget is not None:
        cfg["collect"]["budget_usd"] = budget
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return path


def cli(config: Path, *args: str, key: str = KEY, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m distill.cli collect` as the user runs it."""
    env = {**os.environ, "TEST_KEY": key}
    return subprocess.run([sys.executable, "-m", "distill.cli", "collect", "-c", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(stderr: str) -> str:
    """The user sees exactly one `error:` line and no traceback."""
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return errors[0]


def billed(srv: Any, price: dict[str, float] = PRICE) -> float:
    """$ the server billed: every answered request's usage at the price."""
    ok = [e for e in srv.served() if e.get("kind") == "ok"]
    return sum(e["prompt_tokens"] * price["prompt"] + e["completion_tokens"] * price["completion"] for e in ok) / 1e6


def summary(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "run" / "collect" / "summary.json").read_text())


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


ASCII = [f"Question {i}: what is {i} plus {i}? Think about it carefully and answer." for i in range(60)]
WIDE = [f"問題 {i}: {i} たす {i} は何ですか？ よく考えて答えてください。" for i in range(60)]  # 3 bytes per char


@pytest.mark.parametrize("texts,n,max_tokens,concurrency,answer_tokens", [
    (ASCII, 1, 64, 1, 50),
    (ASCII, 3, 32, 16, 40),  # answers cut at max_tokens
    (WIDE, 2, 64, 8, 64),  # real tokens ~10x chars/4
])
def test_no_combination_spends_over_the_cap(tmp_path: Path, fake_server: Any, texts: list[str], n: int,
                                            max_tokens: int, concurrency: int, answer_tokens: int) -> None:
    srv = fake_server(latency=0.02, api_key=KEY, completion_tokens=answer_tokens, prompt_tokens="bytes")
    cap = 2.5
    cfg = pipeline(tmp_path, srv.base_url, texts, budget=cap, concurrency=concurrency, price=PRICE,
                   params={"temperature": 1.0, "max_tokens": max_tokens, "n": n})
    for run in range(3):  # re-runs of one config: the cap counts them all
        assert main(["collect", "-c", str(cfg), "--force"]) == 1  # the cap stops every run before the end
        assert billed(srv) <= cap + 1e-9, f"run {run + 1}: billed ${billed(srv):.4f} over the ${cap} cap"
        s = summary(tmp_path)
        assert "budget_usd" in s["stopped"]
    assert billed(srv) > 0.5 * cap
    assert s["spend"]["cap_usd"] == cap
    assert billed(srv) <= s["spend"]["spent_usd"] + 1e-6 <= cap + 1e-6  # the ledger never under-counts


def test_capped_run_uses_at_least_90_percent_of_the_cap(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.05, api_key=KEY, completion_tokens=50)
    cap = 6.0  # answers of 50 tokens under max_tokens 256: the worst case reserved is ~6x what a request costs
    texts = [f"Question {i}: what is {i} plus {i}? Think about it carefully and answer." for i in range(200)]
    cfg = pipeline(tmp_path, srv.base_url, texts, budget=cap, concurrency=16, price=PRICE,
                   params={"temperature": 0.0, "max_tokens": 256})
    assert main(["collect", "-c", str(cfg)]) == 1
    s = summary(tmp_path)
    assert 0.9 * cap <= billed(srv) <= cap, f"used ${billed(srv):.4f} of ${cap}"
    assert s["not_sent"] > 0 and "budget_usd" in s["stopped"]
    assert s["spend"]["remaining_usd"] == pytest.approx(cap - s["spend"]["spent_usd"], abs=1e-6)


def test_raising_the_cap_continues_where_the_ledger_left_off(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY, completion_tokens=50)
    cfg = pipeline(tmp_path, srv.base_url, ASCII, budget=1.0, price=PRICE)
    assert main(["collect", "-c", str(cfg)]) == 1
    first = summary(tmp_path)["spend"]
    assert first["spent_usd"] <= 1.0 and first["remaining_usd"] < 0.2
    ledger = [json.loads(x) for x in (tmp_path / "run" / "spend.jsonl").read_text().splitlines()]
    assert {e["stage"] for e in ledger} == {"collect"} and any("reserve" in e for e in ledger)
    assert main(["collect", "-c", str(cfg)]) == 1  # same cap: nothing left to spend
    assert summary(tmp_path)["completed"] == 0
    cfg.write_text(cfg.read_text().replace("budget_usd: 1.0", "budget_usd: 2.0"))
    assert main(["collect", "-c", str(cfg)]) == 1
    second = summary(tmp_path)["spend"]
    assert second["earlier_runs_usd"] == pytest.approx(first["spent_usd"], abs=1e-6)
    assert 1.8 <= billed(srv) <= 2.0


def test_kill9_with_requests_in_flight_still_counts_them(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=1.5, api_key=KEY, completion_tokens=60)
    cap = 1.5
    cfg = pipeline(tmp_path, srv.base_url, ASCII, budget=cap, price=PRICE, concurrency=8)
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)],
                            env={**os.environ, "TEST_KEY": KEY}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = tmp_path / "run" / "spend.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not ledger.exists() or ledger.read_text().count('"reserve"') < 8):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2.0)  # the server finishes (and bills) what the killed run had in flight
    assert main(["collect", "-c", str(cfg)]) == 1
    assert billed(srv) <= cap + 1e-9, f"billed ${billed(srv):.4f} over the ${cap} cap across a kill -9"


def test_unknown_price_under_a_budget_refuses_to_start(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, ASCII[:5], budget=0.0001, model="mystery-model-7b")
    r = cli(cfg)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "'t1'" in line and "mystery-model-7b" in line and "price:" in line
    assert srv.served() == []


def test_budget_without_max_tokens_refuses_to_start(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, ASCII[:5], budget=1.0, price=PRICE, params={"temperature": 0.0})
    r = cli(cfg)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "'t1'" in line and "max_tokens" in line
    assert srv.served() == []


def test_eval_budget_counts_every_eval_run_in_the_ledger(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(completion_tokens=100)
    bench = FIXTURES / "benchmarks" / "echo_numeric.jsonl"
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(yaml.safe_dump({"name": "e", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False, "budget_usd": 0.5,
        "models": [{"name": "teacher", "role": "teacher", "base_url": srv.base_url, "model": "gpt-4o-mini",
                    "price": PRICE, "concurrency": 1}],
        "benchmarks": [{"name": "echo", "kind": "local", "source": str(bench), "max_tokens": 128}]}}))
    assert main(["eval", "-c", str(cfg)]) == 3  # the cap leaves items unanswered: "incomplete", not a crash (1)
    first = billed(srv)
    assert 0.2 < first <= 0.5
    assert main(["eval", "-c", str(cfg), "--force"]) == 3
    assert billed(srv) <= 0.5 + 1e-9, f"billed ${billed(srv):.4f} over the $0.5 eval cap across two runs"
    spend = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())["spend"]
    assert spend["cap_usd"] == 0.5 and spend["earlier_runs_usd"] == pytest.approx(first, abs=1e-6)
