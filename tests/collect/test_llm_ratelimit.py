"""The rate limiter on a real clock, with small limits: it never lets more through than the limit allows, and
TPM corrected with the true usage slows (or frees) the next requests."""

from __future__ import annotations

import asyncio
import time

from distill.llm.ratelimit import RateLimiter


def _timed(coro_fn) -> float:
    async def go() -> float:
        t0 = time.monotonic()
        await coro_fn()
        return time.monotonic() - t0
    return asyncio.run(go())


def test_rpm_lets_one_seconds_worth_through_then_paces() -> None:
    """600/min = 10/s with a bucket of one second: 10 at once, then 10 per second. 25 requests need >= 1.5 s."""
    lim = RateLimiter(rpm=600, tpm=None)
    stamps: list[float] = []

    async def go() -> None:
        t0 = time.monotonic()
        for _ in range(25):
            await lim.acquire(0)
            stamps.append(time.monotonic() - t0)

    elapsed = _timed(go)
    assert elapsed >= 1.45
    assert stamps[9] < 0.5 and stamps[10] >= 0.09  # the burst is one second's worth, the 11th waits its turn
    # over any window after the burst, the rate holds: request k (k >= 10) no earlier than (k - 10) / 10 s
    assert all(stamps[k] >= (k - 10) / 10 - 0.02 for k in range(10, 25))


def test_rpm_holds_across_concurrent_tasks() -> None:
    lim = RateLimiter(rpm=1200, tpm=None)  # 20/s, burst 20

    async def go() -> None:
        await asyncio.gather(*(lim.acquire(0) for _ in range(50)))

    assert _timed(go) >= 1.45  # 30 after the burst at 20/s


def test_tpm_charges_the_estimate_then_the_true_usage() -> None:
    """6000 tokens/min = 100/s, bucket 100. A request estimated at 100 that used 150 leaves the bucket at -50, so
    the next 100-token request waits 1.5 s; one that used nothing is refunded and the next goes at once."""
    over = RateLimiter(rpm=None, tpm=6000)

    async def overshoot() -> None:
        await over.acquire(100)
        over.settle(100, 150)
        await over.acquire(100)

    assert 1.45 <= _timed(overshoot)

    under = RateLimiter(rpm=None, tpm=6000)

    async def refund() -> None:
        await under.acquire(100)
        under.settle(100, 0)
        await under.acquire(100)

    assert _timed(refund) < 0.8  # without the refund it would wait 1.0 s


def test_a_request_larger_than_the_bucket_waits_for_a_full_one_not_forever() -> None:
    lim = RateLimiter(rpm=None, tpm=3000)  # 50/s, bucket 50

    async def go() -> None:
        await lim.acquire(50)
        await lim.acquire(10_000)  # capped at the bucket: waits ~1 s for a full one

    assert 0.95 <= _timed(go)


def test_no_limits_never_wait() -> None:
    lim = RateLimiter(rpm=None, tpm=None)

    async def go() -> None:
        for _ in range(1000):
            await lim.acquire(10_000)
        lim.settle(10, 10_000)

    assert _timed(go) < 0.5


def test_a_share_of_the_announced_limits_is_what_one_of_n_processes_paces_to() -> None:
    """`collect --shard i/n` runs n processes on one key: each paces to 1/n of what the headers announce (and of
    what they say remains), so together they stay inside the provider's limit."""
    headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "400",
               "x-ratelimit-limit-tokens": "90000", "x-ratelimit-remaining-tokens": "90000"}
    whole, half = RateLimiter(None, None), RateLimiter(None, None, share=0.5)
    for lim in (whole, half):
        lim.observe(headers)
    assert whole.buckets["requests"].per_minute == 600 and half.buckets["requests"].per_minute == 300
    assert half.buckets["tokens"].per_minute == 45000
    assert half.learned["requests"] == 600  # what the provider said is recorded as said
    capped = RateLimiter(100, None, share=0.5)  # a configured ceiling below the share still wins
    capped.observe(headers)
    assert capped.buckets["requests"].per_minute == 100


def test_shard_config_splits_every_limit_and_says_so() -> None:
    from distill.collect.config import CollectConfig
    from distill.collect.shard import shard_config

    cfg = CollectConfig.model_validate({
        "prompts": {"path": "p.jsonl", "field": "q"}, "budget_usd": 4.0,
        "teachers": [{"name": "t", "api_key": "k", "model": "m", "concurrency": 8, "rpm": 600, "tpm": 1000,
                      "input_tpm": 800, "output_tpm": 200}]})
    part, lines = shard_config(cfg, 4)
    t = part.teachers[0]
    assert (part.budget_usd, t.concurrency, t.rpm, t.tpm, t.input_tpm, t.output_tpm, t.limit_share) == \
        (1.0, 2, 150, 250, 200, 50, 0.25)
    said = " ".join(lines)
    assert "input_tpm 200 of 800" in said and "output_tpm 50 of 200" in said and "0.25 of the limits" in said
