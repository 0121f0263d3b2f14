"""`mode: batch` for `provider: anthropic` (the Message Batches API through the official SDK, over real HTTP), and
`collect --cancel-batches` for both providers: recorded before acted, resumed by polling after kill -9."""

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
from tests.collect.test_anthropic import anthropic_config, edit
from tests.collect.test_collect import KEY, write_config


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def batch_mode(cfg: Path, **batch: object) -> Path:
    return edit(cfg, lambda d: d["collect"].update(mode="batch", batch={"poll_interval_s": 0.2, **batch}))


def kinds(srv) -> Counter:
    return Counter(e["kind"] for e in srv.served())


def summary(tmp: Path) -> dict:
    return json.loads((tmp / "run" / "collect" / "summary.json").read_text())


def state(tmp: Path) -> list[dict]:
    return json.loads((tmp / "run" / "collect-batches" / "t1.json").read_text())["chunks"]


def test_anthropic_batch_collects_everything_at_the_batch_price(tmp_path: Path, fake_api) -> None:
    srv = fake_api("anthropic", "--api-key", KEY, "--batch-delay", "0.5")
    cfg = batch_mode(anthropic_config(tmp_path, srv.base_url, 20, system_prompt="Be brief.",
                                      params={"max_tokens": 64, "n": 2, "temperature": 1.0}),
                     max_requests_per_batch=16)
    with (tmp_path / "prompts.jsonl").open("a") as f:
        f.write(json.dumps({"qid": "bad", "question": "[batch-error] fails inside the batch", "answer": "0"}) + "\n")
        f.write(json.dumps({"qid": "think", "question": "[thinking] 1+1?", "answer": "2"}) + "\n")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 44 and len(set(ds["id"])) == 44  # 22 prompts x 2 samples, one batch request per sample
    k = kinds(srv)
    assert k["batch_create"] == 3  # 44 requests under 16 per batch
    assert k["ok"] == 2  # the errored item's two samples fell back to online requests
    batched = [r for r in ds if r["batch_id"]]
    assert len(batched) == 42 and all(r["batch_id"].startswith("msgbatch_") for r in batched)
    b = batched[0]
    assert b["cost_usd"] == pytest.approx((b["prompt_tokens"] * 3.0 + b["completion_tokens"] * 15.0) / 1e6 * 0.5)
    think = [r for r in ds if r["prompt_id"] == "think"]
    assert think[0]["reasoning"].startswith("First I think") and think[0]["reasoning_status"] == "summarized"
    s = summary(tmp_path)
    assert s["errors"]["batch_api_error"] == 2 and s["completed"] == 44 and s["complete"] is True
    assert s["cost_usd"] == pytest.approx(sum(ds["cost_usd"]), rel=1e-6)
    # the batch requests are the online body: system at the top level, max_tokens, no n
    chunk = (tmp_path / "run" / "collect-batches" / "t1-0000.jsonl").read_text().splitlines()
    params = json.loads(chunk[0])["params"]
    assert params["system"] == "Be brief." and params["max_tokens"] == 64 and "n" not in params
    # a re-run of a finished batch run submits nothing
    assert main(["collect", "-c", str(cfg), "--force"]) == 0
    assert kinds(srv)["batch_create"] == 3


