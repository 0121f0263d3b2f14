"""Training-stack speed, measured in one run, printed as ratios (targets from issue "make train-student").

1. tokens/s of our stack (distill.train.build_trainer: TRL SFTTrainer + PEFT LoRA over pre-tokenized data, data
   loader, collator, logging) vs a bare PyTorch loop (same PEFT model, same batches, AdamW, forward/backward/step,
   nothing else). Steady state: the first steps are warm-up and not timed. Target >= 0.8.
2. packing efficiency: real tokens / tokens computed (input_ids.numel() of every batch the trainer's data loader
   yields) on a realistic length mix (log-normal, median ~300 tokens, max_length 2048), packing on (BFD,
   padding-free) vs off (padded batches). Target >= 0.95 with packing. Also checks that a packed batch gives the
   same loss as the same examples run one by one (no attention across example boundaries).

Usage: python bench/bench_train.py [--steps 40] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def fixed_rows(n: int, prompt_len: int, answer_len: int, seed: int) -> list[dict]:
    """Equal-length conversations (one token per digit), so neither side pays for padding."""
    rng = random.Random(seed)
    return [{"messages": [{"role": "user", "content": digits(rng, prompt_len)},
                          {"role": "assistant", "content": digits(rng, answer_len)}]} for _ in range(n)]


def mixed_rows(n: int, seed: int, max_tokens: int) -> list[dict]:
    """A chat-SFT-like length mix: log-normal answer lengths (median ~300 tokens), short prompts."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        total = int(min(max(rng.lognormvariate(5.7, 0.8), 24), max_tokens - 16))
        p = max(8, int(total * rng.uniform(0.1, 0.4)))
        rows.append({"messages": [{"role": "user", "content": digits(rng, p)},
                                  {"role": "assistant", "content": digits(rng, max(total - p, 4))}]})
    return rows


