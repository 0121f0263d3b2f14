"""Build the demo teacher: a tiny Llama (local digit-level tokenizer) trained from scratch on the demo task.

No model can be downloaded here, so the project brings its own teacher. A plain PyTorch loop (fp32, CPU) is
enough for a ~1M-parameter model and keeps the script self-contained; the loss covers the assistant turn only.
The result ships in data/demo/teacher/ with a SHA256SUMS file the demo verifies before serving it.

    python -m distill.demo.teacher --out data/demo/teacher      # `make teacher`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from distill.demo import task
from distill.errors import DistillError

TEACHER_DIR = Path(__file__).resolve().parents[2] / "data" / "demo" / "teacher"
CHECKSUMS = "SHA256SUMS"
TEACHER_SHAPE = dict(hidden=128, layers=2, heads=4, intermediate=512, max_positions=256)
BATCH = 32


def tokenizer_texts(n: int = 3000, seed: int = 0) -> list[str]:
    """Texts covering every template word and the solution format, for training the BPE."""
    rng = random.Random(seed)
    out = []
    for p in task.problems("teacher", n, seed):
        out.append(p.question)
        out.append(task.solution(p.a, p.b))
    out += [t for t in task.TEMPLATES] + task.NAMES + task.ITEMS
    rng.shuffle(out)
    return out


def encode(tok: Any, question: str, answer: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with the prompt masked (-100): the chat-templated prompt, then answer + <|im_end|>."""
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                     add_generation_prompt=True)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tok(answer + tok.eos_token, add_special_tokens=False)["input_ids"]
    return p_ids + a_ids, [-100] * len(p_ids) + a_ids


def train_lm(model: Any, tok: Any, examples: list[tuple[str, str]], *, steps: int, batch_size: int = 64,
             lr: float = 3e-3, seed: int = 0, log_every: int = 50, threads: int | None = None,
             check: Any = None, check_every: int = 0) -> dict[str, Any]:
    """Causal-LM training on (question, answer) pairs, assistant-only loss, AdamW + warmup/cosine.

    `check(model) -> bool`, called every `check_every` steps, stops training early when it returns True (the
    teacher build stops once a validation set is solved, which saves minutes on a shared 2-core box).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    encoded = [encode(tok, q, a) for q, a in examples]
    pad = tok.pad_token_id
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)

    def lr_at(s: int) -> float:
        if s < warmup:
            return lr * (s + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup)))

    model.train()
    t0, losses = time.monotonic(), []
    for step in range(steps):
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(batch_size)]
        width = max(len(x) for x, _ in batch)
        ids = torch.full((batch_size, width), pad, dtype=torch.long)
        labels = torch.full((batch_size, width), -100, dtype=torch.long)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, (x, y) in enumerate(batch):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps} loss {sum(losses[-log_every:]) / log_every:.4f} "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
        if check is not None and check_every and (step + 1) % check_every == 0:
            model.eval()
            done = check(model)
            model.train()
            if done:
                break
    model.eval()
    return {"steps": step + 1, "max_steps": steps, "batch_size": batch_size, "lr": lr,
            "final_loss": round(sum(losses[-50:]) / min(50, len(losses)), 5),
            "train_time_s": round(time.monotonic() - t0, 1)}


def greedy_accuracy(model: Any, tok: Any, probs: list[task.Problem], *, batch_size: int = 100,
                    max_new_tokens: int = 48) -> float:
    """Share of problems whose greedy completion ends with the right "The answer is N." (HF generate, local)."""
    import torch

    from distill.answers import grade

    correct = 0
    tok.padding_side = "left"
    for start in range(0, len(probs), batch_size):
        chunk = probs[start : start + batch_size]
        prompts = [tok.apply_chat_template([{"role": "user", "content": p.question}], tokenize=False,
                                           add_generation_prompt=True) for p in chunk]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += sum(grade(t, str(p.answer), "number").correct for t, p in zip(texts, chunk))
    tok.padding_side = "right"
    return correct / len(probs)


def param_count(model_dir: Path) -> int:
    """Parameters of a saved model, counted from its safetensors headers (no weights loaded)."""
    total = 0
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with f.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        for k, v in header.items():
            if k != "__metadata__":
                total += math.prod(v["shape"])
    return total


def write_checksums(model_dir: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
             for p in sorted(model_dir.iterdir()) if p.is_file() and p.name != CHECKSUMS]
    (model_dir / CHECKSUMS).write_text("".join(lines))


def verify_checksums(model_dir: Path) -> None:
    """Refuse a teacher whose files changed since it was built (a corrupt or half-copied checkout)."""
    sums = Path(model_dir) / CHECKSUMS
    if not sums.is_file():
        raise DistillError(f"{sums}: missing; rebuild the demo teacher with `make teacher`")
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        f = Path(model_dir) / name.strip()
        if not f.is_file():
            raise DistillError(f"{f}: listed in {sums} but missing; rebuild with `make teacher`")
        if hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise DistillError(f"{f}: sha256 does not match {sums}; rebuild with `make teacher`")


def build_teacher(out_dir: Path, *, steps: int = 1500, n_train: int = 20000, n_eval: int = 500, seed: int = 0,
                  threads: int = 2) -> dict[str, Any]:
    """Train the teacher from scratch into out_dir (tokenizer, weights, teacher.json, SHA256SUMS)."""
    from distill.devtools.tiny import build_model, build_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(tokenizer_texts(), vocab_size=384)
    model = build_model(tok, seed=seed, **TEACHER_SHAPE)
    train = [(p.question, task.solution(p.a, p.b)) for p in task.problems("teacher", n_train, seed)]
    seen = {(p.a, p.b) for p in task.problems("teacher", n_train, seed)}
    val = [p for p in task.problems("teacher", n_train + 400, seed + 7) if (p.a, p.b) not in seen][:100]

    def solved(m: Any) -> bool:
        acc = greedy_accuracy(m, tok, val)
        print(f"  validation accuracy {acc:.3f}", flush=True)
        return acc >= 0.99

    stats = train_lm(model, tok, train, steps=steps, batch_size=BATCH, seed=seed, threads=threads, check=solved,
                     check_every=150)
    acc = greedy_accuracy(model, tok, task.problems("eval", n_eval, seed + 1000))
    print(f"teacher held-out accuracy (greedy, {n_eval} problems): {acc:.3f}", flush=True)
    for p in out_dir.iterdir():
        if p.is_file():
            p.unlink()
    model.save_pretrained(str(out_dir))
    tok.save_pretrained(str(out_dir))
    info = {"shape": TEACHER_SHAPE, "params": param_count(out_dir), "train": stats, "n_train_problems": n_train,
            "heldout_accuracy": acc, "heldout_problems": n_eval, "seed": seed, "digits": task.DIGITS}
    (out_dir / "teacher.json").write_text(json.dumps(info, indent=2) + "\n")
    write_checksums(out_dir)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the demo teacher from scratch")
    ap.add_argument("--out", type=Path, default=TEACHER_DIR)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = build_teacher(args.out, steps=args.steps, seed=args.seed, threads=args.threads)
    print(json.dumps(info, indent=2))
    return 0 if info["heldout_accuracy"] >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
