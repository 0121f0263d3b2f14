"""`make gpu-check`: the GPU path end to end on a box with no internet, in minutes, as ONE JSON of figures.

1. build  a student from its config alone: the Qwen2-0.5B shape (hidden 896, 24 layers, 14 heads, 2 KV heads,
          MLP 4864, vocab 151,936, tied embeddings), random weights, with distill's own tiny tokenizer (a byte-level
          BPE trained here on the task's text: no hub access). The embedding rows the tokenizer never uses are zeroed,
          so greedy decoding can only pick tokens the tokenizer can decode (their logit is 0, below the maximum of
          the hundreds of random ones it knows);
2. data   a few thousand synthetic conversations from the demo task's generator (distill/demo/task.py);
3. train  LoRA SFT through the train stage itself (`run_train`: precision auto -> bf16 on Ampere+, packing);
          tokens/s is the stage's own (optimizer-step time only) and MFU = tokens/s x FLOPs/token / peak, where
          FLOPs/token = 6 N + 12 L d T (PaLM, appendix B): N the parameters that do a matmul per token (all but the
          input-embedding lookup; a tied embedding counts once, as the LM head), L layers, d hidden size, T the
          token-weighted mean example length (packed examples attend only within themselves). `mfu_lora_executed`
          uses 4 N + 6 N_lora + 12 L d T: the FLOPs LoRA actually runs (no weight gradients for the frozen base);
4. merge  the adapter in a fresh process (distill.train.merge);
5. eval   100 held-out items through the eval stage itself (`run_eval`: it serves the merged model with vLLM
          via distill.serve and queries it with the same ChatRunner client as every eval).

`--tiny` runs a CPU-sized shape end to end (what the test runs in CI). Time per phase is printed as it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # an offline check: nothing here may reach for the hub

QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rope_theta=1_000_000.0,
                 max_position_embeddings=4096)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,  # head_dim 32: vLLM-CPU
            intermediate_size=128, vocab_size=None, tie_word_embeddings=True, rope_theta=10_000.0,
            max_position_embeddings=1024)

# dense bf16 tensor-core peak (no sparsity), FLOP/s, from the vendors' datasheets; first substring match wins
PEAK_BF16 = [("B200", 2250e12), ("H200", 989e12), ("H100 NVL", 835e12), ("H100 PCIe", 756e12), ("H100", 989e12),
             ("A100", 312e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("A10", 125e12),
             ("RTX 4090", 165e12), ("RTX 6000 Ada", 364e12), ("A6000", 155e12)]


def peak_flops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16 if k.lower() in device_name.lower()), None)


def flops_per_token(n_matmul: int, n_lora: int, layers: int, hidden: int, attn_len: float) -> dict[str, float]:
    attn = 12 * layers * hidden * attn_len
    return {"convention_6n": 6 * n_matmul + attn, "lora_executed": 4 * n_matmul + 6 * n_lora + attn}


class Phases:
    """Wall time per phase, printed as each one ends (long work shows progress)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.t0 = time.monotonic()

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"gpu-check: {name} ...", flush=True)
        t = time.monotonic()
        out = fn()
        self.seconds[name] = round(time.monotonic() - t, 2)
        print(f"gpu-check: {name} done in {self.seconds[name]:.1f} s (total {time.monotonic() - self.t0:.0f} s)",
              flush=True)
        return out


def conversations(n: int, seed: int) -> list[dict[str, Any]]:
    from distill.demo.task import problems, solution

    return [{"messages": [{"role": "user", "content": p.question},
                          {"role": "assistant", "content": solution(p.a, p.b)}]} for p in problems("teacher", n, seed)]


