"""SFT of the student on the teacher's text (sequence-level distillation) with TRL `SFTTrainer` + PEFT.

The same code runs in one CPU process and under `accelerate launch` on N GPUs / nodes (DDP, FSDP, ZeRO-3): every
rank trains, rank 0 alone writes the stage dir. Checkpoints live in `<run>/train-work/checkpoints` (outside the
atomically-renamed stage dir) so a killed run resumes with `--resume`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, InputError
from distill.hub import resolve_model
from distill.rundir import (ADAPTER, MERGED, RunLayout, Stage, base_summary, file_fingerprint, fingerprint,
                            require_stage, work_dir, write_json)
from distill.train.choices import (batches_per_epoch, check_attn_implementation, count_params, ddp_find_unused,
                                   model_dtype_name, pick_precision, qlora_device_map, total_steps, warmup_steps)
from distill.train.config import TrainConfig
from distill.train.data import load_splits, validate_messages
from distill.train.template import IGNORE, TemplateCheck, check_template, encode, load_tokenizer, print_check, raise_on_problems


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest COMPLETE checkpoint: trainer_state.json is written last, so a kill mid-save is skipped."""
    done = [p for p in Path(ckpt_dir).glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _source_fp(path: str | Path) -> str:
    p = Path(path)
    return file_fingerprint(p) if p.exists() else str(path)


def encode_split(tokenizer: Any, ds: Any, cfg: TrainConfig, name: str) -> tuple[Any, dict[str, int]]:
    """Pre-tokenize a split with the one `encode` path, truncate, and drop (and count) rows left with no loss."""

    def fn(row: dict[str, Any], idx: int) -> dict[str, Any]:
        ids, labels = encode(tokenizer, validate_messages(row["messages"], f"{name} row {idx}"), cfg.loss_on)
        empty = all(lab == IGNORE for lab in labels)
        truncated = len(ids) > cfg.max_length
        ids, labels = ids[: cfg.max_length], labels[: cfg.max_length]
        return {"input_ids": ids, "labels": labels, "_empty": empty, "_truncated": truncated,
                "_masked": all(lab == IGNORE for lab in labels)}

    enc = ds.map(fn, with_indices=True, remove_columns=ds.column_names, keep_in_memory=True,
                 desc=f"tokenizing {name}")
    stats = {
        "examples": len(enc),
        "truncated": int(sum(enc["_truncated"])),
        "dropped_empty_mask": int(sum(enc["_empty"])),
        "dropped_truncated_to_no_loss": int(sum(m and not e for m, e in zip(enc["_masked"], enc["_empty"], strict=True))),
    }
    enc = enc.filter(lambda m: not m, input_columns="_masked", keep_in_memory=True)
    enc = enc.remove_columns(["_empty", "_truncated", "_masked"])
    stats["kept"] = len(enc)
    stats["loss_tokens"] = int(sum(sum(1 for t in lab if t != IGNORE) for lab in enc["labels"]))
    stats["tokens"] = int(sum(len(x) for x in enc["input_ids"]))
    return enc, stats


def _load_model(cfg: TrainConfig, precision: str) -> Any:
    """The student, loaded AFTER the training arguments exist: with them transformers' DeepSpeed link is set, so
    ZeRO-3 (`zero3_init_flag`) loads every weight straight into its shard instead of a whole copy per rank."""
    import torch
    from transformers import AutoModelForCausalLM

    check_attn_implementation(cfg.attn_implementation)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, model_dtype_name(cfg.method, precision))}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    if cfg.method == "qlora":
        if not torch.cuda.is_available():
            raise ConfigError("train.method: qlora needs a CUDA GPU (bitsandbytes 4-bit); on CPU use method: lora")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("train.method: qlora needs bitsandbytes: pip install -e '.[qlora]'") from None
        from distill.train.merge import qlora_quant_config

        kwargs["quantization_config"] = qlora_quant_config(precision)
        kwargs["device_map"] = qlora_device_map()
    try:
        return AutoModelForCausalLM.from_pretrained(cfg.student, **kwargs)
    except (OSError, ValueError) as err:
        raise ConfigError(f"train.student: cannot load a causal LM from {cfg.student!r} ({err})") from None


