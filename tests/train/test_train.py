"""The train stage end to end on a tiny Llama (CPU, fp32): learning, merge, resume after kill -9, bad input.

The task is learnable by a tiny model: 3-digit sums written as per-digit steps ("7+5+0=12 ... The answer is N.").
The random base has its embeddings scaled up (a random init at std 0.02 gives near-uniform logits that LoRA,
which leaves the tied embedding frozen, cannot sharpen; a pretrained student does not have that problem).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from distill.cli import main as cli_main
from distill.errors import ConfigError
from distill.demo.task import solution
from distill.rundir import RunLayout
from distill.train import TrainConfig, run_train
from distill.train.template import IGNORE
from tests.paths import REPO





def sum_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(100, 1000), rng.randrange(100, 1000)
        rows.append({"prompt_id": f"{a}+{b}", "messages": [
            {"role": "user", "content": f"What is {a} + {b}?"}, {"role": "assistant", "content": solution(a, b)}]})
    return rows


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from distill.devtools.tiny import build_model, build_tokenizer

    d = tmp_path_factory.mktemp("student") / "tiny"
    tok = build_tokenizer([r["messages"][0]["content"] + " " + r["messages"][1]["content"] for r in sum_rows(300, 9)],
                          vocab_size=256)
    model = build_model(tok)
    model.get_input_embeddings().weight.data *= 10
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets import Dataset, DatasetDict

    d = tmp_path_factory.mktemp("data") / "dataset"
    DatasetDict(train=Dataset.from_list(sum_rows(512, 0)), validation=Dataset.from_list(sum_rows(64, 1))).save_to_disk(str(d))
    return d


def train_cfg(student: Path, **kw) -> TrainConfig:
    base = dict(student=str(student), max_steps=80, batch_size=16, learning_rate=1e-2, max_length=128,
                warmup_ratio=0.0, lora={"r": 16, "alpha": 32, "dropout": 0.0}, logging_steps=10, save_steps=40,
                cpu_threads=1, progress=False)
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def lora_run(student: Path, dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    layout = RunLayout(tmp_path_factory.mktemp("run"))
    return run_train(train_cfg(student, dataset=dataset_dir), layout), layout.train


def test_lora_run_lowers_eval_loss_and_reports(lora_run: tuple[dict, Path], student: Path) -> None:
    s, out = lora_run
    from transformers import AutoTokenizer

    uniform = math.log(len(AutoTokenizer.from_pretrained(str(student))))
    assert s["eval_loss_initial"] > uniform
    assert s["eval_loss_final"] < 0.4 * s["eval_loss_initial"] and s["eval_loss_final"] < 0.75 * uniform
    assert s["global_step"] == 80 and s["method"] == "lora" and s["precision"] == "fp32"
    assert 0 < s["trainable_params"] < s["total_params"]
    assert s["tokens_seen"] >= 80 * 16 * 30 and s["tokens_per_s"] > 0 and s["wall_s"] > 0
    assert s["dropped_examples"] == {"empty_mask": 0, "truncated_to_no_loss": 0}
    assert {r["check"] for r in s["template_check"]["table"]} >= {"empty assistant mask", "end-of-turn token in loss"}
    assert json.loads((out / "summary.json").read_text())["eval_loss_final"] == s["eval_loss_final"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out.parent / "train-work").exists(), "checkpoints are removed after a finished run by default"


def test_merged_model_matches_adapter_and_keeps_template(lora_run: tuple[dict, Path], student: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out = lora_run
    tok = AutoTokenizer.from_pretrained(str(out / "merged"))
    assert "{% generation %}" in tok.chat_template
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 123 + 456?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged")).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(student)), str(out / "adapter")).eval()
    base = AutoModelForCausalLM.from_pretrained(str(student)).eval()
    with torch.no_grad():
        a, m, b = adapted(ids).logits, merged(ids).logits, base(ids).logits
    assert torch.allclose(a, m, atol=1e-4), (a - m).abs().max()
    assert not torch.allclose(a, b, atol=1e-2), "the adapter changed nothing"


def test_fresh_run_is_skipped_and_labels_mask_prompt(lora_run: tuple[dict, Path], student: Path,
                                                      dataset_dir: Path) -> None:
    from datasets import load_from_disk

    from distill.train.template import load_tokenizer
    from distill.train.trainer import encode_split

    _, out = lora_run
    assert run_train(train_cfg(student, dataset=dataset_dir), RunLayout(out.parent))["skipped"] is True
    cfg = train_cfg(student)
    val = load_from_disk(str(dataset_dir))["validation"]
    enc, stats = encode_split(load_tokenizer(cfg), val, cfg, "validation")
    assert stats["kept"] == 64 and stats["loss_tokens"] < stats["tokens"]
    tok = load_tokenizer(cfg)
    for row, ids, labels in zip(val.select(range(8)), enc["input_ids"], enc["labels"], strict=False):
        trained = [i for i, lab in enumerate(labels) if lab != IGNORE]
        first = trained[0]
        assert all(lab == IGNORE for lab in labels[:first])
        assert tok.decode(ids[:first]).endswith(row["messages"][0]["content"] + "<|im_end|>\n<|im_start|>assistant\n")
        assert all(labels[i] == ids[i] for i in trained)
        assert tok.decode([ids[i] for i in trained]) == row["messages"][1]["content"] + "<|im_end|>"


def test_resume_after_kill_continues_from_saved_step(student: Path, dataset_dir: Path, tmp_path: Path) -> None:
    cfg_path = tmp_path / "pipe.yaml"
    tcfg = train_cfg(student, max_steps=120, batch_size=8, save_steps=10, keep_checkpoints=True, eval_fraction=0.0)
    train_only = tmp_path / "train-only"  # no validation split + eval_fraction 0: no eval, to keep it short
    from datasets import load_from_disk

    load_from_disk(str(dataset_dir))["train"].save_to_disk(str(train_only))
    body = {"name": "resume", "run_dir": str(tmp_path / "run"),
            "train": tcfg.model_dump(mode="json", exclude_defaults=True) | {"dataset": str(train_only)}}
    cfg_path.write_text(yaml.safe_dump(body))
    ckpts = tmp_path / "run" / "train-work" / "checkpoints"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # the real entry point: make -> accelerate launch -> distill train; killed -9 mid-run
    proc = subprocess.Popen(["make", "-s", "-C", str(REPO), "train-student", f"CONFIG={cfg_path}", f"PY={sys.executable}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpts.is_dir() and any((p / "trainer_state.json").is_file() for p in ckpts.glob("checkpoint-*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before a checkpoint: {proc.stderr.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    done = [p for p in ckpts.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    saved = max(int(p.name.split("-")[1]) for p in done)
    assert 0 < saved < 120 and not (tmp_path / "run" / "train" / "summary.json").exists()

    from distill.config import load_config

    cfg = load_config(cfg_path)
    assert cfg.train.dataset == train_only
    s = run_train(cfg.train, cfg.layout, resume=True)
    assert s["resumed_from_step"] == saved and s["global_step"] == 120
    assert s["steps_this_run"] == 120 - saved
    assert (cfg.root / "train" / "merged" / "config.json").is_file()


def test_dataset_without_messages_is_one_clear_error(student: Path, tmp_path: Path, capsys) -> None:
    from datasets import Dataset, DatasetDict

    bad = tmp_path / "bad"
    DatasetDict(train=Dataset.from_list([{"text": "hello"}] * 4)).save_to_disk(str(bad))
    cfg_path = tmp_path / "p.yaml"
    cfg_path.write_text(yaml.safe_dump({"name": "bad", "run_dir": str(tmp_path / "run"),
                                        "train": {"student": str(student), "dataset": str(bad)}}))
    capsys.readouterr()
    assert cli_main(["train", "-c", str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no `messages` column" in err[0] and "text" in err[0]
    # --check on a curate-less run without `dataset:` names the missing stage
    cfg_path.write_text(yaml.safe_dump({"name": "bad", "run_dir": str(tmp_path / "run"),
                                        "train": {"student": str(student)}}))
    assert cli_main(["train", "-c", str(cfg_path), "--check"]) == 2
    assert "run `distill curate` first" in capsys.readouterr().err


def test_qlora_on_cpu_is_a_config_error(student: Path, dataset_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        run_train(train_cfg(student, method="qlora", dataset=dataset_dir), RunLayout(tmp_path))


@pytest.mark.vllm
@pytest.mark.slow
def test_merged_model_serves_in_vllm(lora_run: tuple[dict, Path], tmp_path: Path) -> None:
    """The real proof of `merged/`: vLLM loads it and its greedy answer equals transformers' greedy answer."""
    pytest.importorskip("vllm")
    import json as _json
    import urllib.request

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.serve import VLLMServer

    _, out = lora_run
    merged = out / "merged"
    msgs = [{"role": "user", "content": "What is 123 + 456?"}]
    tok = AutoTokenizer.from_pretrained(str(merged))
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        gen = AutoModelForCausalLM.from_pretrained(str(merged)).generate(ids, max_new_tokens=8, do_sample=False)
    expected = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
    with VLLMServer(merged, served_name="student", max_model_len=256, log_path=tmp_path / "vllm.log",
                    extra_args=["--dtype", "float32"]) as srv:
        req = urllib.request.Request(
            f"{srv.base_url}/chat/completions", headers={"Content-Type": "application/json"},
            data=_json.dumps({"model": "student", "messages": msgs, "max_tokens": 8, "temperature": 0}).encode())
        with urllib.request.urlopen(req, timeout=120) as r:
            body = _json.loads(r.read())
    assert body["choices"][0]["message"]["content"] == expected


