"""The decisions a GPU run depends on, as pure functions of what the box reports.

Each one is right or wrong only on hardware this project's CI does not have (a T4, a second node, a ZeRO-3 shard),
so each takes the facts as arguments and a CPU test checks it with values; the thin `*_here()` wrappers read the
facts from torch / the environment.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from distill.errors import ConfigError

BF16_MIN_CAPABILITY = (8, 0)  # Ampere: native bf16 tensor cores; T4 (7.5) / V100 (7.0) only emulate it


def choose_precision(requested: str, *, cuda: bool, capability: tuple[int, int] | None) -> str:
    """bf16 on GPUs with native bf16 (compute capability >= 8.0), fp16 on older GPUs, fp32 on CPU.

    `torch.cuda.is_bf16_supported()` also counts emulated bf16 (slow, and no fp16 loss scaling), so it is not used.
    """
    if requested == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if capability is not None and tuple(capability) >= BF16_MIN_CAPABILITY else "fp16"
    if requested == "fp16" and not cuda:
        raise ConfigError("train.precision: fp16 needs a CUDA GPU; on CPU use fp32 (or auto)")
    return requested


def cuda_capability() -> tuple[int, int] | None:
    """Compute capability of GPU 0, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return major, minor


def pick_precision(requested: str) -> str:
    cap = cuda_capability()
    return choose_precision(requested, cuda=cap is not None, capability=cap)


def model_dtype_name(method: str, precision: str) -> str:
    """The dtype the weights are loaded in.

    Full fine-tuning loads fp32 and lets autocast run bf16/fp16: the optimizer then updates fp32 master weights
    (pure-bf16 weights lose small updates: 1 + 1e-3 == 1 in bf16). LoRA loads the frozen base in the training
    precision (only the small adapters train, and PEFT keeps them fp32). QLoRA computes in bf16/fp16.
    """
    if method == "full" or precision == "fp32":
        return "float32"
    return {"bf16": "bfloat16", "fp16": "float16"}[precision]


def local_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's GPU index on its own node (`LOCAL_RANK` from torchrun / accelerate launch; 0 alone)."""
    env = os.environ if env is None else env
    return int(env.get("LOCAL_RANK", "0") or 0)


def qlora_device_map(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Every 4-bit layer on this process's own GPU: the LOCAL rank (on node 2+ the global rank is past its GPUs)."""
    return {"": local_rank(env)}


def count_params(params: Iterable[Any]) -> tuple[int, int]:
    """(trainable, total) parameter counts; a ZeRO-3 partitioned weight has numel() 0 and its size in `ds_numel`."""
    trainable = total = 0
    for p in params:
        n = int(getattr(p, "ds_numel", 0) or p.numel())
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def batches_per_epoch(rows: int, batch_size: int, world_size: int) -> int:
    """Batches each process runs per epoch: accelerate splits ceil(rows / batch) batches evenly over the ranks."""
    return math.ceil(math.ceil(rows / batch_size) / max(world_size, 1))


def total_steps(*, max_steps: int | None, epochs: float, batches_per_epoch: int, grad_accum: int) -> int:
    """Optimizer steps of a run, as transformers' Trainer counts them (batches per epoch are per process)."""
    if max_steps:
        return max_steps
    per_epoch = max(batches_per_epoch // grad_accum + int(batches_per_epoch % grad_accum > 0), 1)
    return math.ceil(epochs * per_epoch)


def warmup_steps(steps: int, ratio: float) -> int:
    """Warmup as an integer step count: transformers 4.x reads a float `warmup_steps` < 1 as ~0 steps, 5.x as a
    ratio, so an explicit count is the one value every allowed version reads the same way."""
    return math.ceil(steps * ratio) if ratio > 0 else 0


def check_attn_implementation(name: str | None, *, flash_attn_importable: bool | None = None) -> None:
    """One clear error for `flash_attention_2` without the flash-attn package (it is a GPU-only extra)."""
    if name != "flash_attention_2":
        return
    if flash_attn_importable is None:
        flash_attn_importable = flash_attn_available()
    if not flash_attn_importable:
        raise ConfigError("train.attn_implementation: flash_attention_2 needs the flash-attn package (CUDA only): "
                          "pip install -c constraints.txt --no-build-isolation -e '.[flash-attn]', or use sdpa")


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def ddp_find_unused(method: str) -> bool | None:
    """False for LoRA/QLoRA: the frozen base makes transformers guess True, which costs a graph walk every step."""
    return False if method in ("lora", "qlora") else None
