"""The GPU-run decisions (distill.train.choices) checked with the values real boxes report: no GPU is needed."""

from __future__ import annotations

import pytest

from distill.errors import ConfigError
from distill.train.choices import (batches_per_epoch, check_attn_implementation, choose_precision, count_params,
                                   ddp_find_unused, local_rank, model_dtype_name, qlora_device_map, total_steps,
                                   warmup_steps)
from tests.paths import REPO


@pytest.mark.parametrize(("cuda", "cap", "want"), [
    (True, (9, 0), "bf16"),   # H100 / H200
    (True, (8, 0), "bf16"),   # A100
    (True, (8, 9), "bf16"),   # L4 / 4090
    (True, (7, 5), "fp16"),   # T4: is_bf16_supported() says True (emulation), but it has no bf16 tensor cores
    (True, (7, 0), "fp16"),   # V100
    (False, None, "fp32"),
])
def test_auto_precision_follows_compute_capability(cuda: bool, cap: tuple[int, int] | None, want: str) -> None:
    assert choose_precision("auto", cuda=cuda, capability=cap) == want


def test_explicit_precision_is_kept_and_fp16_on_cpu_is_an_error() -> None:
    assert choose_precision("bf16", cuda=True, capability=(7, 5)) == "bf16"
    assert choose_precision("fp32", cuda=True, capability=(9, 0)) == "fp32"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        choose_precision("fp16", cuda=False, capability=None)


def test_full_finetuning_keeps_fp32_master_weights() -> None:
    assert model_dtype_name("full", "bf16") == "float32" and model_dtype_name("full", "fp16") == "float32"
    assert model_dtype_name("lora", "bf16") == "bfloat16" and model_dtype_name("qlora", "fp16") == "float16"
    assert model_dtype_name("lora", "fp32") == "float32"


def test_qlora_device_is_the_local_rank_not_the_global_one() -> None:
    # node 2 of 2 with 8 GPUs each: global rank 13 is GPU 5 of this node
    assert qlora_device_map({"RANK": "13", "LOCAL_RANK": "5", "WORLD_SIZE": "16"}) == {"": 5}
    assert qlora_device_map({}) == {"": 0} and local_rank({"LOCAL_RANK": ""}) == 0


def test_param_counts_read_ds_numel_of_partitioned_weights() -> None:
    import torch

    frozen = torch.nn.Parameter(torch.empty(0), requires_grad=False)  # a ZeRO-3 shard placeholder: numel() == 0
    frozen.ds_numel = 1000
    lora = torch.nn.Parameter(torch.empty(0))
    lora.ds_numel = 24
    plain = torch.nn.Parameter(torch.zeros(3, 4))
    assert count_params([frozen, lora, plain]) == (24 + 12, 1000 + 24 + 12)


def test_warmup_is_an_integer_step_count_from_the_run_length() -> None:
    # 1000 rows, 8 per device, 4 ranks: ceil(125 / 4) = 32 batches per rank; grad_accum 3 -> 11 steps per epoch
    assert batches_per_epoch(1000, 8, 4) == 32
    steps = total_steps(max_steps=None, epochs=2.5, batches_per_epoch=32, grad_accum=3)
    assert steps == 28 and warmup_steps(steps, 0.1) == 3 and isinstance(warmup_steps(steps, 0.1), int)
    assert total_steps(max_steps=500, epochs=3, batches_per_epoch=32, grad_accum=1) == 500
    assert warmup_steps(500, 0.03) == 15 and warmup_steps(500, 0.0) == 0


def test_flash_attention_without_the_package_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"flash_attention_2 needs the flash-attn package.*\[flash-attn\]"):
        check_attn_implementation("flash_attention_2", flash_attn_importable=False)
    check_attn_implementation("flash_attention_2", flash_attn_importable=True)
    check_attn_implementation("sdpa")
    check_attn_implementation(None)


def test_lora_under_ddp_does_not_search_for_unused_parameters() -> None:
    assert ddp_find_unused("lora") is False and ddp_find_unused("qlora") is False
    assert ddp_find_unused("full") is None  # transformers' own choice (False with gradient checkpointing)


def test_fsdp_checkpoints_sharded_and_the_final_save_switches_to_full() -> None:
    from pathlib import Path

    import yaml
    from accelerate.utils import FullyShardedDataParallelPlugin

    from distill.train.trainer import full_state_dict

    conf = yaml.safe_load((REPO / "configs/accelerate/fsdp.yaml").read_text())
    fsdp = conf["fsdp_config"]
    assert fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT", "checkpoints: every rank writes its own shard"
    plugin = FullyShardedDataParallelPlugin(fsdp_version=fsdp["fsdp_version"],
                                            state_dict_type=fsdp["fsdp_state_dict_type"])
    assert "SHARDED_STATE_DICT" in str(plugin.state_dict_type)
    full_state_dict(plugin)
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type)  # what Trainer.save_model checks before gathering
    assert type(plugin.state_dict_config).__name__ == "FullStateDictConfig" and plugin.state_dict_config.rank0_only


def test_zero3_init_flag_loads_weights_already_partitioned(tmp_path) -> None:
    """With the training arguments built before the model (build_trainer's order), transformers' DeepSpeed link is
    set when `from_pretrained` runs, so ZeRO-3 loads every weight straight into its shard (`ds_numel`, empty local
    tensor) instead of a whole copy per rank. Runs on CPU wherever deepspeed is installed (its CPU accelerator)."""
    pytest.importorskip("deepspeed")
    import os
    import subprocess
    import sys

    code = (
        "from pathlib import Path\n"
        "from distill.devtools.tiny import tiny_model_dir\n"
        "from distill.train.config import TrainConfig\n"
        "from distill.train.trainer import _load_model, sft_args\n"
        f"d = tiny_model_dir(Path({str(tmp_path)!r}) / 'tiny')\n"
        "cfg = TrainConfig(student=str(d))\n"
        # kept alive as build_trainer keeps it: transformers holds its DeepSpeed config by weak reference
        f"args = sft_args(cfg, Path({str(tmp_path)!r}) / 'out', 'fp32', has_eval=False)\n"
        "p = next(_load_model(cfg, 'fp32').parameters())\n"
        "print('PARTITIONED', getattr(p, 'ds_numel', None), p.numel())\n"
    )
    env = {**os.environ, "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
           "ACCELERATE_DEEPSPEED_ZERO3_INIT_FLAG": "true", "DS_ACCELERATOR": "cpu", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29533", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("PARTITIONED")]
    assert line, out.stderr[-2000:]
    _, ds_numel, local = line[0].split()
    assert ds_numel != "None" and int(ds_numel) > 0 and int(local) == 0