def _peft_config(cfg: TrainConfig) -> Any:
    if cfg.method == "full":
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")


def sft_args(cfg: TrainConfig, output_dir: Path, precision: str, *, has_eval: bool, **overrides: Any) -> Any:
    """The SFTConfig: precision set explicitly (TRL's default bf16=True would crawl on CPU)."""
    import torch
    from trl import SFTConfig

    gc = cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else torch.cuda.is_available()
    report = [r for r in cfg.report_to if r != "none"] or "none"
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=0,  # set from the run's step count in build_trainer (see set_warmup)
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",
        gradient_checkpointing=gc,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval and cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps,
        eval_on_start=has_eval,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=report,
        disable_tqdm=not cfg.progress,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        assistant_only_loss=False,  # labels come pre-masked from `encode`
        completion_only_loss=False,
        shuffle_dataset=True,
        ddp_find_unused_parameters=ddp_find_unused(cfg.method),
    )
    kw.update(overrides)
    return SFTConfig(**kw)


def _clock() -> Any:
    """A trainer callback timing optimizer steps (tokens/s excludes eval and checkpoint writes).

    Built in a function so importing this module stays free of transformers (the config imports it).
    """
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.step_s = 0.0
            self._t = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._t = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.step_s += time.perf_counter() - self._t

    return Clock()


def build_trainer(cfg: TrainConfig, train_ds: Any, eval_ds: Any, tokenizer: Any, output_dir: Path,
                  precision: str, **arg_overrides: Any) -> Any:
    """An `SFTTrainer` over pre-tokenized splits (used by `run_train` and bench/bench_train.py)."""
    from trl import SFTTrainer

    args = sft_args(cfg, output_dir, precision, has_eval=eval_ds is not None, **arg_overrides)  # before the model
    model = _load_model(cfg, precision)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=_peft_config(cfg))
    if "warmup_steps" not in arg_overrides:
        set_warmup(trainer, cfg)
    return trainer


def set_warmup(trainer: Any, cfg: TrainConfig) -> int:
    """`warmup_ratio` of the run's optimizer steps as an integer `warmup_steps` (read when train() builds the
    scheduler). Counted from the trainer's dataset (packed rows when packing) and its number of ranks."""
    batches = batches_per_epoch(len(trainer.train_dataset), cfg.batch_size, trainer.args.world_size)
    steps = total_steps(max_steps=cfg.max_steps, epochs=cfg.epochs, batches_per_epoch=batches,
                        grad_accum=cfg.grad_accum)
    trainer.args.warmup_steps = warmup_steps(steps, cfg.warmup_ratio)
    return trainer.args.warmup_steps


def save_final(trainer: Any, final_dir: Path) -> None:
    """The final weights as one full state dict. Under FSDP the checkpoints during training are sharded (each rank
    writes its own shard: fsdp.yaml's SHARDED_STATE_DICT); only this last save gathers the whole model."""
    if getattr(trainer, "is_fsdp_enabled", False):
        full_state_dict(trainer.accelerator.state.fsdp_plugin)
    trainer.save_model(str(final_dir))


def full_state_dict(plugin: Any) -> None:
    """Switch accelerate's FSDP plugin to one gathered state dict (Trainer.save_model reads `state_dict_type`);
    the sharded configs are dropped so the plugin sets full ones (rank 0 only, offloaded to CPU)."""
    plugin.state_dict_config = plugin.optim_state_dict_config = None
    plugin.set_state_dict_type("FULL_STATE_DICT")


