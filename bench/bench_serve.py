"""Serving throughput: vLLM's OpenAI server vs transformers `generate`, same tiny model, prompts and max tokens.

Both generate exactly `--max-tokens` tokens per prompt (vLLM: `ignore_eos` + `min_tokens`; transformers:
`min_new_tokens`), greedy, from the same chat-templated prompts; tokens/s = generated tokens / wall seconds after
one warm-up. vLLM gets all prompts at once (continuous batching, as `distill eval` sends them); transformers
generates in padded batches of `--batch` (left padding) — and one prompt at a time, the naive loop.

    python bench/bench_serve.py [--n 64] [--max-tokens 64] [--batch 16] [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import openai


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"What is {1000 + 37 * i} + {2000 + 91 * i}? Think step by step."}]
            for i in range(n)]


async def vllm_run(base_url: str, model: str, msgs: list[list[dict[str, str]]], max_tokens: int) -> tuple[int, float]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600)

    async def one(m: list[dict[str, str]]) -> int:
        r = await client.chat.completions.create(
            model=model, messages=m, max_tokens=max_tokens, temperature=0,  # type: ignore[arg-type]
            extra_body={"ignore_eos": True, "min_tokens": max_tokens})
        return r.usage.completion_tokens if r.usage else 0

    t0 = time.perf_counter()
    toks = await asyncio.gather(*(one(m) for m in msgs))
    dt = time.perf_counter() - t0
    await client.close()
    return sum(toks), dt


def hf_run(model_dir: Path, msgs: list[list[dict[str, str]]], max_tokens: int, batch: int) -> tuple[int, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in msgs]
    total, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
            total += out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1])  # min_new_tokens: no early stop
    return total, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="prompts")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16, help="transformers batch size")
    ap.add_argument("--model", default=None, help="model dir (default: a fresh distill.devtools.tiny model)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from distill.serve import VLLMServer
    from distill.devtools.tiny import tiny_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else tiny_model_dir(Path(tmp) / "tiny")
        msgs = prompts(args.n)
        hf_run(model_dir, msgs[:2], 4, 2)  # warm-up
        hf_tok, hf_s = hf_run(model_dir, msgs, args.max_tokens, args.batch)
        one_tok, one_s = hf_run(model_dir, msgs[: max(4, args.n // 8)], args.max_tokens, 1)
        print(f"transformers generate, batch {args.batch}: {hf_tok} tokens in {hf_s:.2f} s = {hf_tok / hf_s:,.0f} tok/s")
        print(f"transformers generate, batch 1:  {one_tok} tokens in {one_s:.2f} s = {one_tok / one_s:,.0f} tok/s")
        t0 = time.perf_counter()
        with VLLMServer(model_dir, served_name="bench", max_model_len=512,
                        log_path=Path(tmp) / "vllm.log") as srv:
            print(f"vLLM server ready in {time.perf_counter() - t0:.0f} s")
            asyncio.run(vllm_run(srv.base_url, "bench", msgs[:4], 4))  # warm-up
            v_tok, v_s = asyncio.run(vllm_run(srv.base_url, "bench", msgs, args.max_tokens))
        print(f"vLLM OpenAI server, {args.n} concurrent: {v_tok} tokens in {v_s:.2f} s = {v_tok / v_s:,.0f} tok/s "
              "(includes HTTP + JSON)")
        print(f"ratio vLLM / transformers batch {args.batch}: {(v_tok / v_s) / (hf_tok / hf_s):.2f}x")
        print(f"ratio vLLM / transformers batch 1: {(v_tok / v_s) / (one_tok / one_s):.2f}x")


if __name__ == "__main__":
    main()
