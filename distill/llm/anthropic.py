"""Anthropic's Messages API as a wire format of the one request path (`provider: anthropic`).

Why a `RequestModel` subclass and not the SDK online: the online executor (`runner.ChatRunner`) already gives
the guarantees that matter (exactly-once records committed to the cache before they count, our retry policy
per error kind with Retry-After, the spend cap's worst case reserved before sending, rate limits), and posting
the body over its aiohttp transport costs far less CPU per request than the SDK's typed models (~1.3 ms). So
only the wire differs: POST {base_url}/v1/messages with `x-api-key` + `anthropic-version`, the system prompt as
the top-level `system`, one sample per request (the API has no `n`), and the answer's content blocks read back
into the same record columns. Errors keep Anthropic's own body (`{"type":"error","error":{...}}`), whose
message `transport.status_message` reads; 529 (overloaded) is retried like a 5xx (`errors.classify`).
The Message Batches API is `anthropic_batch.AnthropicBatchRunner` (through the official SDK).
"""

from __future__ import annotations

import json
import time
from typing import Any

from distill.llm.budget import prompt_token_bound
from distill.llm.endpoint import EndpointConfig
from distill.llm.request import RequestModel
from distill.llm.transport import ChatTransport

# stop_reason -> the finish_reason the records (and curate's truncation policy) speak
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                "refusal": "content_filter", "model_context_window_exceeded": "length", "pause_turn": "pause_turn"}
# models whose thinking blocks are the full trace; Claude 4 and later return a summary of it
FULL_THINKING_PREFIXES = ("claude-3-7",)


class AnthropicTransport(ChatTransport):
    path = "/v1/messages"

    def auth_headers(self, endpoint: EndpointConfig, key: str) -> dict[str, str]:
        headers = {"anthropic-version": endpoint.anthropic_version}
        if key and key != "EMPTY":
            headers["x-api-key"] = key
        return headers


def _blocks(content: Any) -> str | list[dict[str, Any]]:
    """OpenAI content (a string or parts) -> Anthropic content (a string or text blocks)."""
    if isinstance(content, str) or content is None:
        return content or ""
    return [{"type": "text", "text": p.get("text", "")} if isinstance(p, dict) else {"type": "text", "text": str(p)}
            for p in content]


def to_anthropic(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Chat messages -> (system, messages): system/developer turns become the top-level system prompt; any role
    the Messages API has no turn for (tool) is sent as user text rather than refused mid-run."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            c = m.get("content")
            system.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c or [] if isinstance(p, dict)))
        else:
            out.append({"role": "assistant" if role == "assistant" else "user", "content": _blocks(m.get("content"))})
    return ("\n\n".join(system) if system else None), out


