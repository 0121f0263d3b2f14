"""`distill collect --shard i/n` over real HTTP with faults and a kill -9: every prompt x teacher x sample lands
exactly once in the merged stage output, and only what the killed shard had in flight is paid twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from distill.collect import load_records
from distill.collect.shard import parse_shard, shard_of
from distill.errors import InputError
from tests.collect.test_collect_lock import wait_until_sending
from tests.collect.test_spend import KEY, cli, pipeline

TEXTS = [f"Shard question {i}: what is {i} times {i}?" for i in range(48)]
FAULTS = {"rate_limit": 0.1, "server_error": 0.1, "malformed": 0.05}


def test_assignment_is_stable_disjoint_and_covering():
    ids = [f"q{i}" for i in range(1000)]
    for n in (1, 2, 3, 8):
        parts = [{p for p in ids if shard_of(p, n) == i} for i in range(n)]
        assert set().union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)
        assert all(parts) and [shard_of(p, n) for p in ids] == [shard_of(p, n) for p in ids]
    # the same in another process with another hash seed (blake2b, not Python's salted hash())
    code = "from distill.collect.shard import shard_of; print([shard_of(f'q{i}', 4) for i in range(200)])"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": "12345"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([shard_of(f"q{i}", 4) for i in range(200)])
    with pytest.raises(InputError, match="--shard '2/2'"):
        parse_shard("2/2")


def test_two_shards_with_faults_and_a_kill_merge_exactly_once(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.15, faults=FAULTS, api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, TEXTS, budget=5.0, concurrency=4, rpm=6000,
                   params={"temperature": 1.0, "max_tokens": 32, "n": 2})
    first = start_collect_shard(cfg, "0/2")
    wait_until_sending(srv, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    other = cli(cfg, "--shard", "1/2")
    said = " ".join((other.stdout + other.stderr).split())  # the console (stderr) wraps long lines
    assert other.returncode == 0 and "shards 0/2 not finished yet" in said, other.stdout + other.stderr
    assert "budget_usd: $2.5000 of $5.0000" in said and "concurrency 2 of 4, rpm 3000 of 6000" in said
    again = cli(cfg, "--shard", "0/2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "merged 2 shards" in " ".join((again.stdout + again.stderr).split())

    run = tmp_path / "run"
    summary = json.loads((run / "collect" / "summary.json").read_text())
    assert summary["complete"] and summary["missing"] == 0 and summary["shards"] == 2
    ds = load_records(run / "collect")
    keys = Counter(zip(ds["prompt_id"], ds["teacher"], ds["sample_index"], strict=True))
    assert len(keys) == len(TEXTS) * 2 and max(keys.values()) == 1  # every prompt x sample, once
    assert {shard_of(p, 2) for p in ds["prompt_id"]} == {0, 1}
    paid = Counter(e["key"] for e in srv.served() if e.get("kind") == "ok")
    assert len(paid) == len(TEXTS)  # one request per prompt (n=2 samples in it)
    twice = sum(c - 1 for c in paid.values())
    assert twice <= 2, f"{twice} requests paid twice; only shard 0's 2 in flight at the kill may be"
    assert summary["cost_usd"] > 0 and sum(s["cost_usd"] for s in summary["per_shard"]) == pytest.approx(
        summary["cost_usd"], abs=1e-6)


def test_merge_refuses_a_record_present_twice(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(api_key=KEY)
    cfg = pipeline(tmp_path, srv.base_url, TEXTS[:8], concurrency=4)
    assert cli(cfg, "--shard", "0/2").returncode == 0
    assert cli(cfg, "--shard", "1/2").returncode == 0
    assert (tmp_path / "run" / "collect" / "summary.json").is_file()
    shards = tmp_path / "run" / "collect-shards"
    src = next((shards / "0-of-2" / "collect").glob("records-*.parquet"))
    shutil.copy(src, shards / "1-of-2" / "collect" / "records-09999.parquet")  # shard 0's records again
    r = cli(cfg, "--merge", "2")
    assert r.returncode == 2 and "present more than once" in r.stderr and "Traceback" not in r.stderr


def start_collect_shard(cfg: Path, shard: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg), "--shard", shard],
                            env={**os.environ, "TEST_KEY": KEY}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
