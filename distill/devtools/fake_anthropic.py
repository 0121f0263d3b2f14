"""A small server on loopback that speaks Anthropic's Messages API wire format, with fault injection.

Stands in for api.anthropic.com in tests: real HTTP, so both our aiohttp transport (online) and the official
`anthropic` SDK (the Message Batches API) are exercised against the real paths, headers and bodies.

    python -m distill.devtools.fake_anthropic --port 0 --log served.jsonl --api-key K --fault overloaded=0.1

Routes: GET /v1/models, POST /v1/messages; POST/GET /v1/messages/batches, GET /v1/messages/batches/{id},
GET .../{id}/results (JSONL), POST .../{id}/cancel. Auth is the `x-api-key` header or a Bearer token
(`--api-key`; else 401), `anthropic-version` is required (else 400). Errors are Anthropic's body:
{"type": "error", "error": {"type": ..., "message": ...}}.
Faults as the OpenAI fake (a probability per attempt, drawn from a hash of the request and attempt):
rate_limit (429 + retry-after), overloaded (529), server_error (500), timeout, drop, malformed (a truncated 200).
`--limits requests=300,input_tokens=..,output_tokens=..` enforces per-minute limits and sends the
`anthropic-ratelimit-*` headers (`--silent-limits`: enforce without the headers).

Answers are deterministic: `Echo: <prompt> The answer is <len>.` A prompt containing `[thinking]` (or a request
with `thinking: {type: enabled}`) gets a thinking block first; `[omitted]` an empty one (thinking display
`omitted`), `[redacted]` a redacted_thinking block; usage reports `output_tokens_details.thinking_tokens`. A system
prompt sent as blocks with `cache_control` is "cached": its first request reports
`cache_creation_input_tokens`, later ones `cache_read_input_tokens`. Batches end `--batch-delay` s after
creation; the first `--batch-hold` batches never end by themselves (only a cancel ends them, with the first
half of their requests answered); `[batch-error]` in a prompt makes that request `errored`;
`--lose-batch-creates N`: the first N batches are created but answered 500.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from distill.devtools.fake_limits import FakeLimits, parse_limits
from distill.devtools.fakeserve import add_common_args, listen, parse_faults, run
from distill.devtools.fake_openai import FakeOpenAI

FAULTS = ("rate_limit", "overloaded", "server_error", "timeout", "drop", "malformed")
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status,
                             headers=headers)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


class FakeAnthropic(FakeOpenAI):
    """Reuses the OpenAI fake's fault draw, attempt counts and request log; Anthropic's wire."""

    def __init__(self, *args: Any, limits: FakeLimits | None = None, batch_hold: int = 0, lose_creates: int = 0,
                 **kw: Any):
        super().__init__(*args, **kw)
        self.lose_creates = lose_creates
        self.limits = limits
        self.batch_hold = batch_hold
        self.cached_systems: set[str] = set()

    def _draw(self, key: str, attempt: int) -> str | None:
        for kind in FAULTS:
            p = self.faults.get(kind, 0.0)
            if p > 0 and int(hashlib.sha256(f"{kind}|{key}|{attempt}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < p:
                return kind
        return None

    def _denied(self, request: web.Request) -> web.Response | None:
        # the key as `x-api-key` (the documented header), or as a Bearer token (what the SDK 2.x sends)
        key = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and key != self.api_key:
            self._log(status=401, kind="unauthorized")
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: String should have at least 1 character"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        if not body.get("messages"):
            return "messages: Field required"
        for k in ("n", "seed", "presence_penalty", "frequency_penalty", "max_completion_tokens"):
            if k in body:
                return f"{k}: Extra inputs are not permitted"
        if any(m.get("role") not in ("user", "assistant") for m in body["messages"]):
            return "messages: roles must be user or assistant (the system prompt is the top-level `system`)"
        return None

    async def messages(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._denied(request)) is not None:
            return denied
        body = await request.json()
        if (bad := self._invalid(body)) is not None:
            return _error(400, "invalid_request_error", bad)
        ident = json.dumps([body.get("system"), body["messages"]], sort_keys=True)
        key = hashlib.sha256(ident.encode()).hexdigest()[:16]
        self.attempts[key] += 1
        attempt = self.attempts[key]
        if self.limits is not None:
            wait = self.limits.admit(self._input_tokens(body))
            if wait is not None:
                self._log(key=key, attempt=attempt, status=429, kind="over_limit")
                return _error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate "
                              "limit", {"retry-after": f"{wait:.3f}", **self.limits.headers()})
        fault = self._draw(key, attempt)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            return await self._fault(request, fault, key, attempt)
        self.served += 1
        msg = self.message(body, f"msg_{key}_{attempt}")
        if self.limits is not None:
            self.limits.charge_output(msg["usage"]["output_tokens"])
        self._log(key=key, attempt=attempt, status=200, kind="ok", prompt=_text(body["messages"][-1]["content"])[:200],
                  system=body.get("system") if isinstance(body.get("system"), str) else _text(body.get("system")),
                  usage=msg["usage"], params={k: v for k, v in body.items() if k not in ("messages", "system")})
        return web.json_response(msg, headers=self.limits.headers() if self.limits else None)

    async def _fault(self, request: web.Request, fault: str, key: str, attempt: int) -> web.StreamResponse:
        self._log(key=key, attempt=attempt, status={"rate_limit": 429, "overloaded": 529, "server_error": 500}.get(
            fault, 0 if fault in ("timeout", "drop") else 200), kind=fault)
        if fault == "rate_limit":
            return _error(429, "rate_limit_error", "rate limited", {"retry-after": str(self.retry_after)})
        if fault == "overloaded":
            return _error(529, "overloaded_error", "Overloaded", {"retry-after": str(self.retry_after)})
        if fault == "server_error":
            return _error(500, "api_error", "Internal server error")
        if fault == "timeout":
            await asyncio.sleep(self.hang_s)
            return _error(504, "timeout_error", "hung")
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError()
        return web.Response(text='{"id": "msg_x", "type": "message", "content": [', content_type="application/json")

    def _input_tokens(self, body: dict[str, Any]) -> int:
        system = body.get("system")
        return len(_text(system).split()) + sum(len(_text(m["content"]).split()) + 4 for m in body["messages"])

    def message(self, body: dict[str, Any], msg_id: str) -> dict[str, Any]:
        """The deterministic Message for a request body (shared by /v1/messages and batches)."""
        prompt = _text(body["messages"][-1]["content"])
        answer = f"Echo: {prompt} The answer is {len(prompt)}."
        if self.completion_tokens is not None:
            answer = " ".join(["tok"] * self.completion_tokens)
        words = answer.split()
        content: list[dict[str, Any]] = []
        out_tok = 0
        if "[thinking]" in prompt or (body.get("thinking") or {}).get("type") == "enabled":
            trace = f"First I think about {prompt[:20]!r}. Then I add."
            content.append({"type": "thinking", "thinking": trace, "signature": "EqQBCkYIARgCIkA" + "x" * 20})
            out_tok += len(trace.split())
        if "[omitted]" in prompt:  # thinking display: omitted -> an empty thinking block with its signature
            content.append({"type": "thinking", "thinking": "", "signature": "EqQBCkYIARgCIkA" + "y" * 20})
            out_tok += 9
        if "[redacted]" in prompt:
            content.append({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"})
            out_tok += 7
        stop = "end_turn"
        room = body["max_tokens"] - out_tok
        if len(words) > room:
            words, stop = words[: max(room, 0)], "max_tokens"
        for s in body.get("stop_sequences") or []:
            text = " ".join(words)
            if s in text:
                words, stop = text[: text.index(s)].split(), "stop_sequence"
                break
        content.append({"type": "text", "text": " ".join(words)})
        out_tok += len(words)
        system = body.get("system")
        in_tok = self._input_tokens(body)
        read = write = 0
        if isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system):
            sys_tok = len(_text(system).split())
            if _text(system) in self.cached_systems:
                read = sys_tok
            else:
                write = sys_tok
                self.cached_systems.add(_text(system))
        return {"id": msg_id, "type": "message", "role": "assistant", "model": body["model"], "content": content,
                "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": in_tok - read - write, "output_tokens": out_tok,
                          "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
                          "output_tokens_details": {"thinking_tokens": out_tok - len(words)}}}

    # -- Message Batches API ---------------------------------------------------------------------------------
    async def create_message_batch(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        body = await request.json()
        reqs = body.get("requests") or []
        if not reqs:
            return _error(400, "invalid_request_error", "requests: List should have at least 1 item")
        seen: set[str] = set()
        for i, r in enumerate(reqs):
            cid = r.get("custom_id")
            if not isinstance(cid, str) or not CUSTOM_ID.match(cid) or cid in seen:
                return _error(400, "invalid_request_error", f"requests.{i}.custom_id: must match "
                              "^[a-zA-Z0-9_-]{1,64}$ and be unique in the batch")
            seen.add(cid)
            if (bad := self._invalid(r.get("params") or {})) is not None:
                return _error(400, "invalid_request_error", f"requests.{i}.params.{bad}")
        now = time.time()
        bid = f"msgbatch_{len(self.batches) + 1:04d}"
        self.batches[bid] = {
            "id": bid, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": _iso(now), "expires_at": _iso(now + 86400), "archived_at": None,
            "cancel_initiated_at": None, "results_url": None,
            "_t0": time.monotonic(), "_requests": reqs, "_held": len(self.batches) < self.batch_hold,
        }
        self._log(kind="batch_create", batch_id=bid, requests=len(reqs))
        if self.lose_creates > 0:  # created, but the answer is lost: a client that retries pays twice
            self.lose_creates -= 1
            return _error(500, "api_error", "Internal server error")
        return web.json_response(self._public(self.batches[bid]))

    def _end(self, b: dict[str, Any], host: str, cancelled: bool) -> None:
        reqs = b["_requests"]
        lines, counts = [], {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for i, r in enumerate(reqs):
            prompt = _text(r["params"]["messages"][-1]["content"])
            if cancelled and i >= len(reqs) // 2:
                result: dict[str, Any] = {"type": "canceled"}
            elif self.batch_expire and i >= len(reqs) // 2:
                result = {"type": "expired"}
            elif "[batch-error]" in prompt:
                result = {"type": "errored", "error": {"type": "error", "error": {"type": "api_error",
                                                                                   "message": "server error"}}}
            else:
                result = {"type": "succeeded", "message": self.message(r["params"], f"msg_{b['id']}_{i}")}
            counts[result["type"]] += 1
            lines.append({"custom_id": r["custom_id"], "result": result})
        b["_results"] = "".join(json.dumps(ln) + "\n" for ln in lines).encode()
        b.update(processing_status="ended", ended_at=_iso(time.time()), request_counts=counts,
                 results_url=f"http://{host}/v1/messages/batches/{b['id']}/results")
        self._log(kind="batch_done", batch_id=b["id"], status="canceled" if cancelled else "ended", **counts)

    def _advance(self, b: dict[str, Any], host: str = "") -> None:  # type: ignore[override]
        if b["processing_status"] == "canceling":
            self._end(b, host, cancelled=True)
        elif b["processing_status"] == "in_progress" and not b["_held"] \
                and time.monotonic() - b["_t0"] >= self.batch_delay:
            self._end(b, host, cancelled=False)

    async def get_message_batch(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return _error(404, "not_found_error", "batch not found")
        self._advance(b, request.host)
        self._log(kind="batch_poll", batch_id=b["id"], status=b["processing_status"])
        return web.json_response(self._public(b))

    async def message_batch_results(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        b = self.batches.get(request.match_info["bid"])
        if b is None or "_results" not in b:
            return _error(404, "not_found_error", "results not available (the batch has not ended)")
        self._log(kind="batch_results", batch_id=b["id"])
        return web.Response(body=b["_results"], content_type="application/binary")

    async def cancel_message_batch(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return _error(404, "not_found_error", "batch not found")
        if b["processing_status"] == "in_progress":
            b.update(processing_status="canceling", cancel_initiated_at=_iso(time.time()))
        self._log(kind="batch_cancel", batch_id=b["id"], status=b["processing_status"])
        return web.json_response(self._public(b))

    async def list_message_batches(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        data = [self._public(b) for b in reversed(self.batches.values())]
        return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def list_models(self, request: web.Request) -> web.Response:
        if (denied := self._denied(request)) is not None:
            return denied
        data = [{"type": "model", "id": m, "display_name": m, "created_at": _iso(0)}
                for m in ("claude-sonnet-4-5", "claude-3-7-sonnet-20250219")]
        return web.json_response({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/batches", self.create_message_batch)
        app.router.add_get("/v1/messages/batches", self.list_message_batches)
        app.router.add_get("/v1/messages/batches/{bid}", self.get_message_batch)
        app.router.add_get("/v1/messages/batches/{bid}/results", self.message_batch_results)
        app.router.add_post("/v1/messages/batches/{bid}/cancel", self.cancel_message_batch)
        return app


async def serve(args: argparse.Namespace) -> None:
    limits = FakeLimits(parse_limits(args.limits), "anthropic", advertise=not args.silent_limits) if args.limits else None
    fake = FakeAnthropic(args.latency, parse_faults(args.fault, FAULTS), args.api_key, args.log, args.hang,
                         args.retry_after, args.completion_tokens, batch_delay=args.batch_delay,
                         batch_expire=args.batch_expire, limits=limits, batch_hold=args.batch_hold,
                         lose_creates=args.lose_batch_creates)
    await listen(fake.app(), args.port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, limit_dims="requests=N,input_tokens=N,output_tokens=N (anthropic-ratelimit-*)")
    args = ap.parse_args()
    run(lambda: serve(args))


if __name__ == "__main__":
    main()
