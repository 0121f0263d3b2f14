"""eval's manifest.json and `distill eval --replay`, against the fake OpenAI server (real HTTP, request log)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.config import parse_config
from distill.evaluate import run_eval
from distill.manifest import FORMAT, prompt_sha256
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"


def _fake_key(messages: list[dict[str, Any]]) -> str:
    """The fake server logs each request under this hash of the messages it received."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def _served_keys(srv: Any) -> set[str]:
    return {e["key"] for e in srv.served() if e.get("kind") == "ok"}


def _eval_run(tmp_path: Path, url: str) -> tuple[Any, Path]:
    echo = tmp_path / "echo.jsonl"
    rows = [json.loads(x) for x in (F / "echo_numeric.jsonl").read_text().splitlines()]
    echo.write_text("".join(json.dumps({**r, "qid": f"q{i}"}) + "\n" for i, r in enumerate(rows)))
    cfg = parse_config({"name": "mtest", "run_dir": str(tmp_path / "run"), "eval": {
        "progress": False,
        "models": [
            {"name": "teacher", "role": "teacher", "base_url": url, "model": "gpt-4o-mini", "api_key": "sk-test-1234",
             "params": {"seed": 7}},
            {"name": "student", "role": "student", "base_url": url, "model": "student-x", "gpu_usd_per_hour": 1.0},
        ],
        "benchmarks": [
            {"name": "echo", "kind": "local", "source": str(echo), "options": {"id_field": "qid"}},
            {"name": "gsm8k", "source": str(F / "gsm8k_test.jsonl"), "limit": 2},
            {"name": "mmlu", "source": str(F / "mmlu_test.jsonl"), "max_tokens": 64},
        ]}})
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    return cfg, cfg.root / "eval" / "manifest.json"


def test_manifest_records_what_was_measured(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.01)
    cfg, path = _eval_run(tmp_path, srv.base_url)
    man = json.loads(path.read_text())
    assert man["format"] == FORMAT and man["pipeline"] == "mtest" and man["created_at"].endswith("Z")
    assert man["packages"]["distill"] and man["packages"]["openai"] and man["packages"]["python"]
    assert {"vllm", "transformers", "torch", "math-verify", "lm-eval"} <= set(man["packages"])
    assert set(man["benchmarks"]) == {"echo", "gsm8k", "mmlu"}
    g = man["benchmarks"]["gsm8k"]
    src = g["source"]
    assert src["file"] == str(F / "gsm8k_test.jsonl")
    assert src["sha256"] == hashlib.sha256((F / "gsm8k_test.jsonl").read_bytes()).hexdigest()
    assert len(g["items"]) == 2 and len(g["items"][0]["messages"]) == 17  # 8-shot, the messages themselves
    # every row's prompt has the item's recorded hash, and the hash is of exactly what the server received
    rows = [json.loads(x) for x in (cfg.root / "eval" / "teacher" / "gsm8k.jsonl").read_text().splitlines()]
    assert [prompt_sha256(r["prompt"]) for r in rows] == [it["prompt_sha256"] for it in g["items"]]
    sent = {_fake_key(it["messages"]) for b in man["benchmarks"].values() for it in b["items"]}
    assert sent == _served_keys(srv)
    t = man["models"]["teacher"]
    assert t["role"] == "teacher" and t["requested_model"] == "gpt-4o-mini" and t["base_url"] == srv.base_url
    assert t["returned_models"] == ["fake-model-0001"]  # the id the API answered with, not the one asked for
    assert t["first_answer_at"] <= t["last_answer_at"] and t["evaluated_at"]
    assert t["cost_usd"] > 0 and t["usd_per_1m_output_tokens"] == 0.60
    e = t["benchmarks"]["echo"]
    assert e["sampling"] == {"seed": 7, "max_tokens": 256, "temperature": 0.0, "n": 1}
    assert t["benchmarks"]["mmlu"]["sampling"]["max_tokens"] == 64
    assert e["latency"]["p50_s"] >= 0.01 and e["score"] == pytest.approx(0.6)
    assert e["prompts_differ_from_manifest"] == []
    assert "sk-test" not in path.read_text()


