"""train: SFT of a student on the curated teacher conversations (TRL + PEFT), chat-template check, merge.

`config` (the `train:` section), `data` (load + validate splits), `template` (the one render/mask path and the
check run before any step), `trainer` (SFTTrainer on one CPU or N GPUs), `merge` (adapter -> plain checkpoint, in a
fresh process), `choices` (the GPU-run decisions as pure functions: precision, dtype, device map, warmup, counts).
"""

from typing import Any

from distill.train.config import LoraSettings, TrainConfig


def __getattr__(name: str) -> Any:
    """The stage's functions load the trainer module on first use, so `distill.train.config` alone stays light."""
    if name in ("dataset_path", "run_check", "run_train"):
        from distill.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'distill.train' has no attribute {name!r}")


__all__ = ["LoraSettings", "TrainConfig", "dataset_path", "run_check", "run_train"]
