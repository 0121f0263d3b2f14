"""The `train:` section of a pipeline YAML: every knob of the SFT stage in one place (TRL's config-beside-trainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.schema import Section


class LoraSettings(Section):
    r: int = Field(default=16, gt=0, description="LoRA rank")
    alpha: int = Field(default=32, gt=0, description="LoRA alpha")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: str | list[str] = Field(default="all-linear", description="or a list of module names")


class TrainConfig(Section):
    """Sequence-level distillation: SFT of the student on the teacher's curated conversations."""

    student: str = Field(description="hub id or local dir of the base student (its tokenizer comes with it)")
    dataset: Path | None = Field(default=None, description="a saved DatasetDict/Dataset dir or a JSONL/Parquet file "
                                                           "with `messages` (default: `<run_dir>/curate/dataset`)")
    method: Literal["lora", "qlora", "full"] = Field(default="lora",
                                                     description="`lora`, `qlora` (CUDA + bitsandbytes), `full`")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    chat_template: str | None = Field(default=None, description="Jinja template, inline or a path to a `.jinja` "
                                                                "file (default: the student's)")
    loss_on: Literal["assistant", "completion"] = Field(default="assistant",
                                                        description="`assistant` (template `{% generation %}` tags) "
                                                                    "or `completion` (last assistant turn, by "
                                                                    "prefix)")
    max_length: int = Field(default=1024, gt=8, description="tokens per example / per packed row; longer examples "
                                                            "are truncated (counted)")
    packing: bool = Field(default=False, description="BFD packing, padding-free")
    epochs: float = Field(default=1.0, gt=0, description="passes over the training split")
    max_steps: int | None = Field(default=None, gt=0, description="optimizer steps; overrides `epochs`")
    batch_size: int = Field(default=8, gt=0, description="examples per device per step")
    grad_accum: int = Field(default=1, gt=0, description="gradient accumulation steps")
    learning_rate: float = Field(default=2e-4, gt=0, description="AdamW learning rate")
    lr_scheduler: str = Field(default="cosine", description="learning-rate schedule")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="warmup = ceil(ratio x optimizer steps)")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(default=1.0, gt=0, description="gradient clipping norm")
    eval_fraction: float = Field(default=0.05, ge=0, lt=1, description="held out when the dataset has no "
                                                                       "`validation` split (0: no eval)")
    max_eval_examples: int | None = Field(default=500, gt=0, description="cap on eval rows")
    eval_steps: int | None = Field(default=None, gt=0, description="evaluate every N steps (always at the start and "
                                                                   "the end)")
    save_steps: int = Field(default=200, gt=0, description="checkpoint every N steps (for `--resume`)")
    save_total_limit: int = Field(default=2, gt=0, description="checkpoints kept")
    logging_steps: int = Field(default=10, gt=0, description="log every N steps")
    seed: int = Field(default=0, description="seed of shuffling, initialisation and the eval split")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(default="auto",
                                                               description="`auto` (bf16 at compute capability >= "
                                                                           "8.0, else fp16; fp32 on CPU), `bf16`, "
                                                                           "`fp16`, `fp32`; `full` keeps fp32 "
                                                                           "master weights")
    gradient_checkpointing: bool | None = Field(default=None, description="trade compute for memory (default: on "
                                                                          "for GPUs, off on CPU)")
    cpu_threads: int | None = Field(default=None, gt=0, description="torch threads on a CPU (default: torch's)")
    attn_implementation: str | None = Field(default=None, description="e.g. `sdpa`, `flash_attention_2` (needs the "
                                                                      "`flash-attn` extra, CUDA only) (default: "
                                                                      "transformers')")
    report_to: list[Literal["tensorboard", "wandb", "none"]] = Field(default_factory=lambda: ["none"],
                                                                     description="`tensorboard`, `wandb`")
    check_examples: int = Field(default=200, gt=0, description="rows the chat-template check renders")
    merge: bool = Field(default=True, description="write `merged/` for LoRA/QLoRA")
    keep_checkpoints: bool = Field(default=False, description="keep `train-work/` after a finished run")
    progress: bool = Field(default=True, description="progress bar")
