"""What still crashed or misled, through the real CLI: one `error:` line, no traceback, and a stopped run that
still leaves its summary and failures behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.collect.test_spend import KEY, cli, one_error_line, pipeline
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"
TEXTS = [f"What is {i} plus {i}?" for i in range(12)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_prompts_that_are_not_utf8_name_file_line_and_byte(tmp_path: Path, fake_server: Any, suffix: str) -> None:
    srv = fake_server(api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, TEXTS)
    lines = [b'{"qid": "q0", "question": "fine"}\n', b'{"qid": "q1", "question": "caf\xe9 au lait"}\n']
    if suffix == ".csv":
        lines = [b"qid,question\n", b"q0,fine\n", b"q1,caf\xe9 au lait\n"]
    bad = tmp_path / f"latin1{suffix}"
    bad.write_bytes(b"".join(lines))
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "prompts.jsonl"), str(bad)))
    r = cli(cfg)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    offset = len(b"".join(lines[:-1])) + lines[-1].index(b"\xe9")
    assert f"{bad}:{len(lines)}:" in line and f"byte offset {offset}" in line and "0xe9" in line and "UTF-8" in line
    assert srv.served() == []


@pytest.mark.parametrize("bad_key", [KEY + "\n", "sk-abc\r\ndef0123456789", "sk-clé-0123456789abcdef"])
def test_malformed_api_key_fails_at_once_without_printing_it(tmp_path: Path, fake_server: Any, bad_key: str) -> None:
    srv = fake_server(api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, TEXTS)
    t0 = time.monotonic()
    r = cli(cfg, key=bad_key, timeout=60)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "api_key" in line and "malformed" in line
    assert time.monotonic() - t0 < 20
    secret = bad_key.strip()
    assert secret not in r.stderr + r.stdout and secret[3:10] not in r.stderr + r.stdout
    assert srv.served() == []


def test_nothing_listening_stops_within_seconds(tmp_path: Path) -> None:
    # default retry settings (1 s base delay, 6 attempts, 20 failures in a row): today's wait was ~48 s
    cfg = pipeline(tmp_path, f"http://127.0.0.1:{closed_port()}/v1", TEXTS * 5,
                   retry={"max_attempts": 6, "base_delay_s": 1.0, "max_delay_s": 30.0})
    t0 = time.monotonic()
    r = cli(cfg, timeout=40)
    elapsed = time.monotonic() - t0
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "nothing is listening" in line and "'t1'" in line and "base_url" in line
    assert elapsed < 20, f"took {elapsed:.1f}s"  # interpreter start and imports included; was ~48 s
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["stopped"] and "nothing is listening" in s["stopped"] and s["complete"] is False


def test_a_server_that_restarts_mid_run_is_retried(tmp_path: Path, fake_server: Any) -> None:
    """Refusals after a success are a restart, not a missing server: the run waits it out."""
    srv = fake_server(latency=0.3, api_key=KEY)
    port = srv.port
    texts = [f"Item {i}: what is {i} plus {i}?" for i in range(36)]
    cfg = pipeline(tmp_path, srv.base_url, texts, concurrency=2,
                   retry={"max_attempts": 8, "base_delay_s": 0.5, "max_delay_s": 2.0})
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)],
                            env={**os.environ, "TEST_KEY": KEY}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while len(srv.served()) < 4:
        time.sleep(0.05)
    srv.stop()
    time.sleep(1.5)
    restarted = subprocess.Popen([sys.executable, "-m", "distill.devtools.fake_openai", "--port", str(port),
                                  "--api-key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert restarted.stdout is not None and restarted.stdout.readline().startswith("PORT")
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
        assert s["records"] == 36 and s["errors"].get("connection", 0) > 0
    finally:
        restarted.kill()
        restarted.wait()


def eval_config(tmp_path: Path, url: str, **model: Any) -> Path:
    cfg = {"name": "e", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False,
        "models": [{"name": "teacher", "role": "teacher", "base_url": url, "model": "gpt-4o-mini",
                    "api_key": "${TEST_KEY}", "retry": {"max_attempts": 2, "base_delay_s": 0.01}, **model}],
        "benchmarks": [{"name": "echo", "kind": "local", "source": str(F / "echo_numeric.jsonl")}]}}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_eval_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "distill.cli", "eval", "-c", str(config)],
                          env={**os.environ, "TEST_KEY": KEY}, capture_output=True, text=True, timeout=120)


def test_eval_against_an_unreachable_model_names_it_instead_of_scoring_zero(tmp_path: Path) -> None:
    r = run_eval_cli(eval_config(tmp_path, f"http://127.0.0.1:{closed_port()}/v1"))
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "'teacher'" in line and "gpt-4o-mini" in line and "nothing is listening" in line
    assert "0.0%" not in r.stdout


def test_eval_where_every_request_fails_is_an_error_not_zero(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(faults={"server_error": 1.0})
    r = run_eval_cli(eval_config(tmp_path, srv.base_url))
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "'teacher'" in line and "no request" in line and "500" in line
    assert "0.0%" not in r.stdout


def _stopped_summary(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    d = tmp_path / "run" / "collect"
    failures = [json.loads(x) for x in (d / "failures.jsonl").read_text().splitlines()]
    return json.loads((d / "summary.json").read_text()), failures


def test_a_401_stopped_run_still_writes_summary_and_failures(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key="sk-the-right-key-0123456789")
    r = cli(pipeline(tmp_path, srv.base_url, TEXTS))
    assert r.returncode == 2
    assert "401" in one_error_line(r.stderr)
    s, failures = _stopped_summary(tmp_path)
    assert "401" in s["stopped"] and s["complete"] is False and s["records"] == 0
    assert failures and all("401" in f["error"] for f in failures)
    assert s["failed"] + s["not_sent"] == len(TEXTS)


def test_a_failure_streak_still_writes_summary_and_failures(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY, faults={"server_error": 1.0})
    texts = [f"Item {i}: what is {i} plus {i}?" for i in range(36)]
    cfg = pipeline(tmp_path, srv.base_url, texts, concurrency=1, retry={"max_attempts": 1, "max_consecutive_failures": 3})
    r = cli(cfg)
    assert r.returncode == 2
    assert "3 requests in a row failed" in one_error_line(r.stderr)
    s, failures = _stopped_summary(tmp_path)
    assert "in a row" in s["stopped"] and len(failures) == 3 and s["not_sent"] == 33


def test_a_budget_stopped_run_writes_summary_and_failures(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY, completion_tokens=50)
    texts = [f"Item {i}: what is {i} plus {i}?" for i in range(36)]
    r = cli(pipeline(tmp_path, srv.base_url, texts, budget=0.5, price={"prompt": 1000.0, "completion": 1000.0}))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    s, failures = _stopped_summary(tmp_path)
    assert "budget_usd" in s["stopped"] and s["not_sent"] > 0 and failures == []
