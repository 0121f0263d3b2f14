"""Fold a LoRA adapter into its base model: one plain checkpoint (with tokenizer + chat template) for vLLM.

The merge runs in a FRESH process (`python -m distill.train.merge`): after ZeRO-3 training, transformers' DeepSpeed
link is still set in the training process, so a `from_pretrained` there would go through `deepspeed.zero.Init` and
wait for the ranks that have already exited; a fresh process also starts with the GPU memory the trainer held free.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from distill.errors import DistillError

# launcher variables that would make the merge process think it is one rank of a distributed job
_DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "MASTER_ADDR",
             "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def qlora_quant_config(precision: str) -> Any:
    """The 4-bit config QLoRA trains on; the merge loads the base with the same one to dequantize it."""
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if precision == "bf16" else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _load_base(base: str, precision: str, qlora: bool) -> Any:
    """The base weights the adapter was trained on: for QLoRA the NF4 base, dequantized (not the bf16 original,
    which differs from what the adapter saw by the quantization error)."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if not qlora:
        return AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(base, quantization_config=qlora_quant_config(precision),
                                                 device_map={"": 0}, dtype=dtype)
    # transformers' dequantize: bitsandbytes' dequantize_4bit on every Linear4bit, then drops quantization_config
    return model.dequantize().to(dtype)  # no dtype argument: transformers 4.x's dequantize() takes none


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The tokens the chat template trains to end an assistant turn: the end tokens inside a probe turn's loss."""
    from distill.train.template import IGNORE, encode, end_token_ids

    probe = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]
    ends = end_token_ids(tokenizer)
    found: list[int] = []
    for loss_on in ("assistant", "completion"):
        try:
            _, labels = encode(tokenizer, probe, loss_on)
        except Exception:  # a template that cannot render the probe: fall back to the other loss mode
            continue
        found = [t for t in labels if t != IGNORE and t in ends]
        if found:
            break
    return sorted(set(found[-1:]))


def add_eos_to_generation_config(model_dir: str | Path, eos_ids: list[int]) -> list[int]:
    """Write `eos_ids` into model_dir's generation_config.json EOS list (vLLM and generate() stop on any of them)."""
    from transformers import GenerationConfig

    model_dir = Path(model_dir)
    try:
        gen = GenerationConfig.from_pretrained(str(model_dir))
    except OSError:
        gen = GenerationConfig.from_model_config(_model_config(model_dir))
    cur = gen.eos_token_id
    have = [] if cur is None else [cur] if isinstance(cur, int) else list(cur)
    merged = have + [t for t in eos_ids if t not in have]
    gen.eos_token_id = merged[0] if len(merged) == 1 else merged
    gen.save_pretrained(str(model_dir))
    return merged


def _model_config(model_dir: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(model_dir))


def finish_merged(model_dir: str | Path, tokenizer: Any) -> list[int]:
    """Tokenizer (with the training template) beside the weights, and the template's end token among the EOS ids."""
    tokenizer.save_pretrained(str(model_dir))
    return add_eos_to_generation_config(model_dir, end_of_turn_ids(tokenizer))


def merge_adapter(base: str, adapter_dir: str | Path, out_dir: str | Path, precision: str, *,
                  qlora: bool = False) -> Path:
    """In this process: load the base (dequantized for QLoRA), merge the adapter, save with the adapter's tokenizer."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    merged = PeftModel.from_pretrained(_load_base(base, precision, qlora), str(adapter_dir)).merge_and_unload()
    out_dir = Path(out_dir)
    merged.save_pretrained(str(out_dir))
    finish_merged(out_dir, AutoTokenizer.from_pretrained(str(adapter_dir)))
    return out_dir


def merge_in_fresh_process(base: str, adapter_dir: str | Path, out_dir: str | Path, precision: str, *,
                           qlora: bool = False) -> Path:
    """`merge_adapter` in a new Python process with no launcher/DeepSpeed state (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV and not k.startswith("ACCELERATE_")}
    cmd = [sys.executable, "-m", "distill.train.merge", "--base", base, "--adapter", str(adapter_dir),
           "--out", str(out_dir), "--precision", precision] + (["--qlora"] if qlora else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DistillError(f"merging {adapter_dir} into {base} failed (exit {proc.returncode}): "
                           + " | ".join(proc.stderr.strip().splitlines()[-5:]))
    return Path(out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="merge a LoRA adapter into its base (run by `distill train`)")
    p.add_argument("--base", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--qlora", action="store_true")
    a = p.parse_args(argv)
    out = merge_adapter(a.base, a.adapter, a.out, a.precision, qlora=a.qlora)
    print(json.dumps({"merged": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