def test_replay_sends_the_same_prompts_and_reproduces_scores(tmp_path: Path, fake_server: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    srv = fake_server()
    cfg, path = _eval_run(tmp_path, srv.base_url)
    original = _served_keys(srv)
    third_party = fake_server()
    out = tmp_path / "replay"
    code = main(["eval", "--replay", str(path), "--base-url", third_party.base_url, "--model", "gpt-4o-mini",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert _served_keys(third_party) == original  # exactly the same prompts, re-asked
    assert "echo: all 5 prompts match the manifest" in text and "gsm8k: all 2 prompts match" in text
    res = json.loads((out / "replay.json").read_text())
    t = res["models"]["teacher"]
    assert t["sampling_from"] == "teacher" and not res["prompts_differ"]
    for b, s in t["benchmarks"].items():
        assert s["replayed"] == pytest.approx(s["recorded"]), b
    # the recorded sampling went out (seed 7 from the teacher's params), the same client wrote the same rows
    rows = [json.loads(x) for x in (out / "teacher" / "echo.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and json.loads((out / "teacher" / "summary.json").read_text())[
        "benchmarks"]["echo"]["sampling"]["seed"] == 7
    # a second replay resumes from its own cache: nothing new is sent
    n = len(third_party.served())
    assert main(["eval", "--replay", str(path), "--base-url", third_party.base_url, "--model", "gpt-4o-mini", "--out",
                 str(out)]) == 0
    assert len(third_party.served()) == n


def test_replay_reports_a_tampered_manifest_and_a_changed_source(tmp_path: Path, fake_server: Any,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    srv = fake_server()
    cfg, path = _eval_run(tmp_path, srv.base_url)
    man = json.loads(path.read_text())
    item = man["benchmarks"]["gsm8k"]["items"][1]
    item["messages"][-1]["content"] += " Answer in French."  # edited, hash left as it was
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(man))
    # and the echo benchmark's file changed since: question q3 reads differently now (same id)
    echo = tmp_path / "echo.jsonl"
    lines = echo.read_text().splitlines()
    lines[3] = json.dumps({**json.loads(lines[3]), "question": "What is 2 plus 2?"})
    echo.write_text("\n".join(lines) + "\n")
    other = fake_server()
    code = main(["eval", "--replay", str(tampered), "-c", _write_cfg(tmp_path, cfg, other.base_url),
                 "--model", "student"])
    text = capsys.readouterr().out
    assert code == 1
    assert f"gsm8k: 1 item(s) whose manifest messages do not match their recorded prompt_sha256 (edited?): " \
           f"{item['id']}" in text
    assert "echo: 1 item(s) whose prompt rebuilt here differs from the manifest's: q3" in text
    assert "echo: the source file changed" in text
    res = json.loads((cfg.root / "eval-replay" / "replay.json").read_text())
    assert res["prompts"]["echo"]["rebuilt_differs"] == ["q3"] and res["prompts"]["gsm8k"]["tampered"] == [item["id"]]
    assert res["models"]["student"]["sampling_from"] == "student"
    # the replay sends the manifest's messages as they are (the tampered one included), never rebuilt ones
    assert _fake_key(item["messages"]) in _served_keys(other)
    assert _fake_key(man["benchmarks"]["echo"]["items"][3]["messages"]) in _served_keys(other)


def _write_cfg(tmp_path: Path, cfg: Any, url: str) -> str:
    """The same pipeline YAML with its models pointed at another endpoint."""
    p = tmp_path / "replay.yaml"
    p.write_text(f"name: mtest\nrun_dir: {cfg.root}\neval:\n  progress: false\n  models:\n"
                 f"    - {{name: student, role: student, base_url: '{url}', model: student-x}}\n"
                 f"  benchmarks:\n    - {{name: gsm8k}}\n")
    return str(p)


def test_bad_manifests_are_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "m.json"
    for content, expect in [("{not json", "not valid JSON (line 1"),
                            (json.dumps({"format": "x"}), "`format` is not"),
                            (json.dumps({"format": FORMAT, "benchmarks": {"g": {"config": {}, "items": [{"id": 1}]}},
                                         "models": {}}), "benchmarks.g.items[0].prompt_sha256 is missing")]:
        bad.write_text(content)
        assert main(["eval", "--replay", str(bad), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0] and str(bad) in err[0]
    assert main(["eval", "--replay", str(tmp_path / "none.json"), "--base-url", "http://x/v1", "--model", "m"]) == 2
    assert "manifest not found" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
