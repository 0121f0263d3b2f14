"""Many chat requests against one endpoint: bounded concurrency, RPM/TPM limits, retries, cache, cost, budget.

Why our own loop and not the SDK's retries: we need retry decisions per error kind (no retry on 4xx config
errors, `Retry-After` honoured for every worker at once), a breaker that stops a run of failures instead of
burning the retry budget on every prompt, a response durable in the cache before it counts, and the budget
checked against the worst case of everything in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from typing import Any

from distill.errors import redact
from distill.llm.budget import Budget
from distill.llm.cache import ResponseCache, sample_key
from distill.llm.errors import Failure, RunStopped, classify
from distill.llm.ratelimit import RateLimiter
from distill.llm.request import ChatRequest, OnResult, RequestModel, RunStats, estimate_prompt_tokens
from distill.llm.transport import ChatTransport

REFUSED_ATTEMPTS = 3  # a request refused this many times before any request succeeded: nothing is listening
# failures after which the provider may still have run (and billed) the request: charged at their worst case
MAYBE_BILLED = frozenset({"timeout", "malformed", "empty_choices", "other", "connection"})


class ChatRunner:
    """The online executor: sends a `RequestModel`'s requests now; results land in the cache, then `on_result`
    is told. `stats` may be shared with another executor of the same requests (batch's online fallback)."""

    def __init__(self, model: RequestModel, cache: ResponseCache, *, budget: Budget | None = None,
                 stats: RunStats | None = None):
        self.model = model
        self.ep = model.endpoint
        self.price = model.price
        self.cache = cache
        self.budget = budget or Budget(None)
        self.stats = stats if stats is not None else RunStats()
        self.limiter = RateLimiter(self.ep.rpm, self.ep.tpm, self.ep.input_tpm, self.ep.output_tpm,
                                   share=self.ep.limit_share)
        self._cooldown_until = 0.0
        self._consecutive_failures = 0
        self._stop: str | None = None
        self._halted = asyncio.Event()
        self._fatal: str | None = None
        self._writes: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._inflight: dict[str, list[tuple[ChatRequest, list[str]]]] = {}  # request key -> same prompt waiting
        self._any_success = False
        self._last_error: str | None = None
        if self.budget.limit is not None:
            model.require_bounded_cost()

    # -- the run ---------------------------------------------------------------------------------------------
    async def run(self, requests: Iterable[ChatRequest], on_result: OnResult) -> RunStats:
        """Send every request not in the cache; returns stats. Raises `RunStopped` on a fatal error, and when
        requests failed and none succeeded (a model that never answered must not score 0%)."""
        client = self.model.transport(self.limiter.observe)
        queue: asyncio.Queue[tuple[ChatRequest, list[str], str] | None] = asyncio.Queue(maxsize=2 * self.ep.concurrency)
        workers = [asyncio.create_task(self._worker(client, queue, on_result)) for _ in range(self.ep.concurrency)]
        try:
            await self._produce(requests, queue, on_result)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await client.close()
        s = self.stats
        s.rate_limits.update(self.limiter.learned)
        if not self._fatal and s.failed and not (s.completed or s.from_cache):
            self._fatal = f"no request to {self._where} succeeded ({s.failed} failed). Last error: {self._last_error}"
        if self._fatal:
            s.stopped = self._fatal
            raise RunStopped(self._fatal)
        s.stopped = self._stop or s.stopped
        return s

    def _halt(self, reason: str, *, fatal: bool = False) -> None:
        """Stop sending: requests not yet sent are counted not_sent; backoff sleeps end now."""
        if fatal:
            self._fatal = self._fatal or reason
        self._stop = self._stop or reason
        self._halted.set()

    async def _sleep(self, delay: float) -> None:
        """A backoff that ends early when the run stops (a stopped run must not wait out its retries)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._halted.wait(), delay)

    @property
    def _where(self) -> str:
        return f"'{self.ep.name}' ({self.ep.base_url}, model {self.ep.model!r})"

    async def _produce(self, requests: Iterable[ChatRequest], queue: asyncio.Queue, on_result: OnResult) -> None:
        batch: list[ChatRequest] = []

        async def flush() -> None:
            rks = [self.model.request_key(r.messages) for r in batch]
            keys = [[sample_key(rk, i) for i in r.samples] for r, rk in zip(batch, rks, strict=True)]
            cached = self.cache.get_many([k for ks in keys for k in ks])
            for req, ks, rk in zip(batch, keys, rks, strict=True):
                self.stats.requests_total += len(ks)
                if self._stop:
                    self.stats.not_sent += len(ks)
                    continue
                hits = [cached[k] for k in ks if k in cached]
                self.stats.from_cache += len(hits)
                if len(hits) == len(ks):
                    on_result(req, hits, None, True)
                    continue
                missing = [(i, k) for i, k in zip(req.samples, ks, strict=True) if k not in cached]
                if hits:
                    on_result(ChatRequest(req.messages, [r["sample_index"] for r in hits], req.tag), hits, None, True)
                sub = ChatRequest(req.messages, [i for i, _ in missing], req.tag)
                if rk in self._inflight:  # the same prompt (under another id) is on its way: ask it once
                    self._inflight[rk].append((sub, [k for _, k in missing]))
                    continue
                self._inflight[rk] = []
                await queue.put((sub, [k for _, k in missing], rk))
            batch.clear()

        for req in requests:
            batch.append(req)
            if len(batch) >= 256:
                await flush()
        if batch:
            await flush()

    async def _worker(self, client: ChatTransport, queue: asyncio.Queue, on_result: OnResult) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            req, keys, rk = item
            if self._stop:
                self.stats.not_sent += len(keys)
            else:
                await self._one(client, req, keys, on_result)
            for freq, fkeys in self._inflight.pop(rk, []):
                await self._follow(client, freq, fkeys, on_result)

    async def _follow(self, client: ChatTransport, req: ChatRequest, keys: list[str], on_result: OnResult) -> None:
        """A request whose prompt was just asked under another id: its answers are in the cache now (the same
        request key), else (that request failed or asked fewer samples) it is sent itself."""
        found = self.cache.get_many(keys)
        hits = [found[k] for k in keys if k in found]
        if hits:
            self.stats.from_cache += len(hits)
            on_result(ChatRequest(req.messages, [r["sample_index"] for r in hits], req.tag), hits, None, True)
        rest = [(i, k) for i, k in zip(req.samples, keys, strict=True) if k not in found]
        if not rest:
            return
        if self._stop:
            self.stats.not_sent += len(rest)
            return
        await self._one(client, ChatRequest(req.messages, [i for i, _ in rest], req.tag), [k for _, k in rest], on_result)

    async def _reserve(self, messages: list[dict[str, Any]], n: int) -> tuple[int, float] | None:
        """Reserve the request's worst case; while it does not fit, wait for requests in flight to settle.
        None: it can never fit (skipped; the run goes on while cheaper requests fit, and stops when none can)."""
        worst = self.model.worst_case_usd(messages, n)
        while (ticket := self.budget.reserve(worst)) is None:
            if self.budget.could_fit(worst) and self.budget.in_flight:
                await self.budget.wait_for_settle()
                if self._stop:
                    return None
                continue
            b = self.budget
            msg = (f"budget_usd {b.limit} reached: spent ${b.total_spent:.4f} over all runs of this stage "
                   f"(this run ${b.spent:.4f}); a request could cost up to ${worst:.4f}")
            self.stats.stopped = msg
            if not b.could_fit(self.model.cheapest_worst_case_usd):
                self._halt(msg)
            return None
        return ticket, worst

    async def _one(self, client: ChatTransport, req: ChatRequest, keys: list[str], on_result: OnResult) -> None:
        messages = self.model.full_messages(req.messages)
        pending = dict(zip(req.samples, keys, strict=True))
        est_prompt = estimate_prompt_tokens(messages)
        attempt = refused = 0
        while pending:
            if self._stop:
                self.stats.not_sent += len(pending)
                return
            n = min(len(pending), self.model.max_n)
            reserved = await self._reserve(messages, n)
            if reserved is None:
                self.stats.not_sent += n
                return
            ticket, worst = reserved
            attempt += 1
            wait = self._cooldown_until - time.monotonic()
            if wait > 0:
                await self._sleep(wait)
            est_output = self.model.max_output * n
            est_tokens = est_prompt + est_output
            await self.limiter.acquire(est_tokens, est_output)
            self.stats.http_requests += 1
            t0 = time.monotonic()
            try:
                resp = await self._send(client, messages, n)
            except asyncio.CancelledError:
                self.budget.settle(ticket, worst)  # sent, maybe billed
                raise
            except Exception as err:  # noqa: BLE001 - every failure is classified below
                last = classify(err, self.ep.name, self.ep.base_url, self.ep.model)
                self.budget.settle(ticket, worst if last.kind in MAYBE_BILLED and not last.refused else 0.0)
                self.limiter.settle(est_tokens, 0, est_output, 0)
                refused += last.refused
                if await self._retry_or_give_up(last, req, pending, attempt, refused, on_result):
                    continue
                return
            latency = time.monotonic() - t0
            usage = self.model.usage(resp)
            records, invalid = self.model.split_invalid(
                self.model.records(resp, pending, latency=latency, attempts=attempt))
            # no usage reported: the bill is unknown, so the worst case is what counts against the cap
            cost = self.model.cost_usd(usage, self.model.provider_cost(resp)) if resp.get("usage") else worst
            self.budget.settle(ticket, cost)
            # Anthropic's input-token limit does not count prompt-cache reads (`cache_read_tokens`: Anthropic only)
            self.limiter.settle(est_tokens, usage["prompt_tokens"] - usage.get("cache_read_tokens", 0)
                                + usage["completion_tokens"], est_output, usage["completion_tokens"])
            if records:
                await self._persist(records)
            # counted only now that the response is durable (an invalid answer: paid for, not counted done)
            for r in records:
                pending.pop(r["sample_index"])
            self.stats.count_response(len(records), usage, cost, latency)
            if records:
                self._consecutive_failures = 0
                self._any_success = True
                on_result(ChatRequest(req.messages, [r["sample_index"] for r in records], req.tag), records, None,
                          False)
            if invalid:
                if not await self._retry_invalid(invalid, req, pending, attempt, on_result):
                    return
            else:
                attempt = 0  # samples still pending (a provider with no `n` answers one per request) get their own tries

    async def _retry_or_give_up(self, last: Failure, req: ChatRequest, pending: dict[int, str], attempt: int,
                                refused: int, on_result: OnResult) -> bool:
        """After a failed attempt: True to try again (after the backoff), False when the request is done for."""
        last.message = redact(last.message, self.ep.secrets)
        self.stats.errors[last.kind] += 1
        if refused >= min(REFUSED_ATTEMPTS, self.ep.retry.max_attempts) and not self._any_success:
            # a server that restarts mid-run is retried; one that never accepted a connection is not there
            last.fatal, last.message = True, (
                f"nothing is listening at {self.ep.base_url} ('{self.ep.name}', model {self.ep.model!r}): connection "
                f"refused {refused} times and no request has succeeded; start the server or fix `base_url`")
        if last.fatal:
            self._halt(last.message, fatal=True)
            self.stats.failed += len(pending)
            on_result(req, None, last.message, False)
            return False
        if last.retryable and attempt < self.ep.retry.max_attempts:
            delay = min(self.ep.retry.max_delay_s, self.ep.retry.base_delay_s * 2 ** (attempt - 1))
            delay *= 0.5 + random.random()  # jitter: do not retry in lockstep
            if last.retry_after is not None:
                delay = max(delay, last.retry_after)
                self._cooldown_until = max(self._cooldown_until, time.monotonic() + last.retry_after)
            await self._sleep(delay)
            return True
        self._fail(req, pending, last, attempt, on_result)
        return False

    async def _retry_invalid(self, invalid: list[dict[str, Any]], req: ChatRequest, pending: dict[int, str],
                             attempt: int, on_result: OnResult) -> bool:
        """Answers that do not match the response_format: True to ask again (attempts left), else they fail with
        the validation error."""
        self.stats.errors["invalid_output"] += len(invalid)
        if attempt < self.ep.retry.max_attempts:
            return True  # (a stopped run counts them not_sent at the top of the loop)
        why = invalid[0]["invalid"]
        self._fail(req, pending, Failure("invalid_output", False, False, f"'{self.ep.name}': {why}"), attempt,
                   on_result)
        return False

    async def _persist(self, records: list[dict[str, Any]]) -> None:
        """Group commit: responses that arrive together share one SQLite transaction; each caller resumes only
        after the commit that holds its rows."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes.append((records, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._flush_writes())
        await fut

    async def _flush_writes(self) -> None:
        while self._writes:
            await asyncio.sleep(0)  # let the other responses of this loop turn join the transaction
            batch, self._writes = self._writes, []
            try:
                self.cache.put_many((r["id"], self.ep.name, r["sample_index"], r) for recs, _ in batch for r in recs)
            except BaseException as err:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                raise
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _send(self, client: ChatTransport, messages: list[dict[str, Any]], n: int) -> dict[str, Any]:
        """POST the model's body (transport.py: auth, headers, timeout, error kinds); the JSON as a checked dict."""
        return self.model.check(await client.post(self.model.body(messages, n)))

    def _fail(self, req: ChatRequest, pending: dict[int, str], failure: Failure, attempts: int, on_result: OnResult) -> None:
        self.stats.failed += len(pending)
        self._consecutive_failures += 1
        msg = f"{failure.message} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
        self._last_error = msg
        on_result(ChatRequest(req.messages, list(pending), req.tag), None, msg, False)
        limit = self.ep.retry.max_consecutive_failures
        if self._consecutive_failures >= limit and not self._stop:
            self._halt(f"{self._consecutive_failures} requests in a row failed; stopping the run. Last error: {msg}",
                       fatal=True)
