"""Anthropic's Message Batches API as `mode: batch`: the guarantees of the OpenAI `BatchRunner`, its wire.

The same state file (`collect-batches/<teacher>.json`), recorded before every external step, so a batch is
never paid for twice: the requests are written to a chunk file (state `prepared`), then a nonce and the time
are recorded (`creating`) and the batch created through the official `anthropic` SDK (`submitted`, batch id
saved); a killed run resumes by polling. The API has no input file to find a batch by, so a batch created but
not yet recorded is found again among the listed batches created since the recorded time with the same number
of requests, and checked when its results arrive: every request's custom_id carries the chunk's nonce (the
API allows 64 characters of [a-zA-Z0-9_-], too few for our request keys, which stay in the chunk file).
One request per sample (the API has no `n`). Results are committed to the cache before the chunk is done,
priced at the batch discount; errored and expired requests go to the configured fallback; requests of a batch
we cancelled (`collect --cancel-batches`) that never ran are submitted again.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from distill.errors import DistillError, redact
from distill.llm.batch import BatchRunner
from distill.llm.request import ChatRequest, OnResult


class AnthropicBatchRunner(BatchRunner):
    """`BatchRunner` over /v1/messages/batches; run/fallbacks/budget/state handling are the base's."""

    def _make_client(self) -> Any:
        try:
            import anthropic  # here, not at import (start-up time)
        except ImportError:
            raise DistillError(f"'{self.ep.name}': mode: batch with provider: anthropic uses the `anthropic` SDK, "
                               "which is not installed: pip install 'distill[anthropic]'") from None

        ep = self.ep
        # the endpoint's API version for both paths (the SDK would send its own), so batch and online answers
        # have one shape
        return anthropic.Anthropic(api_key=ep.api_key.get_secret_value(), base_url=ep.base_url, max_retries=4,
                                   timeout=ep.timeout_s,
                                   default_headers={"anthropic-version": ep.anthropic_version, **ep.headers})

    def register(self, requests: list[ChatRequest]) -> None:
        """Known by custom id per sample too: each sample is its own batch request."""
        super().register(requests)
        for req in requests:
            rk = self.model.request_key(req.messages)
            for i in req.samples:
                self._requests[f"{rk}|{i}"] = ChatRequest(req.messages, [i], req.tag)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import anthropic

        try:
            return fn()
        except anthropic.APIError as e:
            raise self._api_error(what, e) from None

    def _api_error(self, what: str, e: Exception) -> DistillError:
        import anthropic

        ep = self.ep
        if isinstance(e, anthropic.AuthenticationError):
            return DistillError(f"401 Unauthorized from '{ep.name}' ({ep.base_url}) during {what}: "
                                f"check `api_key` of '{ep.name}'")
        return DistillError(redact(f"Message Batches API {what} failed for '{ep.name}': {e}", ep.secrets))

    # -- submit ----------------------------------------------------------------------------------------------
    def submit(self, requests: list[ChatRequest], generation: int = 0) -> int:
        self.register(requests)
        if not requests:
            return 0
        chunks: list[list[str]] = [[]]
        size = 0
        for req in requests:
            params = self.model.body(self.model.full_messages(req.messages), 1)
            rk = self.model.request_key(req.messages)
            for i in req.samples:
                line = json.dumps({"custom_id": f"{rk}|{i}", "params": params}, ensure_ascii=False)
                b = len(line.encode()) + 1
                if chunks[-1] and (len(chunks[-1]) >= self.cfg.max_requests_per_batch
                                   or size + b > self.cfg.max_bytes_per_batch):
                    chunks.append([])
                    size = 0
                chunks[-1].append(line)
                size += b
        for lines in chunks:
            i = len(self.state["chunks"])
            path = self.dir / f"{self.ep.name}-{i:04d}.jsonl"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            self.state["chunks"].append({"chunk": i, "file": path.name, "requests": len(lines), "state": "prepared",
                                         "generation": generation, "nonce": None, "created_after": None,
                                         "batch_id": None, "status": None, "api": "anthropic"})
            self._save()
        self.advance_submissions()
        return len(requests)

    def advance_submissions(self) -> None:
        for c in self.active:
            fresh = c["state"] == "prepared"
            if fresh:
                c.update(state="creating", nonce=secrets.token_hex(4), created_after=time.time() - 120)
                self._save()
            if c["state"] == "creating":
                found = None if fresh else self._find_created(c)  # only a killed run may have created it
                if found is None:
                    found = self._create(c)
                c.update(batch_id=found.id, state="submitted", status=found.processing_status)
                self._save()

    def _lines(self, c: dict[str, Any]) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in (self.dir / c["file"]).read_text(encoding="utf-8").splitlines()]

    def _create(self, c: dict[str, Any]) -> Any:
        import anthropic

        lines = self._lines(c)
        reqs = [{"custom_id": f"{c['nonce']}-{j}", "params": ln["params"]} for j, ln in enumerate(lines)]
        try:
            # no SDK retries here: a create that timed out may have happened, and a retry would pay twice
            return self.client.with_options(max_retries=0).messages.batches.create(requests=reqs)
        except anthropic.BadRequestError as e:  # refused as a whole: say which request and field, never retry it
            c.update(state="done", status="rejected")
            self._save()
            msg = str(getattr(e, "message", e))
            m = re.search(r"requests\.(\d+)\.?([\w.]*)", msg)
            where = ""
            if m and int(m.group(1)) < len(lines):
                req = self._requests.get(lines[int(m.group(1))]["custom_id"])
                who = f"prompt {self.describe(req)}" if req is not None else "a request of an earlier run"
                where = f"line {int(m.group(1)) + 1} ({who}): "
            raise DistillError(redact(f"batch for '{self.ep.name}' was rejected by the server ({c['file']}): "
                                      f"{where}{msg}", self.ep.secrets)) from None
        except anthropic.APIError as e:  # maybe created after all: look now; else the chunk stays `creating`
            found = self._find_created(c)  # and the next run looks again before creating it
            if found is not None:
                return found
            raise self._api_error("batch create", e) from None

    def _find_created(self, c: dict[str, Any]) -> Any:
        """A batch a killed run created before recording it: created since `created_after`, same size."""
        page = self._call("batch list", lambda: self.client.messages.batches.list(limit=100))
        ours = {x["batch_id"] for x in self.state["chunks"] if x.get("batch_id")}
        for b in page.data:
            if b.id in ours:
                continue
            counts = b.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            if b.created_at.timestamp() >= c["created_after"] and total == c["requests"]:
                return b
        return None

    # -- poll and collect ------------------------------------------------------------------------------------
    def _retrieve(self, c: dict[str, Any]) -> tuple[Any, str, bool, int]:
        b = self._call("batch retrieve", lambda: self.client.messages.batches.retrieve(c["batch_id"]))
        n = b.request_counts
        return (b, b.processing_status, b.processing_status == "ended",
                n.succeeded + n.errored + n.canceled + n.expired)

    def _finish(self, c: dict[str, Any], b: Any, on_result: OnResult) -> None:
        by_sent = {f"{c['nonce']}-{j}": ln["custom_id"] for j, ln in enumerate(self._lines(c))}
        results = self._call("results download",
                             lambda: [r.model_dump(mode="json") for r in self.client.messages.batches.results(b.id)])
        answered: set[str] = set()
        records_by_cid: dict[str, tuple[list[dict[str, Any]], dict[str, int], float]] = {}
        for r in results:
            cid = by_sent.get(r["custom_id"])
            if cid is None:
                raise DistillError(
                    f"batch {b.id} for '{self.ep.name}' holds a request this run never submitted (custom_id "
                    f"{r['custom_id']!r}): the batch found again after a restart is not ours; remove chunk "
                    f"{c['chunk']} from {self.state_path} to submit its requests anew")
            res = r["result"]
            answered.add(cid)
            kind = res.get("type")
            if kind == "succeeded":
                msg = res["message"]
                recs = self._records(cid, msg, b.id)
                valid, invalid = self.model.split_invalid(recs)
                records_by_cid[cid] = valid, self.model.usage(msg), sum(x["cost_usd"] for x in recs)
                if invalid:  # not matching the response_format: asked again like a failed item (paid for)
                    self.stats.errors["invalid_output"] += len(invalid)
                    self.failed_items.append((cid, invalid[0]["invalid"]))
            elif kind == "canceled":
                self._unanswered(c, cid, "canceled")
            else:
                err = ((res.get("error") or {}).get("error") or {}) if kind == "errored" else {}
                what = err.get("type") or str(kind)
                self.stats.errors[f"batch_{what}"] += 1
                self.failed_items.append((cid, str(err.get("message") or what)))
        for cid in by_sent.values():
            if cid not in answered:
                self._unanswered(c, cid, "missing")
        self.cache.put_many((x["id"], self.ep.name, x["sample_index"], x)
                            for recs, _, _ in records_by_cid.values() for x in recs)
        c.update(state="done", status="ended")
        self._save()
        for cid, (recs, usage, cost) in records_by_cid.items():  # counted and told only now that they are durable
            self.stats.count_response(len(recs), usage, cost, None)
            req = self._requests.get(cid)
            if req is not None and recs:
                on_result(ChatRequest(req.messages, [x["sample_index"] for x in recs], req.tag), recs, None, False)

    # -- cancel ----------------------------------------------------------------------------------------------
    def _cancel_unsent(self, c: dict[str, Any]) -> bool:
        if c["state"] == "creating":
            found = self._find_created(c)
            if found is not None:
                c.update(batch_id=found.id, state="submitted", status=found.processing_status)
                self._save()
        return c["state"] != "submitted"

    def _cancel_remote(self, c: dict[str, Any]) -> str:
        b = self._call("batch cancel", lambda: self.client.messages.batches.cancel(c["batch_id"]))
        return str(b.processing_status)