def build_student(out: Path, shape: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    """A random student of the given shape + distill's tiny tokenizer, saved as a plain transformers dir."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from distill.devtools.tiny import build_tokenizer

    tok = build_tokenizer(texts, vocab_size=512)
    shape = dict(shape, vocab_size=shape["vocab_size"] or len(tok))
    cfg = Qwen2Config(**shape, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    on_gpu = torch.cuda.is_available()
    torch.manual_seed(0)
    with torch.device("cuda" if on_gpu else "cpu"):  # init on the GPU: seconds, not a minute
        model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        model.get_input_embeddings().weight[len(tok):] = 0  # tokens the tokenizer cannot decode: logit 0
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    model.to(torch.bfloat16 if on_gpu else torch.float32).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    emb = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    return {"config": {k: shape[k] for k in shape}, "params_total": total,
            "params_matmul": total if shape["tie_word_embeddings"] else total - emb, "tokenizer_vocab": len(tok)}


def write_data(root: Path, n_train: int, n_eval: int) -> tuple[Path, Path]:
    from datasets import Dataset, DatasetDict

    from distill.demo.task import problems, write_jsonl

    data = root / "dataset"
    DatasetDict(train=Dataset.from_list(conversations(n_train, seed=7))).save_to_disk(str(data))
    return data, write_jsonl(root / "eval.jsonl", problems("eval", n_eval, seed=2))


def attn_len(data: Path, student: Path) -> float:
    """Token-weighted mean example length: the T of the attention term (each token attends within its example)."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    from distill.train.template import encode

    tok = AutoTokenizer.from_pretrained(str(student))
    rows = load_from_disk(str(data))["train"].select(range(200))
    lens = [len(encode(tok, r["messages"], "assistant")[0]) for r in rows]
    return sum(x * x for x in lens) / sum(lens)


def train(args: argparse.Namespace, student: Path, data: Path, root: Path) -> dict[str, Any]:
    """LoRA SFT into root/train (the run layout's train dir)."""
    from distill.rundir import RunLayout
    from distill.train import TrainConfig, run_train
    from distill.train.choices import flash_attn_available

    attn = args.attn or ("flash_attention_2" if flash_attn_available() else "sdpa")
    cfg = TrainConfig(student=str(student), dataset=data, method="lora", max_steps=args.steps,
                      batch_size=args.batch_size, max_length=args.max_length, packing=True, learning_rate=1e-3,
                      warmup_ratio=0.03, eval_fraction=0.0, save_steps=args.steps + 1,
                      logging_steps=max(1, min(10, args.steps // 4)),
                      gradient_checkpointing=False, attn_implementation=attn, merge=False, progress=False,
                      lora={"r": 16, "alpha": 32, "dropout": 0.0})
    summary = run_train(cfg, RunLayout(root), force=True)
    _free_gpu_memory()
    return summary


def _free_gpu_memory() -> None:
    """Hand the trainer's cached GPU memory back, so the vLLM server started next finds it free."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def evaluate(root: Path, merged: Path, eval_file: Path, items: int, on_gpu: bool) -> dict[str, Any]:
    from distill.config import parse_config
    from distill.evaluate import run_eval

    serve: dict[str, Any] = {"model": str(merged), "dtype": "bfloat16" if on_gpu else "float32", "max_model_len": 512}
    if on_gpu:
        serve["gpu_memory_utilization"] = 0.5  # whatever this process still holds stays out of vLLM's way
    else:
        serve["extra_args"] = ["--enforce-eager"]
    cfg = parse_config({"name": "gpu-check", "run_dir": str(root), "eval": {
        "benchmarks": [{"name": "arith", "kind": "local", "source": str(eval_file), "max_tokens": 64,
                        "options": {"id_field": "id"}}],
        "models": [{"name": "student", "role": "student", "serve": serve}], "limit": items, "progress": False}},
        "gpu-check")
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, force=True)
    return json.loads((root / "eval" / "student" / "summary.json").read_text())


def checks(s: dict[str, Any], merged: Path, student: Path) -> dict[str, Any]:
    """The GPU-only decisions, checked where they happen: precision from compute capability, the template's end
    token among the merged model's EOS ids."""
    from transformers import AutoTokenizer

    from distill.train.choices import choose_precision, cuda_capability

    cap = cuda_capability()
    want = choose_precision("auto", cuda=cap is not None, capability=cap)
    eos = json.loads((merged / "generation_config.json").read_text()).get("eos_token_id")
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    im_end = AutoTokenizer.from_pretrained(str(student)).convert_tokens_to_ids("<|im_end|>")
    return {"precision_auto": {"capability": cap, "expected": want, "chosen": s["precision"],
                               "ok": want == s["precision"]},
            "end_of_turn_in_eos": {"eos_token_id": eos, "im_end": im_end, "ok": im_end in eos}}


def qlora_check(args: argparse.Namespace, student: Path, data: Path, root: Path) -> dict[str, Any]:
    """QLoRA on the local rank's GPU, then the merge: on the dequantized NF4 base the merged model reproduces the
    4-bit model + adapter the adapter was trained with; merged onto the original base it would not."""
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "needs a CUDA GPU and bitsandbytes (pip install -e '.[qlora]')"}
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from distill.train import TrainConfig, run_train
    from distill.train.merge import qlora_quant_config

    from distill.rundir import RunLayout

    layout = RunLayout(root / "qlora")
    out = layout.train
    cfg = TrainConfig(student=str(student), dataset=data, method="qlora", max_steps=20, batch_size=2,
                      max_length=args.max_length, packing=True, learning_rate=1e-3, eval_fraction=0.0,
                      save_steps=1000, logging_steps=5, gradient_checkpointing=False, progress=False)
    s = run_train(cfg, layout, force=True)
    ids = torch.tensor([[5, 17, 33, 60, 91, 120, 7, 44]], device="cuda")

    def logits(model: Any) -> Any:
        with torch.no_grad():
            return model.eval()(ids).logits.float()

    q = AutoModelForCausalLM.from_pretrained(str(student), quantization_config=qlora_quant_config(s["precision"]),
                                             device_map={"": 0}, dtype=torch.bfloat16)
    trained = logits(PeftModel.from_pretrained(q, str(out / "adapter")))
    merged = logits(AutoModelForCausalLM.from_pretrained(str(out / "merged"), dtype=torch.bfloat16).cuda())
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(student), dtype=torch.bfloat16).cuda(),
                                      str(out / "adapter")).merge_and_unload()
    naive = logits(plain)
    d_merged, d_naive = (trained - merged).abs().max().item(), (trained - naive).abs().max().item()
    _free_gpu_memory()
    return {"steps": s["global_step"], "max_logit_diff_dequantized_merge": d_merged,
            "max_logit_diff_bf16_base_merge": d_naive, "ok": d_merged < d_naive}


