"""The OpenAI Batch API as a collection mode: same cache, same records, half the price.

Why the state file: a batch costs money and takes hours, so it must never be submitted twice. Every step is
recorded in `<run_dir>/collect-batches/<teacher>.json` before the next one: the request file is written, then
uploaded (file id saved), then the batch created (batch id saved). A killed run resumes by polling the recorded
batches; a batch created but not yet recorded is found again by its input file id. Results are committed to the
cache before a chunk is marked done. Failed and expired items fall back to a new batch, to online requests, or
are reported (config).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from distill.errors import DistillError, redact
from distill.llm.budget import Budget
from distill.llm.cache import ResponseCache, sample_key
from distill.llm.parse import usage_fields
from distill.llm.request import ChatRequest, OnResult, RequestModel, RunStats
from distill.llm.runner import ChatRunner
from distill.rundir import write_json
from distill.schema import Section

TERMINAL = {"completed", "failed", "expired", "cancelled"}
# statuses (OpenAI's and Anthropic's) that show a cancel reached the provider
CANCEL_SEEN = {"cancelling", "cancelled", "canceling", "ended"}


class BatchConfig(Section):
    poll_interval_s: float = Field(default=30.0, gt=0, description="seconds between polls")
    completion_window: str = Field(default="24h", description="sent when creating a batch")
    max_requests_per_batch: int = Field(default=50_000, gt=0, description="requests per batch file, under the API's "
                                                                          "limit")
    max_bytes_per_batch: int = Field(default=190_000_000, gt=0,
                                     description="bytes per batch file, under the API's limit")
    fallback: Literal["batch", "online", "none"] = Field(default="online",
                                                         description="failed or expired items: `batch` (a new "
                                                                     "batch), `online`, or `none`")
    max_resubmits: int = Field(default=1, ge=0, description="new batches for failed items")


class BatchRunner:
    """The batch executor: the same requests as the online `ChatRunner` (same body, cache keys, records, worst
    case), sent as Batch API files and polled; failed items go to a new batch, online, or to `on_result` as
    failures (config). State: `state_path` (see above); results go into the cache before a chunk is done."""

    def __init__(self, model: RequestModel, cache: ResponseCache, *, budget: Budget | None, cfg: BatchConfig,
                 state_path: Path, describe: Callable[[ChatRequest], str] = lambda r: repr(r.tag),
                 on_poll: Callable[[dict[str, Any]], None] = lambda st: None):
        self.online = ChatRunner(model, cache, budget=budget)  # the online fallback: same model, budget, stats
        self.model, self.ep, self.price, self.cache = model, model.endpoint, model.price, cache
        self.budget, self.stats = self.online.budget, self.online.stats
        self.describe = describe
        self.on_poll = on_poll
        self.cfg = cfg
        self.state_path = state_path
        self.dir = state_path.parent
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {"chunks": []}
        self.client = self._make_client()
        self.failed_items: list[tuple[str, str]] = []  # (custom_id, error)
        self.cancelled_items: list[str] = []  # custom ids a batch we cancelled never ran: submitted again
        self._requests: dict[str, ChatRequest] = {}

    def _make_client(self) -> Any:
        import openai  # here, not at import (start-up time)

        ep = self.ep
        return openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key.get_secret_value(), max_retries=4,
                             timeout=ep.timeout_s, default_headers=ep.headers or None)

    # -- the run ---------------------------------------------------------------------------------------------
    async def run(self, requests: Iterable[ChatRequest], on_result: OnResult) -> RunStats:
        """Submit the cache misses (or resume the batches a killed run recorded), poll until every batch is
        done, then handle failed items per `fallback`."""
        self.advance_submissions()  # what a killed run recorded but did not submit
        self.submit(self._to_submit(requests, on_result))
        generation = 0
        while True:
            while self.poll(on_result)["active"]:
                await asyncio.sleep(self.cfg.poll_interval_s)
            cancelled = self.take_cancelled()
            if cancelled:  # `--cancel-batches` stopped them: what never ran goes out again, as a batch
                self.submit(cancelled, generation)
                continue
            failed = self.take_failed()
            if not failed:
                return self.stats
            if self.cfg.fallback == "batch" and generation < self.cfg.max_resubmits:
                generation += 1
                self.submit(failed, generation)
                continue
            if self.cfg.fallback == "online":
                before = self.stats.requests_total, self.stats.from_cache
                await self.online.run(failed, on_result)
                # the fallback re-asks requests already counted once
                self.stats.requests_total, self.stats.from_cache = before
            else:
                for req in failed:
                    self.stats.failed += len(req.samples)
                    on_result(req, None, "failed in batch (fallback: none)", False)
            return self.stats

    def _to_submit(self, requests: Iterable[ChatRequest], on_result: OnResult) -> list[ChatRequest]:
        """The requests (sample indices) not cached, not already in a recorded batch, and within the budget."""
        in_flight = self.in_flight_request_keys()
        todo: list[ChatRequest] = []
        for req in requests:
            keys = self.model.sample_keys(req.messages, req.samples)
            hit = self.cache.get_many(keys)
            self.stats.requests_total += len(keys)
            self.stats.from_cache += len(hit)
            if hit:
                on_result(ChatRequest(req.messages, [r["sample_index"] for r in hit.values()], req.tag),
                          list(hit.values()), None, True)
            missing = [i for i, k in zip(req.samples, keys, strict=True) if k not in hit]
            if not missing:
                continue
            sub = ChatRequest(req.messages, missing, req.tag)
            self.register([sub])
            if self.model.request_key(req.messages) in in_flight:
                continue
            worst = self.model.worst_case_usd(self.model.full_messages(req.messages), len(missing), batch=True)
            ticket = self.budget.reserve(worst)
            if ticket is None:  # the budget cap holds for batches too
                self.stats.not_sent += len(missing)
                self.stats.stopped = f"budget_usd {self.budget.limit} reached before every request could be batched"
                continue
            # a batch's cost arrives hours later, maybe in another process: the ledger keeps its worst case
            self.budget.settle(ticket, worst)
            todo.append(sub)
        return todo

    # -- state -----------------------------------------------------------------------------------------------
    def _save(self) -> None:
        write_json(self.state_path, self.state)

    @property
    def active(self) -> list[dict[str, Any]]:
        return [c for c in self.state["chunks"] if c["state"] != "done"]

    def register(self, requests: list[ChatRequest]) -> None:
        """Make requests known by custom id (also those submitted by an earlier, killed run)."""
        for req in requests:
            self._requests[self._custom_id(req)] = req

    def in_flight_request_keys(self) -> set[str]:
        """Request keys in chunks not yet done: never to be submitted again."""
        keys: set[str] = set()
        for c in self.active:
            for line in (self.dir / c["file"]).read_text(encoding="utf-8").splitlines():
                keys.add(json.loads(line)["custom_id"].rpartition("|")[0])
        return keys

    def _custom_id(self, req: ChatRequest) -> str:
        return f"{self.model.request_key(req.messages)}|{','.join(map(str, req.samples))}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import openai

        ep = self.ep
        try:
            return fn()
        except openai.AuthenticationError:
            raise DistillError(f"401 Unauthorized from '{ep.name}' ({ep.base_url}) during {what}: "
                               f"check `api_key` of '{ep.name}'") from None
        except openai.APIError as e:
            raise DistillError(redact(f"Batch API {what} failed for '{ep.name}': {e}", ep.secrets)) from None

    # -- submit ----------------------------------------------------------------------------------------------
    def submit(self, requests: list[ChatRequest], generation: int = 0) -> int:
        """Write and submit new chunks for `requests` (cache misses); returns how many requests were queued."""
        self.register(requests)
        if not requests:
            return 0
        chunk: list[str] = []
        size = 0
        chunks: list[list[str]] = []
        for req in requests:
            body = self.model.body(self.model.full_messages(req.messages), len(req.samples))
            line = json.dumps({"custom_id": self._custom_id(req), "method": "POST", "url": "/v1/chat/completions",
                               "body": body}, ensure_ascii=False)
            b = len(line.encode()) + 1
            if chunk and (len(chunk) >= self.cfg.max_requests_per_batch or size + b > self.cfg.max_bytes_per_batch):
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += b
        if chunk:
            chunks.append(chunk)
        for lines in chunks:
            i = len(self.state["chunks"])
            path = self.dir / f"{self.ep.name}-{i:04d}.jsonl"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.state["chunks"].append({"chunk": i, "file": path.name, "requests": len(lines), "state": "prepared",
                                         "generation": generation, "file_id": None, "batch_id": None, "status": None})
            self._save()
        self.advance_submissions()
        return len(requests)

    def advance_submissions(self) -> None:
        """Upload and create whatever is recorded but not yet submitted (also what a killed run left)."""
        for c in self.active:
            if c["state"] == "prepared":
                content = (self.dir / c["file"]).read_bytes()
                f = self._call("file upload", lambda: self.client.files.create(file=(c["file"], content), purpose="batch"))
                c.update(file_id=f.id, state="uploaded")
                self._save()
            if c["state"] == "uploaded":
                existing = self._find_batch(c["file_id"])
                if existing is None:
                    existing = self._call("batch create", lambda: self._create(c))
                c.update(batch_id=existing.id, state="submitted", status=existing.status)
                self._save()

    def _create(self, c: dict[str, Any]) -> Any:
        """Create the chunk's batch without SDK retries: a create that failed (timeout, 5xx) may have happened,
        and a retry would pay twice; look for it by its input file first."""
        import openai

        try:
            return self.client.with_options(max_retries=0).batches.create(
                input_file_id=c["file_id"], endpoint="/v1/chat/completions",
                completion_window=self.cfg.completion_window,  # type: ignore[arg-type]
                metadata={"distill_chunk": f"{self.ep.name}-{c['chunk']}"})
        except openai.APIError:
            found = self._find_batch(c["file_id"])
            if found is not None:
                return found
            raise

    def _find_batch(self, file_id: str) -> Any:
        page = self._call("batch list", lambda: self.client.batches.list(limit=100))
        for b in page.data:
            if b.input_file_id == file_id:
                return b
        return None

    # -- poll and collect ------------------------------------------------------------------------------------
    def poll(self, on_result: OnResult) -> dict[str, Any]:
        """One round: retrieve every submitted batch; download and store finished ones (`on_result` is told of
        their answers). Returns counts, also given to `on_poll`."""
        done = total = 0
        for c in self.state["chunks"]:
            total += c["requests"]
            if c["state"] == "done":
                done += c["requests"]
                continue
            if c["state"] != "submitted":
                continue
            b, c["status"], ended, finished = self._retrieve(c)
            if ended:
                self._finish(c, b, on_result)
                done += c["requests"]
            else:
                done += finished
        st = {"done": done, "total": total, "active": len(self.active),
              "statuses": " ".join(str(c["status"]) for c in self.active)}
        self.on_poll(st)
        return st

    def _retrieve(self, c: dict[str, Any]) -> tuple[Any, str, bool, int]:
        """(batch, status, whether it ended, requests finished so far) of a submitted chunk, in the provider's
        words: the one part of polling that differs between batch APIs."""
        b = self._call("batch retrieve", lambda: self.client.batches.retrieve(c["batch_id"]))
        counts = b.request_counts
        return b, b.status, b.status in TERMINAL, (counts.completed + counts.failed) if counts is not None else 0

    def _rejected(self, c: dict[str, Any], b: Any) -> DistillError:
        """A batch the server refused as a whole: the error names the prompts and fields it objected to."""
        lines = (self.dir / c["file"]).read_text(encoding="utf-8").splitlines()
        msgs = []
        for e in b.errors.data[:5]:
            cid = json.loads(lines[e.line - 1])["custom_id"] if e.line and 0 < e.line <= len(lines) else "?"
            req = self._requests.get(cid)
            who = f"prompt {self.describe(req)}" if req is not None else f"custom_id {cid[:16]}…"
            msgs.append(f"line {e.line} ({who}): {e.param}: {e.message}")
        c.update(state="done", status="rejected")
        self._save()
        return DistillError(f"batch {b.id} for '{self.ep.name}' was rejected by the server ({c['file']}): "
                            + "; ".join(msgs))

    def _finish(self, c: dict[str, Any], b: Any, on_result: OnResult) -> None:
        if b.status == "failed" and b.errors and b.errors.data:
            raise self._rejected(c, b)
        results: list[dict[str, Any]] = []
        for fid in (b.output_file_id, b.error_file_id):
            if fid:
                text = self._call("result download", lambda fid=fid: self.client.files.content(fid).text)
                results += [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        answered: set[str] = set()
        records_by_cid: dict[str, tuple[list[dict[str, Any]], dict[str, int], float]] = {}
        for r in results:
            cid = r.get("custom_id", "")
            resp = r.get("response") or {}
            if resp.get("status_code") == 200 and isinstance(resp.get("body"), dict) and resp["body"].get("choices"):
                recs = self._records(cid, resp["body"], b.id)
                valid, invalid = self.model.split_invalid(recs)
                records_by_cid[cid] = valid, usage_fields(resp["body"].get("usage")), sum(x["cost_usd"] for x in recs)
                if invalid:  # not matching the response_format: asked again like a failed item (valid ones cached)
                    self.stats.errors["invalid_output"] += len(invalid)
                    self.failed_items.append((cid, invalid[0]["invalid"]))
                answered.add(cid)
            else:
                err = r.get("error") or (resp.get("body") or {}).get("error") or {}
                kind = err.get("code") or f"http_{resp.get('status_code')}"
                self.stats.errors[f"batch_{kind}"] += 1
                self.failed_items.append((cid, str(err.get("message") or kind)))
                answered.add(cid)
        # requests the batch never reported on (cancelled, or expired without an error line) fail too, unless we
        # cancelled the batch ourselves: those are submitted again
        for line in (self.dir / c["file"]).read_text(encoding="utf-8").splitlines():
            cid = json.loads(line)["custom_id"]
            if cid not in answered:
                self._unanswered(c, cid, str(b.status))
        self.cache.put_many((x["id"], self.ep.name, x["sample_index"], x)
                            for recs, _, _ in records_by_cid.values() for x in recs)
        c.update(state="done", status=b.status)
        self._save()
        # counted and told only now that the records are durable
        for cid, (recs, usage, cost) in records_by_cid.items():
            self.stats.count_response(len(recs), usage, cost, None)
            req = self._requests.get(cid)
            if req is not None and recs:
                on_result(ChatRequest(req.messages, [x["sample_index"] for x in recs], req.tag), recs, None, False)

    def _records(self, cid: str, body: dict[str, Any], batch_id: str) -> list[dict[str, Any]]:
        rk, _, samples = cid.rpartition("|")
        pending = {int(i): sample_key(rk, int(i)) for i in samples.split(",") if i}
        return self.model.records(body, pending, latency=None, attempts=1, batch_id=batch_id)

    def _unanswered(self, c: dict[str, Any], cid: str, status: str) -> None:
        """An item a finished batch did not run: cancelled by us (sent again) or failed (the fallback's)."""
        if c.get("cancelled_at"):
            self.cancelled_items.append(cid)
        else:
            self.stats.errors[f"batch_{status}"] += 1
            self.failed_items.append((cid, f"batch {status}"))

    def take_cancelled(self) -> list[ChatRequest]:
        """The items of batches we cancelled that never ran, as requests of this run (others are dropped: a
        changed config asks other requests), clearing the list."""
        out = [self._requests[cid] for cid in self.cancelled_items if cid in self._requests]
        self.cancelled_items = []
        return out

    # -- cancel ----------------------------------------------------------------------------------------------
    def cancel(self) -> list[dict[str, Any]]:
        """`collect --cancel-batches`: cancel every submitted batch not yet finished, recording it in the state
        file first (a re-run then collects what finished and submits the rest again). Returns what was done."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        done = []
        for c in self.active:
            if c.get("cancelled_at") and c.get("status") in CANCEL_SEEN:
                continue  # cancelled already (a cancel killed before its answer was recorded is sent again)
            if self._cancel_unsent(c):  # never created: nothing to cancel remotely, its requests go out again
                c.update(state="done", status="cancelled before submission", cancelled_at=now)
                self._save()
                done.append({"chunk": c["chunk"], "batch_id": None, "status": c["status"]})
                continue
            c["cancelled_at"] = now  # recorded before acting: a killed cancel is still known as ours
            self._save()
            status = self._cancel_remote(c)
            c["status"] = status
            self._save()
            done.append({"chunk": c["chunk"], "batch_id": c["batch_id"], "status": status})
        return done

    def _cancel_unsent(self, c: dict[str, Any]) -> bool:
        """True when the chunk has no batch on the server (after looking for one a killed run created)."""
        if c["state"] == "uploaded" and c.get("batch_id") is None:
            found = self._find_batch(c["file_id"])
            if found is not None:
                c.update(batch_id=found.id, state="submitted", status=found.status)
                self._save()
        return c["state"] not in ("submitted",)

    def _cancel_remote(self, c: dict[str, Any]) -> str:
        return str(self._call("batch cancel", lambda: self.client.batches.cancel(c["batch_id"])).status)

    def take_failed(self) -> list[ChatRequest]:
        """The failed items as requests (for a fallback), clearing the list."""
        out = [self._requests[cid] for cid, _ in self.failed_items if cid in self._requests]
        self.failed_items = []
        return out
