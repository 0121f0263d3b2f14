"""The curated dataset feeds TRL's SFTTrainer unchanged (a few fp32 CPU steps on the tiny local model)."""

from __future__ import annotations

import json
import math

import pytest

from distill.curate import CurateConfig, load_curated, run_curate
from distill.rundir import RunLayout

pytest.importorskip("trl")


def test_curated_dataset_trains_with_sfttrainer(tmp_path, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tests.curate.test_curate import fixture_records, write_collect_dir

    write_collect_dir(tmp_path, fixture_records())
    cfg = CurateConfig.model_validate({"validation_fraction": 0.3, "verify": {"timeout_s": 2},
                                       "decontam": {"enabled": False}})
    run_curate(cfg, RunLayout(tmp_path))
    dd = load_curated(tmp_path / "curate")
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, torch_dtype=torch.float32)
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=4,
                     per_device_eval_batch_size=4, learning_rate=1e-3, logging_steps=1, save_strategy="no",
                     report_to=[], use_cpu=True, bf16=False, fp16=False, assistant_only_loss=True,
                     max_length=256, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dd["train"], eval_dataset=dd["validation"],
                         processing_class=tok)
    out = trainer.train()
    assert out.global_step == 3 and math.isfinite(out.training_loss)
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    json.dumps(metrics)
