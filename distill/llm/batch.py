"""The OpenAI Batch API as a collection mode: same cache, same records, half the price.

Why the state file: a batch costs money and takes hours, so it must never be submitted twice. Every step is
recorded in `<run_dir>/collect-batches/<teacher>.json` before the next one: the request file is written, then
uploaded (file id saved), then the batch created (batch id saved). A killed run resumes by polling the recorded
batches; a batch created but not yet recorded is found again by its input file id. Results are committed to the
cache before a chunk is marked done. Failed and expired items fall back to a new batch, to online requests, or
are reported (config).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import openai
from pydantic import Field

from distill.errors import DistillError, redact
from distill.llm.cache import sample_key
from distill.llm.parse import usage_fields
from distill.llm.runner import ChatRequest, ChatRunner
from distill.rundir import write_json
from distill.schema import Section

TERMINAL = {"completed", "failed", "expired", "cancelled"}


class BatchConfig(Section):
    poll_interval_s: float = Field(default=30.0, gt=0)
    completion_window: str = "24h"
    max_requests_per_batch: int = Field(default=50_000, gt=0, description="OpenAI's limit is 50,000")
    max_bytes_per_batch: int = Field(default=190_000_000, gt=0, description="OpenAI's limit is 200 MB per file")
    fallback: Literal["batch", "online", "none"] = Field(
        default="online", description="what happens to failed or expired items: a new batch, online requests, or nothing")
    max_resubmits: int = Field(default=1, ge=0, description="new batches for failed items (fallback: batch)")


class BatchCollector:
    """Drives the batches of one teacher; results go into the runner's cache and stats."""

    def __init__(self, runner: ChatRunner, state_path: Path, cfg: BatchConfig,
                 describe: Callable[[ChatRequest], str] = lambda r: repr(r.tag)):
        self.runner = runner
        self.describe = describe
        self.cfg = cfg
        self.state_path = state_path
        self.dir = state_path.parent
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {"chunks": []}
        ep = runner.ep
        self.client = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key.get_secret_value(), max_retries=4,
                                    timeout=ep.timeout_s, default_headers=ep.headers or None)
        self.failed_items: list[tuple[str, str]] = []  # (custom_id, error)
        self._requests: dict[str, ChatRequest] = {}

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
        return f"{self.runner.request_key(req.messages)}|{','.join(map(str, req.samples))}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except openai.AuthenticationError:
            raise DistillError(f"401 Unauthorized from '{self.runner.ep.name}' ({self.runner.ep.base_url}) during {what}: "
                               f"check `api_key` of '{self.runner.ep.name}'") from None
        except openai.APIError as e:
            raise DistillError(redact(f"Batch API {what} failed for '{self.runner.ep.name}': {e}", self.runner.ep.secrets)) from None

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
            body = {"model": self.runner.ep.model, "messages": self.runner.full_messages(req.messages), **self.runner._body}
            if len(req.samples) > 1:
                body["n"] = len(req.samples)
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
            path = self.dir / f"{self.runner.ep.name}-{i:04d}.jsonl"
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
                    existing = self._call("batch create", lambda: self.client.batches.create(
                        input_file_id=c["file_id"], endpoint="/v1/chat/completions",
                        completion_window=self.cfg.completion_window,  # type: ignore[arg-type]
                        metadata={"distill_chunk": f"{self.runner.ep.name}-{c['chunk']}"}))
                c.update(batch_id=existing.id, state="submitted", status=existing.status)
                self._save()

    def _find_batch(self, file_id: str) -> Any:
        page = self._call("batch list", lambda: self.client.batches.list(limit=100))
        for b in page.data:
            if b.input_file_id == file_id:
                return b
        return None

    # -- poll and collect ------------------------------------------------------------------------------------
    def poll(self) -> dict[str, int]:
        """One round: retrieve every submitted batch; download and store finished ones. Returns counts."""
        done = total = 0
        for c in self.state["chunks"]:
            total += c["requests"]
            if c["state"] == "done":
                done += c["requests"]
                continue
            if c["state"] != "submitted":
                continue
            b = self._call("batch retrieve", lambda: self.client.batches.retrieve(c["batch_id"]))
            c["status"] = b.status
            counts = b.request_counts
            if b.status in TERMINAL:
                self._finish(c, b)
                done += c["requests"]
            elif counts is not None:
                done += counts.completed + counts.failed
        return {"done": done, "total": total}

    def _finish(self, c: dict[str, Any], b: Any) -> None:
        if b.status == "failed" and b.errors and b.errors.data:
            lines = (self.dir / c["file"]).read_text(encoding="utf-8").splitlines()
            msgs = []
            for e in b.errors.data[:5]:
                cid = json.loads(lines[e.line - 1])["custom_id"] if e.line and 0 < e.line <= len(lines) else "?"
                req = self._requests.get(cid)
                who = f"prompt {self.describe(req)}" if req is not None else f"custom_id {cid[:16]}…"
                msgs.append(f"line {e.line} ({who}): {e.param}: {e.message}")
            c.update(state="done", status="rejected")
            self._save()
            raise DistillError(f"batch {b.id} for '{self.runner.ep.name}' was rejected by the server "
                               f"({c['file']}): " + "; ".join(msgs))
        results: list[dict[str, Any]] = []
        for fid in (b.output_file_id, b.error_file_id):
            if fid:
                text = self._call("result download", lambda fid=fid: self.client.files.content(fid).text)
                results += [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        answered: set[str] = set()
        records_all: list[dict[str, Any]] = []
        for r in results:
            cid = r.get("custom_id", "")
            resp = r.get("response") or {}
            if resp.get("status_code") == 200 and isinstance(resp.get("body"), dict) and resp["body"].get("choices"):
                records_all += self._store(cid, resp["body"], b.id)
                answered.add(cid)
            else:
                err = r.get("error") or (resp.get("body") or {}).get("error") or {}
                kind = err.get("code") or f"http_{resp.get('status_code')}"
                self.runner.stats.errors[f"batch_{kind}"] += 1
                self.failed_items.append((cid, str(err.get("message") or kind)))
                answered.add(cid)
        # requests the batch never reported on (cancelled, or expired without an error line) fail too
        for line in (self.dir / c["file"]).read_text(encoding="utf-8").splitlines():
            cid = json.loads(line)["custom_id"]
            if cid not in answered:
                self.runner.stats.errors[f"batch_{b.status}"] += 1
                self.failed_items.append((cid, f"batch {b.status}"))
        self.runner.cache.put_many((x["id"], self.runner.ep.name, x["sample_index"], x) for x in records_all)
        c.update(state="done", status=b.status)
        self._save()

    def _store(self, cid: str, body: dict[str, Any], batch_id: str) -> list[dict[str, Any]]:
        rk, _, samples = cid.rpartition("|")
        pending = {int(i): sample_key(rk, int(i)) for i in samples.split(",") if i}
        usage = usage_fields(body.get("usage"))
        recs = self.runner._records(body, usage, pending, latency=0.0, attempts=1)
        discount = self.runner.price.batch_discount
        for x in recs:
            x["cost_usd"] *= discount
            x["latency_s"] = None
            x["batch_id"] = batch_id
        self.runner.stats.count_response(len(recs), usage, sum(x["cost_usd"] for x in recs), None)
        return recs

    def take_failed(self) -> list[ChatRequest]:
        """The failed items as requests (for a fallback), clearing the list."""
        out = [self._requests[cid] for cid, _ in self.failed_items if cid in self._requests]
        self.failed_items = []
        return out
