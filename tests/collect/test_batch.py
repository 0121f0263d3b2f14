"""Batch API mode over real HTTP (loopback server with /v1/files and /v1/batches): results, fallbacks, kill+resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records
from tests.collect.test_collect import KEY, write_config


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def batch_config(tmp: Path, base_url: str, n: int, **batch: object) -> Path:
    cfg = write_config(tmp, base_url, n_prompts=n, price={"prompt": 10.0, "completion": 30.0})
    data = yaml.safe_load(cfg.read_text())
    data["collect"]["mode"] = "batch"
    data["collect"]["batch"] = {"poll_interval_s": 0.2, **batch}
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def kinds(srv) -> Counter:
    return Counter(e["kind"] for e in srv.served())


def test_batch_mode_collects_everything_at_batch_price(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY, batch_delay=0.5)
    cfg = batch_config(tmp_path, srv.base_url, 30, max_requests_per_batch=12)
    with (tmp_path / "prompts.jsonl").open("a") as f:
        f.write(json.dumps({"qid": "bad", "question": "[batch-error] fails inside the batch", "answer": "0"}) + "\n")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 31 and len(set(ds["prompt_id"])) == 31
    k = kinds(srv)
    assert k["batch_create"] == 3 and k["file_upload"] == 3  # 31 requests split under 12 per batch
    assert k["ok"] == 1  # the one failed item fell back to an online request
    batched = [r for r in ds if r["batch_id"]]
    online = [r for r in ds if not r["batch_id"]]
    assert len(batched) == 30 and len(online) == 1
    # half price in batch: cost per token is half the online price for the same request shape
    b = batched[0]
    full = (b["prompt_tokens"] * 10.0 + b["completion_tokens"] * 30.0) / 1e6
    assert b["cost_usd"] == pytest.approx(full * 0.5)
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["errors"]["batch_http_500"] == 1 and s["completed"] == 31
    # a re-run of a finished batch run submits nothing
    assert main(["collect", "-c", str(cfg), "--force"]) == 0
    assert kinds(srv)["batch_create"] == 3


def test_expired_batch_falls_back_online(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY, batch_delay=0.3, batch_expire=True)
    cfg = batch_config(tmp_path, srv.base_url, 20, fallback="online")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 20
    assert sum(1 for r in ds if r["batch_id"]) == 10 and kinds(srv)["ok"] == 10
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["errors"]["batch_batch_expired"] == 10


def test_expired_items_resubmitted_as_a_new_batch(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY, batch_delay=0.3, batch_expire=True)
    cfg = batch_config(tmp_path, srv.base_url, 20, fallback="batch", max_resubmits=1)
    assert main(["collect", "-c", str(cfg)]) == 1  # the second batch expires half again: 5 items fail
    k = kinds(srv)
    assert k["batch_create"] == 2 and k["ok"] == 0
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["records"] == 15 and s["failed"] == 5 and s["complete"] is False


def test_rejected_batch_file_names_the_request_and_field(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server(api_key=KEY)
    cfg = batch_config(tmp_path, srv.base_url, 3)
    data = yaml.safe_load(cfg.read_text())
    data["collect"]["teachers"][0]["model"] = ""
    cfg.write_text(yaml.safe_dump(data))
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "rejected by the server" in err and "line 1 (prompt 'q0'): body.model" in err


def test_kill_during_polling_resumes_without_resubmitting(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY, batch_delay=4.0)
    cfg = batch_config(tmp_path, srv.base_url, 25)
    env = {**os.environ, "TEST_KEY": KEY}
    cmd = [sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "run" / "collect-batches" / "t1.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if kinds(srv)["batch_poll"] >= 1:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = json.loads(state.read_text())["chunks"]
    assert [c["state"] for c in recorded] == ["submitted"] and recorded[0]["batch_id"]
    assert subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    k = kinds(srv)
    assert k["batch_create"] == 1 and k["file_upload"] == 1, "the recorded batch must be polled, not submitted again"
    assert len(load_records(tmp_path / "run" / "collect")) == 25
