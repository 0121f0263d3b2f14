"""The `train:` section of a pipeline YAML: every knob of the SFT stage in one place (TRL's config-beside-trainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.schema import Section


class LoraSettings(Section):
    r: int = Field(default=16, gt=0, description="LoRA rank")
    alpha: int = Field(default=32, gt=0, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field(default="all-linear", description="'all-linear' or module names")


class TrainConfig(Section):
    """Sequence-level distillation: SFT of the student on the teacher's curated conversations."""

    student: str = Field(description="hub id or local dir of the base student model (with its tokenizer)")
    dataset: Path | None = Field(
        default=None, description="override: a saved DatasetDict/Dataset dir or a JSONL/Parquet file with `messages`"
    )
    method: Literal["lora", "qlora", "full"] = "lora"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    chat_template: str | None = Field(
        default=None, description="Jinja template (inline, or a path to a .jinja file) replacing the student's own"
    )
    loss_on: Literal["assistant", "completion"] = Field(
        default="assistant",
        description="assistant: every assistant turn via the template's {% generation %} tags; "
        "completion: the last assistant turn, found as what follows the rendered prompt",
    )
    max_length: int = Field(default=1024, gt=8, description="tokens per example (and per packed row)")
    packing: bool = Field(default=False, description="best-fit-decreasing packing, padding-free")
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, gt=0, description="overrides epochs")
    batch_size: int = Field(default=8, gt=0, description="per device")
    grad_accum: int = Field(default=1, gt=0)
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    eval_fraction: float = Field(
        default=0.05, ge=0, lt=1, description="held out when the dataset has no validation split (0: no eval)"
    )
    max_eval_examples: int | None = Field(default=500, gt=0)
    eval_steps: int | None = Field(default=None, gt=0, description="evaluate every N steps (default: at the end)")
    save_steps: int = Field(default=200, gt=0, description="checkpoint every N steps (for --resume)")
    save_total_limit: int = Field(default=2, gt=0)
    logging_steps: int = Field(default=10, gt=0)
    seed: int = 0
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        default="auto", description="auto: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU"
    )
    gradient_checkpointing: bool | None = Field(default=None, description="default: on for GPUs, off on CPU")
    cpu_threads: int | None = Field(default=None, gt=0, description="torch threads on CPU (default: torch's choice)")
    attn_implementation: str | None = Field(default=None, description="e.g. sdpa, flash_attention_2")
    report_to: list[Literal["tensorboard", "wandb", "none"]] = Field(default_factory=lambda: ["none"])
    check_examples: int = Field(default=200, gt=0, description="examples the chat-template check renders")
    merge: bool = Field(default=True, description="write merged/ (base + adapter) for vLLM")
    keep_checkpoints: bool = Field(default=False, description="keep train-work/checkpoints after a finished run")
    progress: bool = True
