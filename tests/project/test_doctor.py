"""`distill doctor` against real HTTP teachers (the fake OpenAI server) on the demo config's shape."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from distill.cli import main as cli_main
from distill.serve import free_port

KEY = "sk-doctor-right-key-0123456789abcdef"


def pipeline(tmp_path: Path, student: Path, teachers: list[dict], benchmarks: tuple[str, ...] = ()) -> Path:
    """The demo's sections (collect -> train -> eval with a teacher endpoint), pointed at the given teachers."""
    body = {
        "name": "doc", "run_dir": str(tmp_path / "run"),
        "collect": {"prompts": {"path": str(tmp_path / "prompts.jsonl"), "field": "question"}, "teachers": teachers},
        "train": {"student": str(student), "method": "lora"},
        "eval": {"benchmarks": [{"name": "arith", "kind": "local", "source": str(tmp_path / "eval.jsonl")}]
                 + [{"name": b} for b in benchmarks],
                 "models": [{"name": "teacher-eval", "role": "teacher", "base_url": teachers[0]["base_url"],
                             "model": teachers[0]["model"], "api_key": teachers[0]["api_key"]}]},
    }
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def run(path: Path, capsys, tmp_path: Path) -> tuple[int, str, dict]:
    capsys.readouterr()
    rc = cli_main(["doctor", "-c", str(path), "--json", str(tmp_path / "doctor.json")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc in (0, 1), text
    return rc, text, json.loads((tmp_path / "doctor.json").read_text())


def test_reachable_teacher_passes(fake_server, tiny_model: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    srv = fake_server(api_key=KEY)
    monkeypatch.setenv("DOCTOR_KEY", KEY)
    path = pipeline(tmp_path, tiny_model, [{"name": "teacher", "base_url": srv.base_url, "model": "fake-model",
                                            "api_key": "${DOCTOR_KEY}"}])
    rc, text, summary = run(path, capsys, tmp_path)
    assert rc == 0 and summary["ok"], text
    rows = {r["check"]: r for r in summary["rows"]}
    assert rows["endpoint teacher"]["status"] == "ok" and "key accepted" in rows["endpoint teacher"]["value"]
    assert rows["chat template (train --check)"]["status"] == "ok"
    assert {"python", "torch", "CUDA", "bf16 (native)", "flash-attention 2", "vLLM", "disk free: runs",
            "disk free: HF cache", "sandbox (bwrap)"} <= set(rows)
    assert rows["sandbox (bwrap)"]["status"] == "ok", "bwrap is installed here (scripts/install_cpu.sh) and runs"
    assert KEY not in text and KEY not in (tmp_path / "doctor.json").read_text()


def test_wrong_key_dead_port_and_missing_bwrap_fail_with_rows_naming_them(fake_server, tiny_model: Path,
                                                                           tmp_path: Path, capsys, monkeypatch) -> None:
    srv = fake_server(api_key=KEY)
    wrong = "sk-doctor-wrong-key-0000000000000000"
    monkeypatch.setenv("DOCTOR_WRONG_KEY", wrong)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    path = pipeline(tmp_path, tiny_model, [
        {"name": "keyed", "base_url": srv.base_url, "model": "fake-model", "api_key": "${DOCTOR_WRONG_KEY}"},
        {"name": "gone", "base_url": dead, "model": "m", "api_key": "EMPTY"}], benchmarks=("humaneval",))
    no_bwrap = tmp_path / "bin"  # a PATH without bwrap: HumanEval needs the sandbox, so that row fails too
    no_bwrap.mkdir()
    monkeypatch.setenv("PATH", str(no_bwrap))
    rc, text, summary = run(path, capsys, tmp_path)
    assert rc == 1 and not summary["ok"]
    rows = {r["check"]: r for r in summary["rows"]}
    assert rows["endpoint keyed"]["status"] == "FAIL" and "HTTP 401 (key rejected)" in rows["endpoint keyed"]["value"]
    assert rows["endpoint gone"]["status"] == "FAIL" and "unreachable" in rows["endpoint gone"]["value"]
    bw = rows["sandbox (bwrap)"]
    assert bw["status"] == "FAIL" and bw["needed"] and "bwrap not installed" in bw["value"]
    assert "doctor: missing what the config needs: endpoint keyed, endpoint gone, sandbox (bwrap)" in text
    assert wrong not in text and wrong not in (tmp_path / "doctor.json").read_text()