def build_student(root: Path, hidden: int, layers: int) -> Path:
    from distill.devtools.tiny import build_model, build_tokenizer

    d = root / "student"
    tok = build_tokenizer([digits(random.Random(i), 64) for i in range(200)], vocab_size=300)
    build_model(tok, hidden=hidden, layers=layers, heads=hidden // 64, max_positions=4096, out_dir=d)
    return d


def bench_throughput(student: Path, root: Path, steps: int, batch: int, length: int, rounds: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, TrainerCallback

    from distill.train import TrainConfig
    from distill.train.template import load_tokenizer
    from distill.train.trainer import _peft_config, build_trainer, encode_split

    cfg = TrainConfig(student=str(student), max_steps=steps, batch_size=batch, max_length=length + 16,
                      learning_rate=1e-4, logging_steps=10_000, save_steps=10_000, progress=False, warmup_ratio=0.0)
    tok = load_tokenizer(cfg)
    rows = fixed_rows(batch * steps, length // 4, length - length // 4 - 8, 0)
    train, stats = encode_split(tok, Dataset.from_list(rows), cfg, "bench")
    seq = len(train[0]["input_ids"])
    assert all(len(x) == seq for x in train["input_ids"]), "rows must be equal length"
    warm = 5

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.t: list[float] = []

        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step == warm:
                self.t.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            if state.global_step == steps:
                self.t.append(time.perf_counter())

    def ours() -> float:
        with tempfile.TemporaryDirectory() as d:
            trainer = build_trainer(cfg, train, None, tok, Path(d), "fp32", shuffle_dataset=False)
            clock = Clock()
            trainer.add_callback(clock)
            trainer.train()
        return batch * seq * (steps - warm) / (clock.t[1] - clock.t[0])

    ids = torch.tensor(train["input_ids"])
    labels = torch.tensor(train["labels"])

    def bare() -> float:
        torch.manual_seed(0)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(student), dtype=torch.float32),
                               _peft_config(cfg))
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
        for i in range(steps):
            if i == warm:
                t0 = time.perf_counter()
            sl = slice(i * batch, (i + 1) * batch)
            loss = model(input_ids=ids[sl], labels=labels[sl]).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return batch * seq * (steps - warm) / (time.perf_counter() - t0)

    ours_s, bare_s = [], []
    for _ in range(rounds):  # interleaved, so a noisy neighbour hits both sides alike
        bare_s.append(bare())
        ours_s.append(ours())
    return {"seq": seq, "ours": statistics.median(ours_s), "bare": statistics.median(bare_s),
            "ours_all": ours_s, "bare_all": bare_s}


def bench_packing(student: Path, n: int, max_length: int, batch: int) -> dict:
    from datasets import Dataset

    from distill.train import TrainConfig
    from distill.train.template import load_tokenizer
    from distill.train.trainer import build_trainer, encode_split

    out = {}
    rows = Dataset.from_list(mixed_rows(n, 1, max_length))
    for packing in (True, False):
        cfg = TrainConfig(student=str(student), max_steps=1, batch_size=batch, max_length=max_length,
                          packing=packing, progress=False)
        tok = load_tokenizer(cfg)
        train, stats = encode_split(tok, rows, cfg, "mix")
        with tempfile.TemporaryDirectory() as d:
            trainer = build_trainer(cfg, train, None, tok, Path(d), "fp32")
            computed = real = batches = 0
            for b in trainer.get_train_dataloader():
                computed += b["input_ids"].numel()
                batches += 1
            real = stats["tokens"]
            out[packing] = {"real": real, "computed": computed, "batches": batches,
                            "rows": len(trainer.train_dataset), "loss_tokens": stats["loss_tokens"]}
    return out


def packed_equals_unpacked(student: Path) -> float:
    """Max |loss difference| between a padding-free packed batch and the same examples one at a time."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from distill.train import TrainConfig
    from distill.train.template import load_tokenizer
    from distill.train.trainer import build_trainer, encode_split

    cfg = TrainConfig(student=str(student), max_steps=1, batch_size=4, max_length=256, packing=True, progress=False)
    tok = load_tokenizer(cfg)
    train, _ = encode_split(tok, Dataset.from_list(mixed_rows(8, 3, 256)), cfg, "eq")
    model = AutoModelForCausalLM.from_pretrained(str(student), dtype=torch.float32).eval()
    with tempfile.TemporaryDirectory() as d:
        trainer = build_trainer(cfg, train, None, tok, Path(d), "fp32", shuffle_dataset=False)
        batch = next(iter(trainer.get_train_dataloader()))
    pos = batch["position_ids"][0]
    starts = (pos == 0).nonzero().flatten().tolist() + [len(pos)]
    with torch.no_grad():
        # use_cache=False as in training (TRL sets it): a KV cache turns off packed-sequence masking
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        diff = 0.0
        for s, e in zip(starts[:-1], starts[1:], strict=True):
            alone = model(input_ids=batch["input_ids"][:, s:e], use_cache=False).logits[0]
            diff = max(diff, (packed[s:e] - alone).abs().max().item())
    return diff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--pack-examples", type=int, default=2000)
    args = ap.parse_args()

    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        student = build_student(Path(d), args.hidden, args.layers)
        nparams = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(str(student)).parameters())
        tp = bench_throughput(student, Path(d), args.steps, args.batch, args.length, args.rounds)
        pk = bench_packing(student, args.pack_examples, 2048, 8)
        eq = packed_equals_unpacked(student)

    print(f"\n== train throughput: {nparams / 1e6:.2f}M-param Llama, LoRA r=16 all-linear, fp32 on "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'} ({torch.get_num_threads()} threads), batch {args.batch} "
          f"x {tp['seq']} tokens, {args.steps} steps (first 5 untimed), median of {args.rounds} interleaved rounds")
    print(f"bare PyTorch loop : {tp['bare']:9.0f} tok/s   (rounds: {', '.join(f'{x:.0f}' for x in tp['bare_all'])})")
    print(f"distill train     : {tp['ours']:9.0f} tok/s   (rounds: {', '.join(f'{x:.0f}' for x in tp['ours_all'])})")
    ratio = tp["ours"] / tp["bare"]
    print(f"ratio ours / bare : {ratio:.3f}   (target >= 0.8: {'PASS' if ratio >= 0.8 else 'FAIL'})")
    on, off = pk[True], pk[False]
    print(f"\n== packing: {args.pack_examples} conversations, log-normal lengths (median ~300 tokens), "
          f"max_length 2048, batch 8")
    for name, r in (("packing on (BFD, padding-free)", on), ("packing off (padded batches)", off)):
        print(f"{name:32s}: real {r['real']:>9d} / computed {r['computed']:>9d} tokens = {r['real'] / r['computed']:.3f}"
              f"  ({r['rows']} rows, {r['batches']} batches)")
    eff = on["real"] / on["computed"]
    fill = on["real"] / (on["rows"] * 2048)
    print(f"packing efficiency: {eff:.3f}   (target >= 0.95: {'PASS' if eff >= 0.95 else 'FAIL'}); "
          f"BFD row fill (if rows were padded to 2048): {fill:.3f}; vs no packing: x{eff / (off['real'] / off['computed']):.2f}")
    print(f"packed vs one-by-one logits, max |diff|: {eq:.2e}   ({'PASS' if eq < 1e-3 else 'FAIL'}: no attention "
          "across packed examples)")


if __name__ == "__main__":
    main()
