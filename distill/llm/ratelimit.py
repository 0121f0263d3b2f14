"""Requests-per-minute and tokens-per-minute limits as continuously refilled buckets.

TPM is charged with an estimate before the request (prompt chars / 4 + max output tokens) and corrected with the
true usage after, so a burst of long answers slows the next requests instead of overshooting the provider.
"""

from __future__ import annotations

import asyncio
import time


class Bucket:
    """Refills at per_minute/60 per second; holds at most one second's worth, so a limit is never burst past."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate, 1.0)
        self.level = self.capacity
        self.t = time.monotonic()
        self._lock = asyncio.Lock()

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

    def adjust(self, delta: float) -> None:
        """Charge (delta > 0) or refund (delta < 0) after the true cost is known; may go negative."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class RateLimiter:
    def __init__(self, rpm: float | None, tpm: float | None):
        self.rpm = Bucket(rpm) if rpm else None
        self.tpm = Bucket(tpm) if tpm else None

    async def acquire(self, est_tokens: int) -> None:
        if self.rpm:
            await self.rpm.take(1)
        if self.tpm:
            await self.tpm.take(est_tokens)

    def settle(self, est_tokens: int, true_tokens: int) -> None:
        if self.tpm:
            self.tpm.adjust(true_tokens - est_tokens)
