"""Collector throughput against the loopback fake server; prints ratios measured in this one run.

1. latency L=200 ms, concurrency C=256, 5,000 requests: our req/s vs the ideal C/L.
2. zero latency, same C: our req/s vs a bare `AsyncOpenAI` loop (the SDK over aiohttp, same C; ours posts over
   aiohttp directly, distill/llm/transport.py).
Ours includes everything a real collect does per request: cache lookup, key hashing, rate-limit/budget
bookkeeping, parsing, and a committed SQLite write before the response counts.

    python bench/bench_collect.py [--n 5000] [--c 256] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from distill.llm import ChatRequest, ChatRunner, EndpointConfig, RequestModel, ResponseCache


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "distill.devtools.fake_openai", "--port", "0", "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/v1"


def prompts(n: int, tag: str) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"{tag} question number {i}: what is {i} + {i}?"}] for i in range(n)]


async def bare(base_url: str, n: int, c: int, tag: str) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, http_client=openai.DefaultAioHttpClient())
    sem = asyncio.Semaphore(c)

    async def one(msgs: list[dict[str, str]]) -> None:
        async with sem:
            await client.chat.completions.create(model="m", messages=msgs, max_tokens=64)  # type: ignore[arg-type]

    t0 = time.perf_counter()
    await asyncio.gather(*(one(m) for m in prompts(n, tag)))
    dt = time.perf_counter() - t0
    await client.close()
    return n / dt


def ours(base_url: str, n: int, c: int, tag: str, cache_dir: Path) -> float:
    ep = EndpointConfig(name="bench", base_url=base_url, model="m", concurrency=c, params={"max_tokens": 64})
    cache = ResponseCache(cache_dir / f"{tag}.sqlite")
    runner = ChatRunner(RequestModel(ep), cache)
    reqs = [ChatRequest(m) for m in prompts(n, tag)]
    t0 = time.perf_counter()
    stats = asyncio.run(runner.run(reqs, lambda *a: None))
    dt = time.perf_counter() - t0
    assert stats.completed == n, stats.summary()
    cache.close()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--c", type=int, default=256)
    ap.add_argument("--latency", type=float, default=0.2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())

    proc, url = start_server(args.latency)
    try:
        ideal = args.c / args.latency
        r_ours = ours(url, args.n, args.c, "lat-ours", tmp)
        r_bare = asyncio.run(bare(url, args.n, args.c, "lat-bare"))
    finally:
        proc.kill()
    print(f"L={args.latency * 1000:.0f} ms, C={args.c}, {args.n} requests: ideal C/L = {ideal:.0f} req/s")
    print(f"  ours {r_ours:7.1f} req/s = {r_ours / ideal:.3f} x C/L | bare AsyncOpenAI loop {r_bare:7.1f} req/s = "
          f"{r_bare / ideal:.3f} x C/L | ours/bare = {r_ours / r_bare:.3f}")

    proc, url = start_server(0.0)
    try:
        rounds = [(ours(url, args.n, args.c, f"z-ours-{i}", tmp), asyncio.run(bare(url, args.n, args.c, f"z-bare-{i}")))
                  for i in range(2)]
    finally:
        proc.kill()
    o = max(r[0] for r in rounds)
    b = max(r[1] for r in rounds)
    print(f"L=0, C={args.c}, {args.n} requests (best of 2): ours {o:7.1f} req/s | bare AsyncOpenAI loop {b:7.1f} req/s "
          f"| ours/bare = {o / b:.3f}")


if __name__ == "__main__":
    main()
