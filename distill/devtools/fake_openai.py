"""A small OpenAI-compatible chat server on loopback that can inject faults and logs every request it served.

Stands in for a paid API in tests and benchmarks; it speaks real HTTP, so the real `openai` client is exercised.

    python -m distill.devtools.fake_openai --port 0 --log served.jsonl --latency 0.2 --fault rate_limit=0.1

Faults (each a probability per attempt, drawn from a hash of the prompt and its attempt number, so runs are
reproducible and every prompt eventually succeeds): rate_limit (429 + Retry-After), server_error (500),
timeout (hangs), drop (connection closed mid-request), malformed (200 with a broken JSON body),
empty_choices (200 with `choices: []`). `--api-key K` makes any other key get 401.
The first line printed is `PORT <n>`. Answers are deterministic: `Echo: <prompt> The answer is <len>.`
A prompt containing `[reasoning:SHAPE]` gets a reasoning trace in that provider shape: reasoning_content
(DeepSeek, older vLLM), reasoning (vLLM >= 0.11, OpenRouter), details (OpenRouter reasoning_details),
summary (a summarized trace), encrypted (redacted), think (inline `<think>` in content), unknown (a field no
client knows); usage then reports `completion_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import sys
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

FAULTS = ("rate_limit", "server_error", "timeout", "drop", "malformed", "empty_choices")


class FakeOpenAI:
    def __init__(self, latency: float = 0.0, faults: dict[str, float] | None = None, api_key: str | None = None,
                 log_path: str | None = None, hang_s: float = 60.0, retry_after: float = 0.05,
                 completion_tokens: int | None = None, model_name: str = "fake-model-0001"):
        self.latency = latency
        self.faults = faults or {}
        self.api_key = api_key
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.completion_tokens = completion_tokens
        self.model_name = model_name
        self.attempts: dict[str, int] = defaultdict(int)
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115 - lives with the server
        self.served = 0

    def _log(self, **entry: Any) -> None:
        if self.log:
            entry["t"] = round(time.time(), 4)
            self.log.write(json.dumps(entry) + "\n")

    def _draw(self, key: str, attempt: int) -> str | None:
        for kind in FAULTS:
            p = self.faults.get(kind, 0.0)
            if p <= 0:
                continue
            h = int(hashlib.sha256(f"{kind}|{key}|{attempt}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            if h < p:
                return kind
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            self._log(status=401, kind="unauthorized")
            return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        body = await request.json()
        messages = body.get("messages") or []
        if not messages:
            return web.json_response({"error": {"message": "messages is required"}}, status=400)
        prompt = messages[-1].get("content", "")
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
        self.attempts[key] += 1
        attempt = self.attempts[key]
        fault = self._draw(key, attempt)
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault == "rate_limit":
            self._log(key=key, attempt=attempt, status=429, kind=fault)
            return web.json_response({"error": {"message": "Rate limit reached"}}, status=429,
                                     headers={"Retry-After": str(self.retry_after)})
        if fault == "server_error":
            self._log(key=key, attempt=attempt, status=500, kind=fault)
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "timeout":
            self._log(key=key, attempt=attempt, status=0, kind=fault)
            await asyncio.sleep(self.hang_s)
            # the client has given up by now: answering would log a response nobody received
            return web.json_response({"error": {"message": "hung"}}, status=504)
        if fault == "drop":
            self._log(key=key, attempt=attempt, status=0, kind=fault)
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError()
        if fault == "malformed":
            self._log(key=key, attempt=attempt, status=200, kind=fault)
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        if fault == "empty_choices":
            self._log(key=key, attempt=attempt, status=200, kind=fault)
            return web.json_response({"id": "x", "object": "chat.completion", "created": int(time.time()),
                                      "model": self.model_name, "choices": []})
        n = int(body.get("n") or 1)
        answer = f"Echo: {prompt} The answer is {len(prompt)}."
        if self.completion_tokens is not None:
            answer = " ".join(["tok"] * self.completion_tokens)
        p_tok = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
        c_tok = len(answer.split())
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if max_tokens is not None and c_tok > max_tokens:
            answer = " ".join(answer.split()[:max_tokens])
            c_tok, finish = max_tokens, "length"
        choices = [{"index": i, "message": {"role": "assistant", "content": answer if i == 0 else f"{answer} (sample {i})"},
                    "finish_reason": finish} for i in range(n)]
        r_tok = 0
        shape = re.search(r"\[reasoning:(\w+)\]", prompt)
        if shape:
            trace = f"First I think about {prompt[:20]!r}. Then I add."
            r_tok = len(trace.split())
            for ch in choices:
                _add_reasoning(ch["message"], shape.group(1), trace)
        self.served += 1
        self._log(key=key, attempt=attempt, status=200, kind="ok", n=n, prompt=prompt[:200])
        return web.json_response({
            "id": f"chatcmpl-{key}-{attempt}", "object": "chat.completion", "created": int(time.time()),
            "model": self.model_name, "choices": choices,
            "usage": {"prompt_tokens": p_tok, "completion_tokens": (c_tok + r_tok) * n,
                      "total_tokens": p_tok + (c_tok + r_tok) * n,
                      **({"completion_tokens_details": {"reasoning_tokens": r_tok * n}} if r_tok else {})},
        })

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model_name, "object": "model"}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        return app


def _add_reasoning(message: dict[str, Any], shape: str, trace: str) -> None:
    if shape == "reasoning_content":
        message["reasoning_content"] = trace
    elif shape == "reasoning":
        message["reasoning"] = trace
    elif shape == "details":
        message["reasoning_details"] = [{"type": "reasoning.text", "text": trace, "format": "unknown", "index": 0}]
    elif shape == "summary":
        message["reasoning_details"] = [{"type": "reasoning.summary", "summary": trace, "index": 0}]
    elif shape == "encrypted":
        message["reasoning_details"] = [{"type": "reasoning.encrypted", "data": "gAAAAB3x", "index": 0}]
    elif shape == "think":
        message["content"] = f"<think>\n{trace}\n</think>\n\n{message['content']}"
    elif shape == "unknown":
        message["thinking_blocks"] = [{"thought": trace}]


def parse_faults(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        kind, _, p = item.partition("=")
        if kind not in FAULTS:
            raise SystemExit(f"unknown fault {kind!r}; choose from {', '.join(FAULTS)}")
        out[kind] = float(p)
    return out


async def serve(args: argparse.Namespace) -> None:
    fake = FakeOpenAI(args.latency, parse_faults(args.fault), args.api_key, args.log, args.hang,
                      args.retry_after, args.completion_tokens)
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--fault", action="append", default=[], help="KIND=PROBABILITY, repeatable")
    ap.add_argument("--api-key", default=None, help="require this key (else 401)")
    ap.add_argument("--log", default=None, help="append one JSON line per request served")
    ap.add_argument("--hang", type=float, default=60.0, help="how long a 'timeout' fault hangs")
    ap.add_argument("--retry-after", type=float, default=0.05, help="Retry-After seconds sent with 429")
    ap.add_argument("--completion-tokens", type=int, default=None, help="fixed answer length in tokens")
    args = ap.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
