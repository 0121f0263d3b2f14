"""train: SFT of a student on the curated teacher conversations (TRL + PEFT), chat-template check, merge.

`config` (the `train:` section), `data` (load + validate splits), `template` (the one render/mask path and the
check run before any step), `trainer` (SFTTrainer on one CPU or N GPUs), `merge` (adapter -> plain checkpoint, in a
fresh process), `choices` (the GPU-run decisions as pure functions: precision, dtype, device map, warmup, counts).
"""

from distill.train.config import LoraSettings, TrainConfig
from distill.train.trainer import dataset_path, run_check, run_train

__all__ = ["LoraSettings", "TrainConfig", "dataset_path", "run_check", "run_train"]
