"""One collector per run dir (two real processes), a kill -9 leaves no stale lock, and the same prompt is paid once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from distill.collect import load_records
from tests.collect.test_spend import KEY, cli, one_error_line, pipeline

TEXTS = [f"What is {i} times {i}?" for i in range(40)]


def start_collect(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)],
                            env={**os.environ, "TEST_KEY": KEY}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_until_sending(srv: Any, proc: subprocess.Popen[str], at_least: int = 4) -> None:
    """Until the collector is mid-run: it holds the lock and requests are reaching the server."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(srv.served()) < at_least:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def test_second_collector_on_the_same_run_dir_is_refused_naming_the_holder(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.3, api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, TEXTS, concurrency=4)
    first = start_collect(cfg)
    wait_until_sending(srv, first)
    second = cli(cfg)
    assert second.returncode == 2
    line = one_error_line(second.stderr)
    assert f"PID {first.pid}" in line and "distill collect" in line
    assert first.wait(timeout=60) == 0, first.communicate()
    sent = Counter(e["key"] for e in srv.served() if e.get("kind") == "ok")
    assert len(sent) == len(TEXTS) and max(sent.values()) == 1, "a request key was sent twice"
    assert len(load_records(tmp_path / "run" / "collect")) == len(TEXTS)


def test_a_killed_collector_leaves_no_stale_lock(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.3, api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, TEXTS, concurrency=4)
    first = start_collect(cfg)
    wait_until_sending(srv, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (tmp_path / "run" / ".collect.lock").read_text().strip() == str(first.pid)  # the file stays, the lock not
    again = cli(cfg)
    assert again.returncode == 0, again.stderr
    assert len(load_records(tmp_path / "run" / "collect")) == len(TEXTS)


def test_same_text_under_two_ids_is_asked_once_and_fills_both(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.2, api_key=KEY)
    texts = ["What is 2 plus 2?", "What is 3 plus 3?", "What is 2 plus 2?", "What is 2 plus 2?"]
    cfg = pipeline(tmp_path, srv.base_url, texts, ids=["a", "b", "c", "d"], concurrency=8,
                   params={"temperature": 1.0, "max_tokens": 64, "n": 2})
    r = cli(cfg)
    assert r.returncode == 0, r.stderr
    assert sorted(e["prompt"] for e in srv.served() if e.get("kind") == "ok") == ["What is 2 plus 2?",
                                                                               "What is 3 plus 3?"]
    ds = load_records(tmp_path / "run" / "collect")
    assert Counter(ds["prompt_id"]) == {"a": 2, "b": 2, "c": 2, "d": 2}
    by_id = {(p, i): c for p, i, c in zip(ds["prompt_id"], ds["sample_index"], ds["completion"], strict=True)}
    assert by_id[("a", 0)] == by_id[("c", 0)] == by_id[("d", 0)] and by_id[("a", 1)] == by_id[("d", 1)]


def test_repeated_id_with_different_text_is_an_error_naming_both_lines(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY)
    texts = ["What is 1 plus 1?", "What is 2 plus 2?", "What is 5 plus 5?", "What is 1 plus 1?"]
    cfg = pipeline(tmp_path, srv.base_url, texts, ids=["x", "y", "x", "x"])
    r = cli(cfg)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "'x'" in line and "prompts.jsonl:1" in line and "prompts.jsonl:3" in line and "duplicate_ids" in line
    assert srv.served() == []

    cfg = pipeline(tmp_path, srv.base_url, texts, ids=["x", "y", "x", "x"], prompts_extra={"duplicate_ids": "keep"})
    r = cli(cfg)
    assert r.returncode == 0, r.stderr
    ds = load_records(tmp_path / "run" / "collect")
    assert sorted(ds["prompt_id"]) == ["x", "x#2", "y"]  # line 4 repeats line 1 exactly: one prompt
