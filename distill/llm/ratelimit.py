"""Rate limits as continuously refilled buckets: requests, tokens, and input and output tokens apart.

Where a limit comes from: the provider's response headers (OpenAI `x-ratelimit-{limit,remaining,reset}-
{requests,tokens}`, Anthropic `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
reset}`), read on every answer (429s included), so a run paces itself by the account's real limits with nothing
typed in; the configured `rpm` / `tpm` / `input_tpm` / `output_tpm` are ceilings on top (the lower one wins).
`remaining` lowers the bucket's level (never raises it): a key shared with another process, or an account
near its limit, slows this run down at once; the bucket then refills at the limit's rate (both providers
replenish continuously), and a 429's Retry-After still holds every worker.

Tokens are charged with an estimate before the request (prompt chars / 4, and max output tokens) and corrected
with the true usage after, so a burst of long answers slows the next requests instead of overshooting the
provider. Anthropic counts input and output tokens against separate limits, so they are separate buckets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

DIMENSIONS = ("requests", "tokens", "input_tokens", "output_tokens")
# (dimension, limit header, remaining header, reset header) for each provider's names
_OPENAI = [(d, f"x-ratelimit-limit-{d}", f"x-ratelimit-remaining-{d}", f"x-ratelimit-reset-{d}")
           for d in ("requests", "tokens")]
_ANTHROPIC = [(d, f"anthropic-ratelimit-{h}-limit", f"anthropic-ratelimit-{h}-remaining", f"anthropic-ratelimit-{h}-reset")
              for d, h in (("requests", "requests"), ("input_tokens", "input-tokens"),
                           ("output_tokens", "output-tokens"))]
# not Anthropic's `-tokens-*`: it is whichever of the input/output limits is tighter, not a limit on their sum


class Bucket:
    """Refills at per_minute/60 per second; holds at most one second's worth, so a limit is never burst past
    (providers enforce per-minute limits over shorter windows too)."""

    def __init__(self, per_minute: float):
        self.set_rate(per_minute)
        self.level = self.capacity
        self.t = time.monotonic()
        self._lock = asyncio.Lock()

    def set_rate(self, per_minute: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate, 1.0)

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # a request larger than the bucket waits for a full one; settle() charges the rest
        async with self._lock:
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def lower_to(self, remaining: float) -> None:
        """The provider says only `remaining` is left: never let more through than that (it refills from there)."""
        self._refill()
        self.level = min(self.level, remaining)

    def adjust(self, delta: float) -> None:
        """Charge (delta > 0) or refund (delta < 0) after the true cost is known; may go negative."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class RateLimiter:
    """The buckets of one endpoint: the configured ceilings, lowered to the limits its headers announce."""

    def __init__(self, rpm: float | None, tpm: float | None, input_tpm: float | None = None,
                 output_tpm: float | None = None, share: float = 1.0):
        self.ceilings = {"requests": rpm, "tokens": tpm, "input_tokens": input_tpm, "output_tokens": output_tpm}
        self.share = share  # of each announced limit: n processes on one key (collect --shard i/n) take 1/n each
        self.buckets: dict[str, Bucket] = {d: Bucket(v) for d, v in self.ceilings.items() if v}
        self.learned: dict[str, float] = {}  # per-minute limits read from the provider's headers

    async def acquire(self, est_tokens: int, est_output: int = 0) -> None:
        """Wait for one request estimated at `est_tokens` in all, `est_output` of them output."""
        b = self.buckets
        if not b:
            return
        for dim, amount in (("requests", 1), ("tokens", est_tokens), ("input_tokens", est_tokens - est_output),
                            ("output_tokens", est_output)):
            if dim in b:
                await b[dim].take(amount)

    def settle(self, est_tokens: int, true_tokens: int, est_output: int = 0, true_output: int = 0) -> None:
        b = self.buckets
        if not b:
            return
        if "tokens" in b:
            b["tokens"].adjust(true_tokens - est_tokens)
        if "input_tokens" in b:
            b["input_tokens"].adjust((true_tokens - true_output) - (est_tokens - est_output))
        if "output_tokens" in b:
            b["output_tokens"].adjust(true_output - est_output)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn limits from one response's headers (cheap when there are none: one lookup per provider)."""
        if "x-ratelimit-limit-requests" in headers or "x-ratelimit-limit-tokens" in headers:
            self._observe(headers, _OPENAI)
        elif "anthropic-ratelimit-requests-limit" in headers or "anthropic-ratelimit-input-tokens-limit" in headers:
            self._observe(headers, _ANTHROPIC)

    def _observe(self, headers: Mapping[str, str], names: list[tuple[str, str, str, str]]) -> None:
        for dim, h_limit, h_remaining, _ in names:
            limit = _number(headers.get(h_limit))
            if limit is None or limit <= 0:
                continue
            self.learned[dim] = limit
            ceiling = self.ceilings[dim]
            rate = min(limit * self.share, ceiling) if ceiling else limit * self.share
            bucket = self.buckets.get(dim)
            if bucket is None:
                bucket = self.buckets[dim] = Bucket(rate)
            elif bucket.per_minute != rate:
                bucket.set_rate(rate)
            remaining = _number(headers.get(h_remaining))
            if remaining is None:
                continue
            bucket.lower_to(remaining * self.share)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None