def _start_and_kill(cfg: Path, srv, tmp: Path) -> None:
    """A collector in its own process, killed -9 once it is polling a submitted batch."""
    env = {**os.environ, "TEST_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and kinds(srv)["batch_poll"] < 1:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_anthropic_batch_resumes_by_polling_after_kill(tmp_path: Path, fake_api) -> None:
    srv = fake_api("anthropic", "--api-key", KEY, "--batch-delay", "4")
    cfg = batch_mode(anthropic_config(tmp_path, srv.base_url, 15))
    _start_and_kill(cfg, srv, tmp_path)
    recorded = state(tmp_path)
    assert [c["state"] for c in recorded] == ["submitted"] and recorded[0]["batch_id"] == "msgbatch_0001"
    assert main(["collect", "-c", str(cfg)]) == 0
    assert kinds(srv)["batch_create"] == 1, "the recorded batch must be polled, not submitted again"
    assert len(load_records(tmp_path / "run" / "collect")) == 15


def test_batch_created_but_not_recorded_is_found_again(tmp_path: Path, fake_api) -> None:
    """Killed between the create call and recording its id: the state says `creating`; the resume finds the
    batch by time and size (checked by the nonce in its custom ids) instead of paying for a second one."""
    srv = fake_api("anthropic", "--api-key", KEY, "--batch-delay", "3")
    cfg = batch_mode(anthropic_config(tmp_path, srv.base_url, 12))
    _start_and_kill(cfg, srv, tmp_path)
    path = tmp_path / "run" / "collect-batches" / "t1.json"
    data = json.loads(path.read_text())
    data["chunks"][0].update(state="creating", batch_id=None, status=None)
    path.write_text(json.dumps(data))
    assert main(["collect", "-c", str(cfg)]) == 0
    assert kinds(srv)["batch_create"] == 1
    assert state(tmp_path)[0]["batch_id"] == "msgbatch_0001"
    assert len(load_records(tmp_path / "run" / "collect")) == 12


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_create_answered_500_but_done_is_not_paid_twice(tmp_path: Path, fake_api, provider: str) -> None:
    """The server creates the batch but the answer is lost: no SDK retry (it would create a second batch); the
    runner looks for the batch it may have created and adopts it."""
    srv = fake_api(provider, "--api-key", KEY, "--batch-delay", "0.3", "--lose-batch-creates", "1")
    if provider == "anthropic":
        cfg = batch_mode(anthropic_config(tmp_path, srv.base_url, 8))
    else:
        cfg = batch_mode(write_config(tmp_path, srv.base_url, n_prompts=8, price={"prompt": 1.0, "completion": 2.0}))
    assert main(["collect", "-c", str(cfg)]) == 0
    assert kinds(srv)["batch_create"] == 1
    assert len(load_records(tmp_path / "run" / "collect")) == 8


def test_rejected_anthropic_batch_names_the_prompt_and_field(tmp_path: Path, fake_api, capsys) -> None:
    srv = fake_api("anthropic", "--api-key", KEY)
    cfg = batch_mode(anthropic_config(tmp_path, srv.base_url, 3, model=""))
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "rejected by the server" in err and "line 1 (prompt 'q0')" in err and "params.model" in err
    assert state(tmp_path)[0]["status"] == "rejected"  # never tried again


def test_anthropic_batch_wrong_key_names_api_key(tmp_path: Path, fake_api, capsys) -> None:
    srv = fake_api("anthropic", "--api-key", "the-right-key")
    cfg = batch_mode(anthropic_config(tmp_path, srv.base_url, 3))
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "`api_key` of 't1'" in err and KEY not in err


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_cancel_batches_then_rerun_keeps_what_finished(tmp_path: Path, fake_api, provider: str, capsys) -> None:
    """The first batch never ends by itself; `--cancel-batches` cancels it (recorded first); the re-run stores
    the half that finished and submits the other half as a new batch."""
    srv = fake_api(provider, "--api-key", KEY, "--batch-hold", "1", "--batch-delay", "0.3")
    if provider == "anthropic":
        cfg = anthropic_config(tmp_path, srv.base_url, 10)
    else:
        cfg = write_config(tmp_path, srv.base_url, n_prompts=10, price={"prompt": 10.0, "completion": 30.0})
    batch_mode(cfg)
    _start_and_kill(cfg, srv, tmp_path)
    assert main(["collect", "-c", str(cfg), "--cancel-batches"]) == 0
    out = capsys.readouterr().out
    assert "cancelled 1 batch" in out
    chunk = state(tmp_path)[0]
    assert chunk["cancelled_at"] and chunk["state"] == "submitted"
    assert kinds(srv)["batch_cancel"] == 1
    log = (tmp_path / "run" / "collect-batches" / "cancellations.jsonl").read_text().splitlines()
    assert json.loads(log[0])["batch_id"] == chunk["batch_id"]
    # nothing left to cancel: a second call does nothing
    assert main(["collect", "-c", str(cfg), "--cancel-batches"]) == 0
    assert "no unfinished batches" in capsys.readouterr().out and kinds(srv)["batch_cancel"] == 1
    # killed after recording `cancelled_at` but before the provider's answer was recorded: the cancel is sent again
    path = tmp_path / "run" / "collect-batches" / "t1.json"
    data = json.loads(path.read_text())
    data["chunks"][0]["status"] = "in_progress"
    path.write_text(json.dumps(data))
    assert main(["collect", "-c", str(cfg), "--cancel-batches"]) == 0
    assert kinds(srv)["batch_cancel"] == 2 and state(tmp_path)[0]["status"] in ("cancelling", "canceling")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert sorted(ds["prompt_id"]) == sorted(f"q{i}" for i in range(10))
    by_batch = Counter(r["batch_id"] for r in ds)
    assert sorted(by_batch.values()) == [5, 5] and chunk["batch_id"] in by_batch  # half kept, half resubmitted
    k = kinds(srv)
    assert k["batch_create"] == 2 and k["ok"] == 0  # resubmitted as a batch, not online
    assert summary(tmp_path)["failed"] == 0