@pytest.mark.slow
def test_two_process_ddp_on_cpu_writes_once(student: Path, dataset_dir: Path, tmp_path: Path) -> None:
    """The multi-GPU code path (every rank trains, rank 0 alone writes), run as 2 CPU processes with gloo."""
    cfg_path = tmp_path / "ddp.yaml"
    tcfg = train_cfg(student, max_steps=6, batch_size=8, save_steps=100, max_eval_examples=16)
    cfg_path.write_text(yaml.safe_dump({"name": "ddp", "run_dir": str(tmp_path / "run"), "train": tcfg.model_dump(
        mode="json", exclude_defaults=True) | {"dataset": str(dataset_dir)}}))
    env = dict(os.environ, PYTHONPATH=str(REPO), ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "distill.cli", "train", "-c", str(cfg_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the ranks too, not only the launcher
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.count("train: lora 6 steps") == 1, stdout
    s = json.loads((tmp_path / "run" / "train" / "summary.json").read_text())
    assert s["world_size"] == 2 and s["global_step"] == 6
    assert s["epochs"] == pytest.approx(6 * 2 * 8 / 512, rel=0.05), "each rank saw its own shard of every batch"
    assert (tmp_path / "run" / "train" / "merged" / "config.json").is_file()
    assert not list((tmp_path / "run").glob(".train.tmp-*")), "only rank 0 writes the stage dir"


def test_packing_keeps_examples_apart(student: Path, dataset_dir: Path, tmp_path: Path) -> None:
    """BFD packing, padding-free: rows are filled, and no token attends across an example boundary."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM

    from distill.train.template import load_tokenizer
    from distill.train.trainer import build_trainer, encode_split

    cfg = train_cfg(student, packing=True, max_length=512, batch_size=2, max_steps=3, eval_fraction=0.0)
    tok = load_tokenizer(cfg)
    enc, stats = encode_split(tok, load_from_disk(str(dataset_dir))["train"].select(range(64)), cfg, "train")
    trainer = build_trainer(cfg, enc, None, tok, tmp_path / "ckpt", "fp32", shuffle_dataset=False)
    assert len(trainer.train_dataset) < 64 / 4, "several examples per packed row"
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1, "padding-free: one flat sequence"
    pos = batch["position_ids"][0]
    starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
    assert len(starts) > 3
    model = AutoModelForCausalLM.from_pretrained(str(student)).eval()
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        for s, e in zip(starts[:-1], starts[1:], strict=True):
            alone = model(input_ids=batch["input_ids"][:, s:e], use_cache=False).logits[0]
            assert torch.allclose(packed[s:e], alone, atol=1e-4)
    s = run_train(cfg.model_copy(update={"dataset": dataset_dir}), RunLayout(tmp_path))
    assert s["packing"]["enabled"] and s["packing"]["fill"] > 0.9 and s["global_step"] == 3


def test_full_finetune_writes_a_plain_checkpoint(student: Path, dataset_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    s = run_train(train_cfg(student, method="full", max_steps=3, learning_rate=1e-3, max_eval_examples=8,
                            dataset=dataset_dir), RunLayout(tmp_path))
    assert s["method"] == "full" and s["trainable_params"] == s["total_params"]
    assert not (tmp_path / "train" / "adapter").exists()
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "train" / "merged"))
    assert sum(p.numel() for p in model.parameters()) == s["total_params"]


def test_cli_check_prints_table_and_stops_on_a_template_trap(student: Path, dataset_dir: Path, tmp_path: Path,
                                                             capsys) -> None:
    from distill.devtools.tiny import CHAT_TEMPLATE

    cfg_path = tmp_path / "p.yaml"
    train = {"student": str(student), "dataset": str(dataset_dir), "check_examples": 20}
    cfg_path.write_text(yaml.safe_dump({"name": "chk", "run_dir": str(tmp_path / "run"), "train": train}))
    capsys.readouterr()
    assert cli_main(["train", "-c", str(cfg_path), "--check"]) == 0
    out = capsys.readouterr()
    assert "20 examples rendered, no template problems" in out.out and "end-of-turn token in loss" in out.err
    no_gen = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    cfg_path.write_text(yaml.safe_dump({"name": "chk", "run_dir": str(tmp_path / "run"),
                                        "train": train | {"chat_template": no_gen}}))
    assert cli_main(["train", "-c", str(cfg_path), "--check"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "20/20 examples have an empty assistant mask" in err[0]
    assert not (tmp_path / "run" / "train").exists(), "--check trains nothing"


def test_warmup_is_explicit_steps_and_matches_the_trainers_step_count(student: Path, dataset_dir: Path,
                                                                       tmp_path: Path) -> None:
    """An epoch-based run: our step count equals the Trainer's, and the LR ramps for ceil(ratio * steps) steps."""
    from datasets import load_from_disk

    from distill.train.template import load_tokenizer
    from distill.train.trainer import build_trainer, encode_split

    cfg = train_cfg(student, max_steps=None, epochs=2, batch_size=16, warmup_ratio=0.25, logging_steps=1,
                    eval_fraction=0.0, learning_rate=1e-3, lr_scheduler="linear")
    tok = load_tokenizer(cfg)
    enc, _ = encode_split(tok, load_from_disk(str(dataset_dir))["train"].select(range(64)), cfg, "train")
    trainer = build_trainer(cfg, enc, None, tok, tmp_path / "ckpt", "fp32")
    assert trainer.args.warmup_steps == 2 and isinstance(trainer.args.warmup_steps, int)  # 8 steps * 0.25
    assert trainer.args.ddp_find_unused_parameters is False, "LoRA: no unused-parameter search under DDP"
    trainer.train()
    assert trainer.state.max_steps == 8, "the Trainer counts the same 2 epochs x 4 batches"
    lrs = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    # the LR each step used: 0, 1/2, then the peak after the 2 warmup steps, then the linear decay
    assert lrs[:3] == pytest.approx([0.0, 5e-4, 1e-3]) and lrs[3:] == sorted(lrs[3:], reverse=True), lrs


def test_merge_in_a_fresh_process_adds_the_templates_end_token_to_eos(student: Path, tmp_path: Path) -> None:
    """A base whose generation_config stops on another token (Qwen2.5 base: <|endoftext|>, template: <|im_end|>)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.train.merge import merge_in_fresh_process

    tok = AutoTokenizer.from_pretrained(str(student))
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    model = AutoModelForCausalLM.from_pretrained(str(student))
    model.generation_config.eos_token_id = tok.pad_token_id
    model.save_pretrained(str(base_dir))
    tok.save_pretrained(str(base_dir))
    get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")).save_pretrained(
        str(adapter_dir))
    tok.save_pretrained(str(adapter_dir))
    env_before = dict(os.environ)
    os.environ.update(ACCELERATE_USE_DEEPSPEED="true", LOCAL_RANK="0", RANK="0", WORLD_SIZE="2")  # a launcher's env
    try:
        out = merge_in_fresh_process(str(base_dir), adapter_dir, tmp_path / "merged", "fp32")
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    eos = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert eos == [tok.pad_token_id, tok.convert_tokens_to_ids("<|im_end|>")], eos
    assert "{% generation %}" in AutoTokenizer.from_pretrained(str(out)).chat_template


def test_flash_attention_without_flash_attn_is_one_error_line(student: Path, dataset_dir: Path, tmp_path: Path,
                                                              capsys) -> None:
    pytest.importorskip("torch")
    if __import__("importlib").util.find_spec("flash_attn") is not None:
        pytest.skip("flash-attn is installed here")
    cfg_path = tmp_path / "p.yaml"
    cfg_path.write_text(yaml.safe_dump({"name": "fa", "run_dir": str(tmp_path / "run"), "train": {
        "student": str(student), "dataset": str(dataset_dir), "attn_implementation": "flash_attention_2"}}))
    capsys.readouterr()
    assert cli_main(["train", "-c", str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flash_attention_2 needs the flash-attn package" in err[0], err


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_stops_at_the_template_end_token_written_by_the_merge(student: Path, tmp_path: Path) -> None:
    """A base that stops on another token (tokenizer, config and generation_config all say <|bos|>, as a Qwen2.5 base
    says <|endoftext|>) whose greedy reply to the prompt is <|im_end|> at once: after the merge, vLLM stops there
    only because the merge wrote <|im_end|> into generation_config.json."""
    pytest.importorskip("vllm")
    import shutil
    import urllib.request

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.serve import VLLMServer
    from distill.train.merge import merge_in_fresh_process

    base, adapter = tmp_path / "base", tmp_path / "adapter"
    shutil.copytree(student, base)
    conf = json.loads((base / "tokenizer_config.json").read_text())
    (base / "tokenizer_config.json").write_text(json.dumps(conf | {"eos_token": "<|bos|>"}))
    tok = AutoTokenizer.from_pretrained(str(base))
    im_end, bos = tok.convert_tokens_to_ids("<|im_end|>"), tok.bos_token_id
    msgs = [{"role": "user", "content": "What is 123 + 456?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(str(base))
    with torch.no_grad():  # layers add nothing, so the last state is the norm of the last token's embedding ...
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.get_input_embeddings().weight
        x = emb[ids[0, -1]]
        model.model.norm.weight.copy_(emb[im_end] * x / x.pow(2).mean().sqrt() * 10)  # ... aligned with <|im_end|>
    model.config.eos_token_id = model.generation_config.eos_token_id = bos
    model.save_pretrained(str(base))
    assert model.generate(ids, max_new_tokens=1, do_sample=False)[0, -1].item() == im_end, "precondition"
    get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")).save_pretrained(
        str(adapter))
    tok.save_pretrained(str(adapter))
    merged = merge_in_fresh_process(str(base), adapter, tmp_path / "merged", "fp32")
    assert json.loads((merged / "generation_config.json").read_text())["eos_token_id"] == [bos, im_end]
    with VLLMServer(merged, served_name="student", max_model_len=256, log_path=tmp_path / "vllm.log",
                    extra_args=["--dtype", "float32", "--enforce-eager"]) as srv:
        req = urllib.request.Request(
            f"{srv.base_url}/chat/completions", headers={"Content-Type": "application/json"},
            data=json.dumps({"model": "student", "messages": msgs, "max_tokens": 16, "temperature": 0}).encode())
        with urllib.request.urlopen(req, timeout=120) as r:
            body = json.loads(r.read())
    assert body["choices"][0]["finish_reason"] == "stop" and body["usage"]["completion_tokens"] == 1, body
