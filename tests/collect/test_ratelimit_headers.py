"""Rate limits read from the provider's response headers (OpenAI `x-ratelimit-*`, Anthropic
`anthropic-ratelimit-*` with input and output tokens apart): the limiter learns them, configured rpm/tpm stay
ceilings, and a collect run against fake servers that enforce limits paces itself instead of collecting 429s."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from distill.cli import main
from distill.llm.ratelimit import RateLimiter
from tests.collect.test_anthropic import anthropic_config
from tests.collect.test_collect import KEY, write_config


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def test_openai_headers_become_buckets_and_ceilings_win() -> None:
    lim = RateLimiter(rpm=None, tpm=None)
    lim.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599",
                 "x-ratelimit-limit-tokens": "60000", "x-ratelimit-remaining-tokens": "59000",
                 "x-ratelimit-reset-requests": "100ms", "x-ratelimit-reset-tokens": "1s"})
    assert lim.learned == {"requests": 600.0, "tokens": 60000.0}
    assert lim.buckets["requests"].rate == 10.0 and lim.buckets["tokens"].rate == 1000.0
    capped = RateLimiter(rpm=120, tpm=None)  # the configured rpm is a ceiling: lower than the header, it wins
    capped.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599"})
    assert capped.buckets["requests"].rate == 2.0
    loose = RateLimiter(rpm=6000, tpm=None)  # higher than the account's limit: the header wins
    loose.observe({"x-ratelimit-limit-requests": "600"})
    assert loose.buckets["requests"].rate == 10.0


def test_anthropic_input_and_output_tokens_are_separate_buckets() -> None:
    lim = RateLimiter(rpm=None, tpm=None)
    lim.observe({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
                 "anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "0",
                 "anthropic-ratelimit-output-tokens-limit": "600", "anthropic-ratelimit-output-tokens-remaining": "600",
                 "anthropic-ratelimit-tokens-limit": "600", "anthropic-ratelimit-tokens-remaining": "600"})
    # `-tokens-*` is the tighter of the two, not a limit on their sum: not a bucket of its own
    assert lim.learned == {"requests": 50.0, "input_tokens": 30000.0, "output_tokens": 600.0}
    assert set(lim.buckets) == {"requests", "input_tokens", "output_tokens"}
    assert lim.buckets["input_tokens"].level <= 0  # remaining 0: the next request waits for the refill

    async def timed() -> float:
        t0 = time.monotonic()
        await lim.acquire(500 + 10, 10)  # 500 input tokens at 500/s: ~1 s; 10 output tokens free now
        return time.monotonic() - t0

    assert asyncio.run(timed()) >= 0.9
    # output: 600/min = 10/s, bucket 10: a request charging max_tokens 10 takes the bucket; the next waits ~1 s
    out = RateLimiter(rpm=None, tpm=None)
    out.observe({"anthropic-ratelimit-output-tokens-limit": "600", "anthropic-ratelimit-input-tokens-limit": "1e9"})

    async def two() -> float:
        await out.acquire(20, 10)
        t0 = time.monotonic()
        await out.acquire(20, 10)
        return time.monotonic() - t0

    assert asyncio.run(two()) >= 0.9


def _over_limit(srv) -> int:
    return Counter(e["kind"] for e in srv.served())["over_limit"]


def _run(tmp: Path, cfg: Path) -> dict:
    assert main(["collect", "-c", str(cfg)]) == 0
    return json.loads((tmp / "run" / "collect" / "summary.json").read_text())


def test_openai_collect_paces_by_x_ratelimit_headers(tmp_path: Path, fake_api) -> None:
    """300 requests/min enforced (5/s, a second's burst); no rpm configured. Reading the headers, the run sees
    only the 429s of its first burst (sent before any header arrived); the same limits unannounced cost more."""
    results = {}
    for silent in (False, True):
        tmp = tmp_path / ("silent" if silent else "headers")
        tmp.mkdir()
        srv = fake_api("openai", "--api-key", KEY, "--limits", "requests=300",
                       *(["--silent-limits"] if silent else []))
        cfg = write_config(tmp, srv.base_url, n_prompts=20, concurrency=8,
                           retry={"max_attempts": 20, "base_delay_s": 0.01, "max_delay_s": 0.05})
        s = _run(tmp, cfg)
        ok = sorted(e["t"] for e in srv.served() if e["kind"] == "ok")
        results[silent] = (_over_limit(srv), ok[-1] - ok[0], s)
        assert len(ok) == 20 and ok[-1] - ok[0] >= (20 - 5) / 5 - 0.3  # the provider's limit held either way
    (paced, t_paced, s), (blind, t_blind, s_blind) = results[False], results[True]
    print(f"openai: 429s paced {paced} (answers over {t_paced:.2f}s), unannounced {blind} ({t_blind:.2f}s)")
    assert s["rate_limits"] == {"requests": 300.0} and s_blind["rate_limits"] == {}
    assert paced <= 8, f"{paced} requests over the announced limit"
    assert blind > paced


def test_anthropic_collect_paces_by_output_token_headers(tmp_path: Path, fake_api) -> None:
    """Output tokens limited to 2400/min (40/s) and requests loosely: the binding limit is output tokens, learned
    from `anthropic-ratelimit-output-tokens-*`, charged max_tokens up front and corrected by the usage."""
    results = {}
    for silent in (False, True):
        tmp = tmp_path / ("silent" if silent else "headers")
        tmp.mkdir()
        srv = fake_api("anthropic", "--api-key", KEY, "--limits", "requests=6000,output_tokens=2400",
                       *(["--silent-limits"] if silent else []))
        cfg = anthropic_config(tmp, srv.base_url, 16, params={"max_tokens": 16}, concurrency=4,
                               retry={"max_attempts": 30, "base_delay_s": 0.01, "max_delay_s": 0.05})
        s = _run(tmp, cfg)
        results[silent] = (_over_limit(srv), s)
        ok = [e for e in srv.served() if e["kind"] == "ok"]
        assert len(ok) == 16
    (paced, s), (blind, s_blind) = results[False], results[True]
    print(f"anthropic: 429s paced {paced}, unannounced {blind}")
    assert s["rate_limits"] == {"requests": 6000.0, "output_tokens": 2400.0}
    assert paced <= 4, f"{paced} requests over the announced limit"
    assert blind > paced