def _losses(history: list[dict[str, Any]]) -> dict[str, Any]:
    train = [h["loss"] for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    return {
        "train_loss_first": train[0] if train else None,
        "train_loss_final": train[-1] if train else None,
        "eval_loss_initial": evals[0][1] if evals else None,
        "eval_loss_final": evals[-1][1] if evals else None,
        "eval_curve": evals,
    }


def _generation_eos(model_dir: Path) -> list[int]:
    eos = json.loads((model_dir / "generation_config.json").read_text()).get("eos_token_id")
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def dataset_path(cfg: TrainConfig, layout: RunLayout) -> Path:
    """`train.dataset` when set, else the finished curate stage's dataset (a clear error if curate has not run)."""
    if cfg.dataset is not None:
        return cfg.dataset
    require_stage(layout.curate, "curate")
    return layout.dataset


def run_check(cfg: TrainConfig, dataset_dir: str | Path, *, show: bool = True) -> TemplateCheck:
    """`distill train --check`: render the first N examples as training will; raise if a trap is found."""
    tok = load_tokenizer(cfg)
    train, _ = load_splits(Path(dataset_dir), eval_fraction=0.0, seed=cfg.seed, max_eval=None)
    chk = check_template(tok, train, cfg, str(dataset_dir))
    if show:
        print_check(chk)
    raise_on_problems(chk, cfg.student)
    return chk


def run_train(cfg: TrainConfig, layout: RunLayout, *, force: bool = False, resume: bool = False) -> dict[str, Any]:
    """Train the student on `dataset_path(cfg, layout)` into `layout.train`; returns the summary (also written to
    `layout.train/summary.json` by rank 0). A second student of one run (the demo's answer-only one) gets its own
    layout under the run dir and names its data in `cfg.dataset`."""
    import torch
    from accelerate import PartialState

    dataset_dir, out_dir = dataset_path(cfg, layout), layout.train
    # init the process group first (MULTI_CPU under torchrun on a CPU box), so `main` is right from the start
    state = PartialState(cpu=not torch.cuda.is_available())
    config_json = cfg.model_dump(mode="json")
    with state.main_process_first():  # rank 0 fetches a hub model once; the other ranks then find it cached
        student = resolve_model(cfg.student, field="train.student")
    cfg = cfg.model_copy(update={"student": student.ref})  # every load below reads that one commit / dir
    cosmetic = ("progress", "keep_checkpoints", "cpu_threads")
    fp = fingerprint("train", {k: v for k, v in config_json.items() if k not in cosmetic},
                     _source_fp(dataset_dir), student.identity)
    stage = Stage("train", out_dir, fp, config_json)
    if not resume and (done := stage.fresh(force, say=False)) is not None:
        return done | {"skipped": True}

    t0 = time.monotonic()
    precision = _prepare_device(cfg)
    work = work_dir(out_dir)
    resume_from = _resume_point(work, fp) if resume else None
    tok, chk, (train_ds, train_stats), (eval_ds, eval_stats) = _prepare_data(cfg, dataset_dir, state)
    _reset_work(work, fp, resume=resume, main=state.is_main_process)
    state.wait_for_everyone()
    run = _fit(cfg, tok, train_ds, eval_ds, work, precision, resume_from, state.is_main_process)
    state.wait_for_everyone()
    fields = {
        "student": student.name,
        "student_resolved": student.to_summary(),
        "dataset": str(dataset_dir),
        "method": cfg.method,
        "precision": precision,
        "weights_dtype": model_dtype_name(cfg.method, precision),
        "warmup_steps": run.trainer.args.warmup_steps,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "world_size": state.num_processes,
        **_run_fields(cfg, run, resume_from, t0, train_stats),
        "train_examples": train_stats,
        "eval_examples": eval_stats,
        "dropped_examples": {
            "empty_mask": train_stats["dropped_empty_mask"] + (eval_stats or {}).get("dropped_empty_mask", 0),
            "truncated_to_no_loss": train_stats["dropped_truncated_to_no_loss"]
            + (eval_stats or {}).get("dropped_truncated_to_no_loss", 0),
        },
        "packing": run.packing(cfg, train_stats),
        "template_check": chk.to_dict(),
        "chat_template": tok.chat_template,
        "log_history": run.history,
        "complete": True,
    }
    if not state.is_main_process:
        return base_summary("train", fp, config_json) | fields | {"not_main_process": True}
    return write_outputs(cfg, tok, precision, work, stage, fields, t0)


def _prepare_device(cfg: TrainConfig) -> str:
    """Threads, precision, and the checks that must fail before tokenizing, not after; returns the precision."""
    import torch

    if cfg.cpu_threads and not torch.cuda.is_available():
        torch.set_num_threads(cfg.cpu_threads)
    precision = pick_precision(cfg.precision)
    check_attn_implementation(cfg.attn_implementation)
    if cfg.method == "qlora" and not torch.cuda.is_available():
        raise ConfigError("train.method: qlora needs a CUDA GPU (bitsandbytes 4-bit); on CPU use method: lora")
    return precision


def _resume_point(work: Path, fp: str) -> Path:
    """The checkpoint `--resume` continues from, refused when the run it belongs to had another fingerprint."""
    ckpt_dir = work / "checkpoints"
    resume_from = last_checkpoint(ckpt_dir)
    if resume_from is None:
        raise InputError(f"--resume: no checkpoint in {ckpt_dir}; run without --resume to start from scratch")
    fp_file = work / "fingerprint.json"
    if not fp_file.is_file() or json.loads(fp_file.read_text()).get("fingerprint") != fp:
        raise ConfigError(f"--resume: the train config, dataset or student changed since {resume_from} was saved; "
                          "run without --resume to start from scratch")
    return resume_from


def _prepare_data(cfg: TrainConfig, dataset_dir: Path, state: Any) -> tuple[Any, TemplateCheck, Any, Any]:
    """Tokenizer, the template check (raised on a trap), and both splits encoded (rank 0 first, then cached)."""
    from distill.progress import console

    tok = load_tokenizer(cfg)
    train_raw, eval_raw = load_splits(dataset_dir, eval_fraction=cfg.eval_fraction, seed=cfg.seed,
                                      max_eval=cfg.max_eval_examples)
    chk = check_template(tok, train_raw, cfg, str(dataset_dir))
    if state.is_main_process:
        print_check(chk)
    raise_on_problems(chk, cfg.student)

    with state.main_process_first():
        train_enc = encode_split(tok, train_raw, cfg, "train")
        eval_enc = encode_split(tok, eval_raw, cfg, "validation") if eval_raw is not None else (None, None)
    train_stats = train_enc[1]
    if train_stats["kept"] == 0:
        raise InputError(f"{dataset_dir}: every training example was dropped (no loss tokens); see the template check")
    if train_stats["dropped_empty_mask"] or train_stats["dropped_truncated_to_no_loss"]:
        console.print(f"[yellow]train: dropped {train_stats['dropped_empty_mask']} examples with an empty assistant "
                      f"mask and {train_stats['dropped_truncated_to_no_loss']} with no loss tokens left after "
                      f"truncation at max_length={cfg.max_length}")
    return tok, chk, train_enc, eval_enc


def _reset_work(work: Path, fp: str, *, resume: bool, main: bool) -> None:
    """Rank 0: a fresh run drops old checkpoints; the work dir records which run its checkpoints belong to."""
    ckpt_dir = work / "checkpoints"
    if not resume and main and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    if main:
        work.mkdir(parents=True, exist_ok=True)
        write_json(work / "fingerprint.json", {"fingerprint": fp})


class _Fit:
    """What one `trainer.train()` leaves behind for the summary."""

    def __init__(self, trainer: Any, result: Any, final_eval: dict[str, Any], clock: Any, start_step: int,
                 tokens_before: int, params: tuple[int, int]):
        self.trainer, self.result, self.final_eval, self.clock = trainer, result, final_eval, clock
        self.start_step, self.tokens_before, self.params = start_step, tokens_before, params
        self.history = list(trainer.state.log_history)

    def packing(self, cfg: TrainConfig, train_stats: dict[str, int]) -> dict[str, Any]:
        rows = len(self.trainer.train_dataset) if cfg.packing else None
        return {"enabled": cfg.packing, "rows": rows,
                "fill": round(train_stats["tokens"] / (rows * cfg.max_length), 4) if rows else None}


def _fit(cfg: TrainConfig, tok: Any, train_ds: Any, eval_ds: Any, work: Path, precision: str,
         resume_from: Path | None, main: bool) -> _Fit:
    """Build the trainer, train (from a checkpoint on resume), evaluate, save the final weights to work/final."""
    from distill.progress import console

    if "tensorboard" in cfg.report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(work / "tensorboard")
    # on resume the restored log history already holds the first eval: no second one at the start
    trainer = build_trainer(cfg, train_ds, eval_ds, tok, work / "checkpoints", precision,
                            eval_on_start=eval_ds is not None and resume_from is None)
    clock = _clock()
    trainer.add_callback(clock)
    start_step = tokens_before = 0
    if resume_from is not None:
        saved_state = json.loads((resume_from / "trainer_state.json").read_text())
        start_step, tokens_before = int(saved_state["global_step"]), int(saved_state.get("num_input_tokens_seen", 0))
        if main:
            console.print(f"train: resuming from {resume_from} (step {start_step})")
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final_eval = trainer.evaluate() if eval_ds is not None else {}
    params = count_params(trainer.model.parameters())
    save_final(trainer, work / "final")
    return _Fit(trainer, result, final_eval, clock, start_step, tokens_before, params)


def _run_fields(cfg: TrainConfig, run: _Fit, resume_from: Path | None, t0: float,
                train_stats: dict[str, int]) -> dict[str, Any]:
    """The summary's counts of this run: params, steps, tokens, throughput, losses."""
    st = run.trainer.state
    losses = _losses(run.history)
    if run.final_eval.get("eval_loss") is not None:
        losses["eval_loss_final"] = run.final_eval["eval_loss"]
    tokens_run = int(st.num_input_tokens_seen) - run.tokens_before
    return {
        "trainable_params": run.params[0],
        "total_params": run.params[1],
        "global_step": st.global_step,
        "resumed_from_step": run.start_step if resume_from is not None else None,
        "steps_this_run": st.global_step - run.start_step,
        "epochs": st.epoch,
        "tokens_seen": int(st.num_input_tokens_seen),
        "tokens_seen_this_run": tokens_run,
        "tokens_per_s": round(tokens_run / run.clock.step_s, 1) if run.clock.step_s else None,
        "train_runtime_s": round(run.result.metrics.get("train_runtime", 0.0), 2),
        "wall_s": round(time.monotonic() - t0, 2),
        **losses,
    }


def write_outputs(cfg: TrainConfig, tok: Any, precision: str, work: Path, stage: Stage, fields: dict[str, Any],
                  t0: float) -> dict[str, Any]:
    """Rank 0: the stage dir (adapter and/or merged model, tensorboard, summary.json), then the work dir cleanup."""
    from distill.train.merge import finish_merged, merge_in_fresh_process

    final_dir = work / "final"
    with stage.build() as b:
        tmp, summary = b.out, b.summary
        summary.update(fields)
        if cfg.method == "full":
            shutil.copytree(final_dir, tmp / MERGED)
            summary["eos_token_ids"] = finish_merged(tmp / MERGED, tok)
        else:
            shutil.copytree(final_dir, tmp / ADAPTER)
            tok.save_pretrained(str(tmp / ADAPTER))
            if cfg.merge:
                merge_in_fresh_process(cfg.student, tmp / ADAPTER, tmp / MERGED, precision,
                                       qlora=cfg.method == "qlora")
                summary["eos_token_ids"] = _generation_eos(tmp / MERGED)
        if (work / "tensorboard").is_dir():
            shutil.copytree(work / "tensorboard", tmp / "tensorboard")
        summary["wall_s"] = round(time.monotonic() - t0, 2)
    shutil.rmtree(final_dir, ignore_errors=True)
    if not cfg.keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    return b.summary
