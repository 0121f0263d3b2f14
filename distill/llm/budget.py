"""The spend cap: each request reserves a true worst case before it is sent, and every run's spend is kept in
the run dir's ledger, so the cap holds across requests in flight, processes, kills and re-runs.

Why a true bound and not an estimate: a cap that reserves chars/4 is exceeded by the first text that tokenizes
worse than that. Byte-level BPE (tiktoken, Llama 3, Qwen, ...) and byte-fallback SentencePiece never make more
tokens than the UTF-8 bytes they encode, so the request's bytes plus a per-message allowance for the chat
template bound the prompt; `max_tokens` x n bounds the answers (reasoning tokens are billed as completion and
counted inside max_completion_tokens).

Ledger: runs/<name>/spend.jsonl, one JSON line per event, each appended with one write() (a killed process
loses no line it wrote; fsync on close). With a cap set: `{"stage", "run", "req", "reserve": usd}` before a
request is sent; always: `{"stage", "run", "req", "cost": usd}` once its cost is known. A reservation without a
cost line (the process died with the request in flight) counts at its worst case: it may have been billed.
A stage's cap counts that stage's spend over every run in the run dir, until the user raises it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import IO, Any

from distill.errors import ConfigError
from distill.rundir import run_lock

LEDGER = "spend.jsonl"
MESSAGE_OVERHEAD = 16  # tokens a chat template adds per message (OpenAI: 3-4; open-model templates: up to ~10)
REQUEST_OVERHEAD = 64  # reply priming plus a template's default system block (Llama 3.1's is ~25 tokens)


def prompt_token_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound on the prompt tokens of a chat request: its UTF-8 bytes plus the template's overhead."""
    return sum(
        len(str(m.get("content") or "").encode()) + len(str(m.get("role") or "").encode()) + MESSAGE_OVERHEAD
        for m in messages
    ) + REQUEST_OVERHEAD


def output_token_bound(body: dict[str, Any]) -> int | None:
    """The most completion tokens one choice may bill: the larger of max_tokens / max_completion_tokens sent."""
    limits = [v for k in ("max_tokens", "max_completion_tokens") if isinstance(v := body.get(k), int) and v > 0]
    return max(limits) if limits else None


def read_ledger(path: Path, stage: str) -> float:
    """What earlier runs of `stage` spent: settled costs plus reservations that never settled."""
    if not path.is_file():
        return 0.0
    spent = 0.0
    open_reservations: dict[tuple[str, int], float] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:  # a torn last line from a crash: ignore it (its reservation still counts)
                continue
            if e.get("stage") != stage:
                continue
            key = (str(e.get("run")), int(e.get("req", -1)))
            if "reserve" in e:
                open_reservations[key] = float(e["reserve"])
            elif "cost" in e:
                open_reservations.pop(key, None)
                spent += float(e["cost"])
    return spent + sum(open_reservations.values())


class Budget:
    """A hard $ cap shared by all runners of a stage (and by its earlier runs, through the ledger)."""

    def __init__(self, limit_usd: float | None, ledger: Path | None = None, stage: str = "collect"):
        self.limit = limit_usd
        self.stage = stage
        self.ledger = Path(ledger) if ledger is not None else None
        self.previous = read_ledger(self.ledger, stage) if self.ledger is not None else 0.0
        self.spent = 0.0  # this run
        self.reserved = 0.0
        self._tickets: dict[int, float] = {}
        self._next = 0
        self._run = f"{os.getpid()}-{int(time.time() * 1000)}"
        self._fd: int | None = None
        self._lock: IO[str] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        if self.ledger is not None:
            self.ledger.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @classmethod
    def open(cls, run_root: Path, stage: str, limit_usd: float | None) -> Budget:
        """The stage's budget over runs/<name>/spend.jsonl. With a cap, holds the stage's spend lock so that no
        other process spends against the same cap at the same time (it would not see our requests in flight)."""
        lock = run_lock(Path(run_root), f"spend-{stage}", f"`distill {stage}` spending against budget_usd") \
            if limit_usd is not None else None
        budget = cls(limit_usd, Path(run_root) / LEDGER, stage)
        budget._lock = lock
        return budget

    @property
    def total_spent(self) -> float:
        return self.previous + self.spent

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(self.limit - self.total_spent - self.reserved, 0.0)

    def _append(self, **event: Any) -> None:
        if self._fd is not None:
            os.write(self._fd, (json.dumps({"stage": self.stage, "run": self._run, **event}) + "\n").encode())

    def reserve(self, worst: float) -> int | None:
        """A ticket for a request that may cost up to `worst`, or None when it does not fit now."""
        if self.limit is not None and self.total_spent + self.reserved + worst > self.limit + 1e-12:
            return None
        ticket = self._next
        self._next += 1
        self._tickets[ticket] = worst
        self.reserved += worst
        if self.limit is not None:
            self._append(req=ticket, reserve=round(worst, 9))
        return ticket

    @property
    def in_flight(self) -> int:
        """Reservations not yet settled."""
        return len(self._tickets)

    def could_fit(self, worst: float) -> bool:
        """Whether `worst` fits once everything in flight has settled (spend only grows, so else it never will)."""
        return self.limit is None or self.total_spent + worst <= self.limit + 1e-12

    def settle(self, ticket: int, actual: float) -> None:
        """The request's real cost replaces its reservation; waiting requests get another try."""
        self.reserved -= self._tickets.pop(ticket)
        if not self._tickets:
            self.reserved = 0.0  # no float residue left to wait on
        self.spent += actual
        if actual > 0 or self.limit is not None:
            self._append(req=ticket, cost=round(actual, 9))
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for_settle(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    def summary(self) -> dict[str, Any]:
        """spent (every run of this stage in the run dir) / cap / remaining, for summary.json."""
        return {
            "stage": self.stage,
            "spent_usd": round(self.total_spent + self.reserved, 6),
            "this_run_usd": round(self.spent, 6),
            "earlier_runs_usd": round(self.previous, 6),
            "cap_usd": self.limit,
            "remaining_usd": None if self.remaining is None else round(self.remaining, 6),
            "ledger": str(self.ledger) if self.ledger else None,
        }

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def require_cap_inputs(name: str, model: str, price_known: bool, max_out: int | None) -> None:
    """Refuse a capped run whose requests have no bounded cost: unknown price, or no max_tokens."""
    if not price_known:
        raise ConfigError(
            f"'{name}': budget_usd is set but no price is known for model {model!r}, so the cap could not hold; "
            f"set `price: {{prompt: X, completion: Y}}` ($ per 1M tokens) under '{name}'"
        )
    if max_out is None:
        raise ConfigError(
            f"'{name}': budget_usd is set but params.max_tokens is not, so no request's cost has an upper bound; "
            f"set params.max_tokens (or max_completion_tokens) under '{name}'"
        )