def parse_content(blocks: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """Content blocks -> completion (text blocks), reasoning (thinking blocks), reasoning_status, raw.

    `full` for models that return the whole trace (Claude 3.7), `summarized` for those that return a summary
    (Claude 4+), `redacted` when only `redacted_thinking` (encrypted) or empty thinking blocks (thinking
    display `omitted`) came back; any other block kind
    (tool_use, server tools...) keeps the whole content in `raw` so nothing is lost."""
    texts, thinking, redacted, other = [], [], 0, False
    for b in blocks:
        kind = b.get("type")
        if kind == "text":
            texts.append(b.get("text") or "")
        elif kind == "thinking" and b.get("thinking"):
            thinking.append(b["thinking"])
        elif kind in ("thinking", "redacted_thinking"):  # encrypted, or display `omitted`: only a signature
            redacted += 1
        else:
            other = True
    reasoning = "\n\n".join(t for t in thinking if t) or None
    if reasoning:
        status = "full" if model.lower().startswith(FULL_THINKING_PREFIXES) else "summarized"
    else:
        status = "redacted" if redacted else "absent"
    raw = json.dumps(blocks, ensure_ascii=False) if other else None
    return {"completion": "".join(texts), "reasoning": reasoning, "reasoning_status": status, "raw": raw}


class AnthropicRequestModel(RequestModel):
    """Same cache identity, keys, worst case and record columns as the OpenAI model; Anthropic's wire."""

    max_n = 1

    def __init__(self, endpoint: EndpointConfig, *, identity: str | None = None):
        super().__init__(endpoint, identity=identity)
        sent = dict(self.sent_params)
        if "max_completion_tokens" in sent:  # the endpoint validator made sure one of the two is set
            sent["max_tokens"] = sent.pop("max_completion_tokens")
        # a response_format is not sent (Anthropic's Messages API has no such field): the prompt asks for the
        # format, and every answer is still validated against it here and asked again when it does not fit
        sent.pop("response_format", None)
        if "stop" in sent:
            stop = sent.pop("stop")
            sent["stop_sequences"] = [stop] if isinstance(stop, str) else stop
        self.sent_params = sent

    def transport(self, observe: Any = None) -> AnthropicTransport:
        return AnthropicTransport(self.endpoint, observe)

    def body(self, full_messages: list[dict[str, Any]], n: int) -> dict[str, Any]:
        """POST /v1/messages (and a batch request's `params`); `n` is always 1 here (`max_n`)."""
        system, messages = to_anthropic(full_messages)
        body: dict[str, Any] = {"model": self.endpoint.model, "messages": messages, **self.sent_params}
        if system:
            body["system"] = ([{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
                              if self.endpoint.prompt_cache else system)
        return body

    def worst_case_usd(self, full_messages: list[dict[str, Any]], n: int, *, batch: bool = False) -> float:
        """As the base's, with every prompt token at the dearest input rate (a cache write costs 1.25x)."""
        p = self.price
        rate = max(p.prompt, p.cache_write or 0.0, p.cache_read or 0.0)
        worst = (prompt_token_bound(full_messages) * rate + self.max_output * n * p.completion) / 1e6
        return p.batch_discount * worst if batch else worst

    def check(self, resp: Any) -> dict[str, Any]:
        if not isinstance(resp, dict) or resp.get("type") != "message" or not isinstance(resp.get("content"), list):
            kind = resp.get("type") if isinstance(resp, dict) else type(resp).__name__
            raise ValueError(f"expected an Anthropic message, got {kind!r}")
        return resp

    def usage(self, resp: dict[str, Any]) -> dict[str, int]:
        """prompt_tokens counts every input token (uncached + cache read + cache written), as OpenAI's does;
        the cached ones are also given apart so they are priced at their own rates."""
        u = resp.get("usage") or {}
        read = int(u.get("cache_read_input_tokens") or 0)
        write = int(u.get("cache_creation_input_tokens") or 0)
        thinking = (u.get("output_tokens_details") or {}).get("thinking_tokens")
        return {"prompt_tokens": int(u.get("input_tokens") or 0) + read + write,
                "completion_tokens": int(u.get("output_tokens") or 0), "reasoning_tokens": int(thinking or 0),
                "cache_read_tokens": read, "cache_write_tokens": write}

    def cost_usd(self, usage: dict[str, int], provider_cost: float | None = None) -> float:
        if provider_cost is not None:
            return provider_cost
        return self.price.cost_cached(usage["prompt_tokens"], usage["completion_tokens"],
                                      usage.get("cache_read_tokens", 0), usage.get("cache_write_tokens", 0))

    def records(self, resp: dict[str, Any], pending: dict[int, str], *, latency: float | None, attempts: int,
                batch_id: str | None = None) -> list[dict[str, Any]]:
        """One record (one sample per request), for the first sample index in `pending`."""
        ep = self.endpoint
        index, key = next(iter(pending.items()))
        usage = self.usage(resp)
        discount = self.price.batch_discount if batch_id is not None else 1.0
        model = resp.get("model") or ep.model
        rec = {
            "id": key,
            "endpoint": ep.name,
            "model": model,
            "requested_model": ep.model,
            "base_url": ep.base_url,
            "sample_index": index,
            **parse_content(resp["content"], model),
            "finish_reason": STOP_REASONS.get(resp.get("stop_reason") or "", resp.get("stop_reason")),
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "reasoning_tokens": usage["reasoning_tokens"],  # output_tokens_details.thinking_tokens, where reported
            "cache_read_tokens": usage["cache_read_tokens"],
            "cache_write_tokens": usage["cache_write_tokens"],
            "cost_usd": self.cost_usd(usage) * discount,
            "latency_s": round(latency, 4) if latency is not None else None,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "response_id": resp.get("id"),
            "attempts": attempts,
            "params": self.params_json,
        }
        if batch_id is not None:
            rec["batch_id"] = batch_id
        self.check_structured(rec)
        return [rec]