def device_info() -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 1024**3, 1), capability=f"{p.major}.{p.minor}",
                    gpus=torch.cuda.device_count())
    return info


def _guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """An optional check's failure goes into the JSON (with the figures already measured), not a lost run."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - reported, not hidden
        return {"error": f"{type(err).__name__}: {err}"[:500], "ok": False}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a CPU-sized shape (CI); default: the Qwen2-0.5B shape")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "gpu-check")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default 300; tiny 8)")
    ap.add_argument("--conversations", type=int, default=None, help="synthetic conversations (default 4000; tiny 200)")
    ap.add_argument("--batch-size", type=int, default=None, help="packed rows per step (default 8; tiny 2)")
    ap.add_argument("--max-length", type=int, default=None, help="tokens per packed row (default 2048; tiny 256)")
    ap.add_argument("--items", type=int, default=100, help="eval items")
    ap.add_argument("--attn", default=None, help="attention implementation (default: flash_attention_2 if "
                    "importable, else sdpa)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not in the table")
    args = ap.parse_args(argv)
    import torch

    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.tiny:
        print("gpu-check: no CUDA GPU here; run with --tiny for the CPU-sized check", file=sys.stderr)
        return 2
    t = dict(steps=8, conversations=200, batch_size=2, max_length=256) if args.tiny else \
        dict(steps=300, conversations=4000, batch_size=8, max_length=2048)
    for k, v in t.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    root = args.out.resolve()
    root.mkdir(parents=True, exist_ok=True)
    phases = Phases()
    student = root / "student"
    texts = [m["content"] for c in conversations(300, seed=1) for m in c["messages"]]
    built = phases.run("build", lambda: build_student(student, TINY if args.tiny else QWEN2_05B, texts))
    data, eval_file = phases.run("data", lambda: write_data(root, args.conversations, args.items))
    s = phases.run("train", lambda: train(args, student, data, root))
    from distill.train.merge import merge_in_fresh_process

    merged = phases.run("merge", lambda: merge_in_fresh_process(str(student), root / "train" / "adapter",
                                                                root / "merged", s["precision"]))
    ev = phases.run("serve+eval", lambda: evaluate(root, merged, eval_file, args.items, on_gpu))
    report = figures(args, built, s, ev, attn_len(data, student))
    report["checks"] = checks(s, merged, student)
    report["checks"]["qlora"] = phases.run("qlora", lambda: _guarded(lambda: qlora_check(args, student, data, root)))
    report["phases_s"], report["total_s"] = phases.seconds, round(time.monotonic() - phases.t0, 1)
    report["under_8_min"] = report["total_s"] < 480
    (root / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("tokens_per_s", "mfu", "eval_score", "total_s")}))
    print(f"gpu-check: {root / 'gpu_check.json'}")
    failed = [k for k, v in report["checks"].items() if v.get("ok") is False]
    if failed:
        print(f"gpu-check: FAILED checks: {', '.join(failed)}", file=sys.stderr)
    return 0 if ev.get("complete") and not failed else 1


def figures(args: argparse.Namespace, built: dict[str, Any], s: dict[str, Any], ev: dict[str, Any],
            t_attn: float) -> dict[str, Any]:
    info = device_info()
    cfg = built["config"]
    n_lora = s["trainable_params"]
    fpt = flops_per_token(built["params_matmul"], n_lora, cfg["num_hidden_layers"], cfg["hidden_size"], t_attn)
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(info.get("gpu", ""))
    tps = s["tokens_per_s"] or 0.0
    mfu = {k: (round(tps * v / peak, 4) if peak else None) for k, v in fpt.items()}
    bench = ev["benchmarks"]["arith"]
    served = ev.get("served") or {}
    return {
        "shape": "tiny" if args.tiny else "qwen2-0.5b", "device": info, "model": built,
        "tokenizer": "distill.devtools.tiny.build_tokenizer: byte-level BPE (512) trained offline on the task's text",
        "train": {"method": "lora", "precision": s["precision"], "attn_implementation": s["config"].get(
            "attn_implementation"), "steps": s["global_step"], "batch_rows": args.batch_size,
            "max_length": args.max_length, "conversations": args.conversations, "packing_fill": s["packing"]["fill"],
            "tokens": s["tokens_seen"], "train_loss_first": s["train_loss_first"],
            "train_loss_final": s["train_loss_final"], "trainable_params": n_lora, "warmup_steps": s["warmup_steps"]},
        "tokens_per_s": tps,
        "flops_per_token": {k: round(v) for k, v in fpt.items()},
        "flops_formula": {"convention_6n": "6*N + 12*L*d*T", "lora_executed": "4*N + 6*N_lora + 12*L*d*T",
                          "N": built["params_matmul"], "L": cfg["num_hidden_layers"], "d": cfg["hidden_size"],
                          "T": round(t_attn, 1)},
        "peak_bf16_flops": peak,
        "mfu": mfu["convention_6n"], "mfu_lora_executed": mfu["lora_executed"],
        "mfu_note": None if peak else "no peak FLOP/s known for this device (CPU or not in the table): pass "
                                      "--peak-tflops",
        "serve": {"startup_s": served.get("startup_s"), "model": served.get("model")},
        "eval_items": bench["items"], "eval_score": bench["score"],
        "eval": {k: bench.get(k) for k in ("score", "stderr", "items", "failed", "completion_tokens",
                                           "latency_mean_s", "latency_p50_s")},
        "eval_output_tokens_per_s": round(tph / 3600, 1) if (tph := (ev.get("cost") or {}).get(
            "output_tokens_per_hour")) else None,
        "eval_wall_s": ev.get("wall_time_s"),
    }


if __name__ == "__main__":
    sys.exit(main())
