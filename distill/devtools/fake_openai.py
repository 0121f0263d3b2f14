"""A small OpenAI-compatible chat server on loopback that can inject faults and logs every request it served.

Stands in for a paid API in tests and benchmarks; it speaks real HTTP, so the real `openai` client is exercised.

    python -m distill.devtools.fake_openai --port 0 --log served.jsonl --latency 0.2 --fault rate_limit=0.1

Faults (each a probability per attempt, drawn from a hash of the prompt and its attempt number, so runs are
reproducible and every prompt eventually succeeds): rate_limit (429 + Retry-After), server_error (500),
timeout (hangs), drop (connection closed mid-request), malformed (200 with a broken JSON body),
empty_choices (200 with `choices: []`). `--api-key K` makes any other key get 401.
`--prompt-tokens bytes` bills every prompt byte as a token (text that tokenizes 4x worse than chars/4).
The first line printed is `PORT <n>`. Under `/api/v1` it also stands in for OpenRouter: `GET /api/v1/models` is
its model list with per-token pricing (`OPENROUTER_MODELS`), `POST /api/v1/chat/completions` the same chat.
Answers are deterministic: `Echo: <prompt> The answer is <len>.`
A prompt containing `[reasoning:SHAPE]` gets a reasoning trace in that provider shape: reasoning_content
(DeepSeek, older vLLM), reasoning (vLLM >= 0.11, OpenRouter), details (OpenRouter reasoning_details),
summary (a summarized trace), encrypted (redacted), think (inline `<think>` in content), unknown (a field no
client knows); usage then reports `completion_tokens_details.reasoning_tokens`.
With a `response_format` (json_schema or json_object) the answer is JSON made to fit the schema: strings echo the
prompt, an integer `score` is the last `[score:N]` in the messages (else 1-10 from a hash of them, as a judge's
would vary), other numbers the prompt length clamped to the schema's bounds. `[json:bad]` in the prompt answers
text that is not JSON, `[json:bad-once]` does so on the first attempt only, `[json:wrong]` answers JSON that
misses the schema's required fields.
`--limits requests=N,tokens=N` enforces per-minute limits (429 + Retry-After, logged as `over_limit`) and
announces them in `x-ratelimit-*` headers (`--silent-limits`: enforced, not announced). Batches:
`POST /v1/batches/{id}/cancel` ends a batch with the first half of its lines answered; `--batch-hold N`: the
first N batches never finish unless cancelled; `--lose-batch-creates N`: the first N batches are created but
answered 500.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time
from collections import defaultdict
from typing import Any

from aiohttp import web

from distill.devtools.fake_limits import FakeLimits, parse_limits
from distill.devtools.fakeserve import add_common_args, listen, parse_faults, run
from distill.llm.structured import is_strict  # OpenAI's strict-mode rule, as the client checks it before sending

FAULTS = ("rate_limit", "server_error", "timeout", "drop", "malformed", "empty_choices")

# What `GET /api/v1/models` serves: OpenRouter's shape (`data[].id`, `data[].pricing` as strings of $ per token).
# Illustrative prices for tests, not OpenRouter's today; `openrouter/auto` has no fixed price ("-1"), as there.
OPENROUTER_MODELS: list[dict[str, Any]] = [
    {"id": "openai/gpt-4o", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}},
    {"id": "meta-llama/llama-3-70b-instruct", "pricing": {"prompt": "0.0000003", "completion": "0.0000004"}},
    {"id": "mistralai/mixtral-8x22b-instruct", "pricing": {"prompt": "0.0000009", "completion": "0.0000009"}},
    {"id": "qwen/qwen-2-72b-instruct", "pricing": {"prompt": "0.0000009", "completion": "0.0000009"}},
    {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
]


class FakeOpenAI:
    def __init__(self, latency: float = 0.0, faults: dict[str, float] | None = None, api_key: str | None = None,
                 log_path: str | None = None, hang_s: float = 60.0, retry_after: float = 0.05,
                 completion_tokens: int | None = None, model_name: str = "fake-model-0001",
                 batch_delay: float = 1.0, batch_expire: bool = False, prompt_tokens: str = "words",
                 batch_hold: int = 0, limits: Any = None, lose_creates: int = 0, usage_cost_factor: float = 1.0):
        self.latency = latency
        # OpenRouter's usage accounting (`usage: {include: true}` in the body -> `usage.cost`, the real charge):
        # the listed price x this factor (a provider dearer than the list, as `:nitro` may route to)
        self.usage_cost_factor = usage_cost_factor
        self.faults = faults or {}
        self.api_key = api_key
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.completion_tokens = completion_tokens
        self.model_name = model_name
        self.attempts: dict[str, int] = defaultdict(int)
        self.log = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115 - lives with the server
        self.served = 0
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_delay = batch_delay
        self.batch_expire = batch_expire
        self.prompt_tokens = prompt_tokens
        self.batch_hold = batch_hold
        self.lose_creates = lose_creates
        self.limits = limits  # fake_limits.FakeLimits: enforced, and announced in x-ratelimit-* headers

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
        if (bad := _bad_response_format(body.get("response_format"))) is not None:  # as OpenAI: 400, not retried
            self._log(status=400, kind="bad_response_format", message=bad)
            return web.json_response({"error": {"message": bad, "type": "invalid_request_error",
                                                "param": "response_format"}}, status=400)
        prompt = messages[-1].get("content", "")
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
        self.attempts[key] += 1
        attempt = self.attempts[key]
        if self.limits is not None:
            wait = self.limits.admit(sum(len(str(m.get("content", "")).split()) + 4 for m in messages))
            if wait is not None:
                self._log(key=key, attempt=attempt, status=429, kind="over_limit")
                return web.json_response({"error": {"message": "Rate limit reached for requests"}}, status=429,
                                         headers={"Retry-After": f"{wait:.3f}", **self.limits.headers()})
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
        self.served += 1
        resp = self.answer(body, f"chatcmpl-{key}-{attempt}", attempt)
        rf = body.get("response_format")
        self._log(key=key, attempt=attempt, status=200, kind="ok", n=int(body.get("n") or 1), prompt=prompt[:200],
                  response_format=rf.get("type") if isinstance(rf, dict) else None,
                  prompt_tokens=resp["usage"]["prompt_tokens"], completion_tokens=resp["usage"]["completion_tokens"])
        if self.limits is None:
            return web.json_response(resp)
        self.limits.charge_output(resp["usage"]["completion_tokens"])
        return web.json_response(resp, headers=self.limits.headers())

    def answer(self, body: dict[str, Any], response_id: str, attempt: int = 1) -> dict[str, Any]:
        """The deterministic chat completion for a request body (shared by /chat/completions and batches)."""
        messages = body["messages"]
        prompt = messages[-1].get("content", "")
        n = int(body.get("n") or 1)
        answer = f"Echo: {prompt} The answer is {len(prompt)}."
        if isinstance(body.get("response_format"), dict):
            answer = structured_answer(body["response_format"], messages, attempt)
        if self.completion_tokens is not None:
            answer = " ".join(["tok"] * self.completion_tokens)
        if self.prompt_tokens == "bytes":  # the most a byte-level BPE could bill: 4x chars/4 on ASCII text
            p_tok = sum(len(str(m.get("content", "")).encode()) + 4 for m in messages)
        else:
            p_tok = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
        c_tok = len(answer.split())
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if max_tokens is not None and c_tok > max_tokens:
            answer = " ".join(answer.split()[:max_tokens])
            c_tok, finish = max_tokens, "length"
        structured = isinstance(body.get("response_format"), dict)  # samples stay JSON
        choices = [{"index": i, "message": {"role": "assistant",
                                            "content": answer if i == 0 or structured else f"{answer} (sample {i})"},
                    "finish_reason": finish} for i in range(n)]
        r_tok = 0
        shape = re.search(r"\[reasoning:(\w+)\]", prompt)
        if shape:
            trace = f"First I think about {prompt[:20]!r}. Then I add."
            r_tok = len(trace.split())
            for ch in choices:
                _add_reasoning(ch["message"], shape.group(1), trace)
        usage: dict[str, Any] = {"prompt_tokens": p_tok, "completion_tokens": (c_tok + r_tok) * n,
                                 "total_tokens": p_tok + (c_tok + r_tok) * n,
                                 **({"completion_tokens_details": {"reasoning_tokens": r_tok * n}} if r_tok else {})}
        listed = next((m["pricing"] for m in OPENROUTER_MODELS if m["id"] == body.get("model")), None)
        if isinstance(body.get("usage"), dict) and body["usage"].get("include") and listed \
                and float(listed["prompt"]) >= 0:
            usage["cost"] = round((p_tok * float(listed["prompt"]) + usage["completion_tokens"]
                                   * float(listed["completion"])) * self.usage_cost_factor, 12)
        return {"id": response_id, "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name, "choices": choices, "usage": usage}

    # -- Files and Batch API ---------------------------------------------------------------------------------
    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided"}}, status=401)
        return None

    async def upload_file(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        form = await request.post()
        upload = form["file"]
        content = upload.file.read() if hasattr(upload, "file") else bytes(str(upload), "utf-8")  # type: ignore[union-attr]
        fid = f"file-{len(self.files) + 1:04d}"
        self.files[fid] = content
        self._log(kind="file_upload", file_id=fid, bytes=len(content), purpose=form.get("purpose"))
        return web.json_response({"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                  "filename": getattr(upload, "filename", "upload.jsonl"), "purpose": form.get("purpose"),
                                  "status": "processed"})

    async def file_content(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": f"No such File object: {fid}"}}, status=404)
        return web.Response(body=self.files[fid], content_type="application/octet-stream")

    async def create_batch(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        body = await request.json()
        fid = body.get("input_file_id")
        if fid not in self.files:
            return web.json_response({"error": {"message": f"No such File object: {fid}"}}, status=400)
        bid = f"batch_{len(self.batches) + 1:04d}"
        n_lines = len([ln for ln in self.files[fid].splitlines() if ln.strip()])
        self.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body.get("endpoint"), "input_file_id": fid,
            "completion_window": body.get("completion_window"), "status": "validating", "created_at": int(time.time()),
            "output_file_id": None, "error_file_id": None, "errors": None, "metadata": body.get("metadata"),
            "request_counts": {"total": n_lines, "completed": 0, "failed": 0}, "_t0": time.monotonic(),
            "_held": len(self.batches) < self.batch_hold,
        }
        self._log(kind="batch_create", batch_id=bid, input_file_id=fid, requests=n_lines)
        if self.lose_creates > 0:  # created, but the answer is lost: a client that retries pays twice
            self.lose_creates -= 1
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        return web.json_response(self._public(self.batches[bid]))

    def _public(self, b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def _advance(self, b: dict[str, Any]) -> None:
        """Batches finish `batch_delay` seconds after creation (or expire, with `batch_expire`); the first
        `batch_hold` never finish by themselves; a cancelled one ends with the first half of its lines answered."""
        cancelling = b["status"] == "cancelling"
        if b["status"] not in ("validating", "in_progress") and not cancelling:
            return
        age = time.monotonic() - b["_t0"]
        lines = [json.loads(ln) for ln in self.files[b["input_file_id"]].splitlines() if ln.strip()]
        bad = self._validate(lines)
        if bad:
            b.update(status="failed", errors={"object": "list", "data": bad})
            return
        if not cancelling and (age < self.batch_delay or b["_held"]):
            b["status"] = "in_progress"
            b["request_counts"]["completed"] = int(len(lines) * age / self.batch_delay)
            return
        out, errs = [], []
        for i, line in enumerate(lines):
            prompt = line["body"]["messages"][-1].get("content", "")
            if cancelling and i >= len(lines) // 2:
                continue  # never ran: in neither file
            if self.batch_expire and i >= len(lines) // 2:
                errs.append({"id": f"req_{i}", "custom_id": line["custom_id"], "response": None,
                             "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
            elif "[batch-error]" in prompt:
                errs.append({"id": f"req_{i}", "custom_id": line["custom_id"],
                             "response": {"status_code": 500, "request_id": f"r{i}", "body": {"error": {"message": "server error"}}},
                             "error": None})
            else:
                out.append({"id": f"req_{i}", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": 200, "request_id": f"r{i}",
                                         "body": self.answer(line["body"], f"chatcmpl-{b['id']}-{i}")}})
        oid, eid = f"file-{len(self.files) + 1:04d}", None
        self.files[oid] = "".join(json.dumps(o) + "\n" for o in out).encode()
        if errs:
            eid = f"file-{len(self.files) + 1:04d}"
            self.files[eid] = "".join(json.dumps(e) + "\n" for e in errs).encode()
        b.update(status="cancelled" if cancelling else "expired" if self.batch_expire else "completed",
                 output_file_id=oid, error_file_id=eid,
                 request_counts={"total": len(lines), "completed": len(out), "failed": len(errs)})
        self._log(kind="batch_done", batch_id=b["id"], status=b["status"], completed=len(out), failed=len(errs))

    @staticmethod
    def _validate(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        bad = []
        for i, line in enumerate(lines, 1):
            body = line.get("body") or {}
            if "custom_id" not in line:
                bad.append({"code": "missing_required_parameter", "line": i, "param": "custom_id", "message": "custom_id is required"})
            elif not isinstance(body.get("model"), str) or not body.get("model"):
                bad.append({"code": "invalid_request", "line": i, "param": "body.model", "message": "model must be a non-empty string"})
            elif line.get("url") != "/v1/chat/completions":
                bad.append({"code": "invalid_url", "line": i, "param": "url", "message": f"unsupported url {line.get('url')!r}"})
        return bad

    async def get_batch(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        self._advance(b)
        self._log(kind="batch_poll", batch_id=b["id"], status=b["status"])
        return web.json_response(self._public(b))

    async def cancel_batch(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        if b["status"] in ("validating", "in_progress"):
            b["status"] = "cancelling"
        self._log(kind="batch_cancel", batch_id=b["id"], status=b["status"])
        return web.json_response(self._public(b))

    async def list_batches(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        data = [self._public(b) for b in reversed(self.batches.values())]
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    async def models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:  # as OpenAI's /v1/models: a wrong key is a 401
            return err
        return web.json_response({"object": "list", "data": [{"id": self.model_name, "object": "model"}]})

    async def openrouter_models(self, request: web.Request) -> web.Response:
        """OpenRouter's public model list (no key needed there; a wrong key is not refused either)."""
        self._log(kind="models_list")
        data = [{"name": m["id"], "context_length": 8192, "architecture": {"modality": "text->text"},
                 "top_provider": {"is_moderated": False}, **m,
                 "pricing": {"request": "0", "image": "0", **m["pricing"]}} for m in OPENROUTER_MODELS]
        return web.json_response({"data": data})

    def app(self) -> web.Application:
        app = web.Application()
        # OpenRouter's paths (base_url http://HOST:PORT/api/v1): the model list with pricing, and the same chat
        app.router.add_get("/api/v1/models", self.openrouter_models)
        app.router.add_post("/api/v1/chat/completions", self.chat)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/files", self.upload_file)
        app.router.add_get("/v1/files/{fid}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create_batch)
        app.router.add_get("/v1/batches", self.list_batches)
        app.router.add_get("/v1/batches/{bid}", self.get_batch)
        app.router.add_post("/v1/batches/{bid}/cancel", self.cancel_batch)
        return app


def _bad_response_format(fmt: Any) -> str | None:
    """OpenAI's checks of `response_format` (its 400 wording, shortened); None when it would be accepted."""
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        return "Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'."
    if fmt["type"] != "json_schema":
        return None
    js = fmt.get("json_schema")
    if not isinstance(js, dict) or not isinstance(js.get("schema"), dict):
        return "Missing required parameter: 'response_format.json_schema.schema'."
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", str(js.get("name", ""))):
        return "Invalid 'response_format.json_schema.name': must match ^[a-zA-Z0-9_-]{1,64}$."
    if js.get("strict") and not is_strict(js["schema"]):
        return ("Invalid schema for response_format '%s': 'additionalProperties' is required to be supplied and to be "
                "false, and 'required' must include every key in 'properties'." % js.get("name"))
    return None


def structured_answer(fmt: dict[str, Any], messages: list[dict[str, Any]], attempt: int) -> str:
    """JSON for a `response_format` (see the module doc for the markers that make it invalid on purpose)."""
    prompt = str(messages[-1].get("content", ""))
    if "[json:bad]" in prompt or ("[json:bad-once]" in prompt and attempt == 1):
        return "Sure! Here is the JSON you asked for: {answer: 42"
    if "[json:wrong]" in prompt:
        return json.dumps({"unexpected": True})
    if fmt.get("type") != "json_schema":
        return json.dumps({"answer": f"Echo: {prompt[:80]}"})
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    text = " ".join(str(m.get("content", "")) for m in messages)
    return json.dumps(_instance(schema, schema, text, prompt, ""))


def _instance(schema: Any, root: dict[str, Any], text: str, prompt: str, name: str) -> Any:
    """A value fitting `schema` (the subset of JSON schema structured outputs use)."""
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return _instance(node, root, text, prompt, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for alt in ("anyOf", "oneOf"):
        if schema.get(alt):
            options = [o for o in schema[alt] if isinstance(o, dict) and o.get("type") != "null"] or schema[alt]
            return _instance(options[0], root, text, prompt, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {k: _instance(v, root, text, prompt, k) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_instance(schema.get("items") or {}, root, text, prompt, name)
                for _ in range(max(1, int(schema.get("minItems") or 1)))]
    if kind in ("integer", "number"):
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 10**9)
        marks = re.findall(r"\[score:(\d+)\]", text)
        if name == "score" and marks:
            value = int(marks[-1])
        elif name == "score":
            value = lo + int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % (int(hi) - int(lo) + 1)
        else:
            value = len(prompt)
        value = min(max(value, lo), hi)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"Echo: {prompt[:80]}" if name != "reasoning" else f"Judged: {prompt[:60]}"


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


async def serve(args: argparse.Namespace) -> None:
    limits = FakeLimits(parse_limits(args.limits), "openai", advertise=not args.silent_limits) if args.limits else None
    fake = FakeOpenAI(args.latency, parse_faults(args.fault, FAULTS), args.api_key, args.log, args.hang,
                      args.retry_after, args.completion_tokens, batch_delay=args.batch_delay,
                      batch_expire=args.batch_expire, prompt_tokens=args.prompt_tokens, batch_hold=args.batch_hold,
                      lose_creates=args.lose_batch_creates, limits=limits, usage_cost_factor=args.usage_cost_factor)
    await listen(fake.app(), args.port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, limit_dims="requests=N,tokens=N (x-ratelimit-*)")
    ap.add_argument("--prompt-tokens", choices=("words", "bytes"), default="words",
                    help="usage.prompt_tokens: words + 4 per message, or UTF-8 bytes + 4 (a tokenizer's worst case)")
    ap.add_argument("--usage-cost-factor", type=float, default=1.0,
                    help="usage.cost (when the body asks `usage: {include: true}`) = listed price x this")
    args = ap.parse_args()
    run(lambda: serve(args))


if __name__ == "__main__":
    main()
