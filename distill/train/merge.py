"""Fold a LoRA adapter into its base model: one plain checkpoint (with tokenizer + chat template) for vLLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def merge_adapter(base: str, adapter_dir: str | Path, out_dir: str | Path, tokenizer: Any, precision: str) -> Path:
    """Load the base unquantized (QLoRA adapters merge into full-precision weights), merge, save."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out_dir = Path(out_dir)
    merged.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
