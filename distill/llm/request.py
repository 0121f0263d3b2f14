"""The request model: what one endpoint's chat requests are, described once for every way of sending them.

Why one place: the body sent, the key it is cached under, the most it may cost and the records its answer
becomes must be identical whether a request goes out online, inside a Batch API file, or from eval against a
model served on a random port. The executors (`runner.ChatRunner` online, `batch.BatchRunner`) only decide
how and when to send; everything about *what* is sent lives here, public, so no module reaches into another.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from distill.llm.budget import output_token_bound, prompt_token_bound, require_cap_inputs
from distill.llm.cache import request_key, sample_key
from distill.llm.endpoint import EndpointConfig
from distill.llm.parse import parse_message, usage_fields
from distill.llm.pricing import Price, price_for

ASSUMED_MAX_OUTPUT = 4096  # output assumed for TPM pacing when no max_tokens is set (a capped run refuses instead)


@dataclass
class ChatRequest:
    """One prompt to send; `samples` are the sample indices wanted; `tag` comes back with the result."""

    messages: list[dict[str, Any]]
    samples: list[int] = field(default_factory=lambda: [0])
    tag: Any = None


# on_result(request, records or None, error or None, from_cache): told once per answered / failed sample group
OnResult = Callable[[ChatRequest, list[dict[str, Any]] | None, str | None, bool], None]


@dataclass
class RunStats:
    requests_total: int = 0  # prompt x sample pairs asked for
    completed: int = 0  # samples answered by the API in this run
    from_cache: int = 0  # samples already in the cache
    failed: int = 0  # samples given up on
    not_sent: int = 0  # samples never sent (budget reached, run stopped)
    http_requests: int = 0  # attempts sent over the wire
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    stopped: str | None = None
    rate_limits: dict[str, float] = field(default_factory=dict)  # per-minute limits the provider's headers announced

    def count_response(self, samples: int, usage: dict[str, int], cost: float, latency: float | None) -> None:
        """One answered request (online or from a batch), counted once its records are in the cache."""
        self.completed += samples
        self.prompt_tokens += usage["prompt_tokens"]
        self.completion_tokens += usage["completion_tokens"]
        self.reasoning_tokens += usage["reasoning_tokens"]
        self.cost_usd += cost
        if latency is not None:
            self.latencies.append(latency)

    def merge(self, other: RunStats) -> None:
        for name in ("requests_total", "completed", "from_cache", "failed", "not_sent", "http_requests",
                     "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_usd"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies.extend(other.latencies)
        self.errors.update(other.errors)
        self.stopped = self.stopped or other.stopped
        self.rate_limits.update(other.rate_limits)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 4) if lat else None

        return {
            "requests_total": self.requests_total,
            "completed": self.completed,
            "failed": self.failed,
            "from_cache": self.from_cache,
            "not_sent": self.not_sent,
            "http_requests": self.http_requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "latency_p50_s": pct(0.50),
            "latency_p95_s": pct(0.95),
            "errors": dict(self.errors),
            "stopped": self.stopped,
            "rate_limits": dict(self.rate_limits),
        }


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """`approx_tokens` + per-message overhead: only for rate limiting and estimates, never billed nor used for the
    cap (that is `prompt_token_bound`)."""
    from distill.tokens import approx_tokens

    return sum(approx_tokens(str(m.get("content") or "")) + 4 for m in messages) + 3


def request_model(endpoint: EndpointConfig, *, identity: str | None = None) -> RequestModel:
    """The request model of an endpoint's wire format (`provider`): the one place a provider plugs in."""
    if endpoint.provider == "anthropic":
        from distill.llm.anthropic import AnthropicRequestModel

        return AnthropicRequestModel(endpoint, identity=identity)
    return RequestModel(endpoint, identity=identity)


class RequestModel:
    """One endpoint's requests: body, cache identity and keys, worst-case cost, records from a response.
    This class is the OpenAI chat-completions wire format; `anthropic.AnthropicRequestModel` overrides the
    wire-format methods (`transport`, `body`, `check`, `usage`, `records`).

    `identity` replaces the base URL in cache keys: a model eval serves itself is reached on a random port, so
    its keys name the served files instead (a re-run finds its answers; a retrained model does not)."""

    max_n = 1 << 30  # samples one request may ask for (`n`); Anthropic has no `n`: one sample per request

    def __init__(self, endpoint: EndpointConfig, *, identity: str | None = None):
        self.endpoint = endpoint
        self.identity = identity or endpoint.base_url
        self.price: Price = price_for(endpoint)
        self.params = endpoint.params.request_kwargs()  # what the cache key hashes (extra_body nested)
        self.structured = None  # a response_format: each answer parsed and validated (llm/structured.py)
        if endpoint.params.response_format is not None:
            from distill.llm.structured import structured_output

            self.structured = structured_output(endpoint.params.response_format,
                                                f"params.response_format of '{endpoint.name}'")
            assert self.structured is not None
            self.params["response_format"] = self.structured.wire
        self.params_json = json.dumps(self.params, sort_keys=True)
        # what goes on the wire besides model/messages/n: extra_body merged into the top level
        self.sent_params = {k: v for k, v in self.params.items() if k != "extra_body"} | self.params.get("extra_body", {})
        self.output_bound = output_token_bound(self.sent_params)  # None: no max_tokens, no bounded cost
        self.max_output = self.output_bound if self.output_bound is not None else ASSUMED_MAX_OUTPUT

    def require_bounded_cost(self) -> None:
        """For a capped run: refuse when a request's cost has no upper bound (unknown price, no max_tokens)."""
        require_cap_inputs(self.endpoint.name, self.endpoint.model, self.price.known, self.output_bound)

    # -- what is sent, and under which key ----------------------------------------------------------------------
    def full_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages as sent: the endpoint's system prompt first, unless the prompt brings its own."""
        sp = self.endpoint.system_prompt
        if sp and not (messages and messages[0].get("role") == "system"):
            return [{"role": "system", "content": sp}, *messages]
        return messages

    def request_key(self, messages: list[dict[str, Any]]) -> str:
        return request_key(self.identity, self.endpoint.model, self.params, self.full_messages(messages))

    def sample_keys(self, messages: list[dict[str, Any]], samples: list[int]) -> list[str]:
        rk = self.request_key(messages)
        return [sample_key(rk, i) for i in samples]

    def transport(self, observe: Any = None) -> Any:
        """The online wire (made inside the event loop): POST /chat/completions with Bearer auth."""
        from distill.llm.transport import ChatTransport

        return ChatTransport(self.endpoint, observe)

    def check(self, resp: Any) -> dict[str, Any]:
        """A 200 answer that is not a usable completion raises (classified and retried by the runner)."""
        if not isinstance(resp, dict):
            raise ValueError(f"expected a JSON object, got {type(resp).__name__}")
        if not resp.get("choices"):
            from distill.llm.errors import EmptyChoices

            raise EmptyChoices()
        return resp

    def usage(self, resp: dict[str, Any]) -> dict[str, int]:
        """prompt/completion/reasoning tokens of one answer (prompt counts every prompt token)."""
        return usage_fields(resp.get("usage"))

    def body(self, full_messages: list[dict[str, Any]], n: int) -> dict[str, Any]:
        """The JSON body of POST /chat/completions (online, or one line of a batch file)."""
        body: dict[str, Any] = {"model": self.endpoint.model, "messages": full_messages, **self.sent_params}
        if n > 1:
            body["n"] = n
        if self.usage_accounting and "usage" not in body:  # not in the cache key: it changes no answer
            body["usage"] = {"include": True}
        return body

    @property
    def usage_accounting(self) -> bool:
        """Whether to ask the provider for the real charge of each request (OpenRouter's `usage.cost`): what it
        bills may differ from the listed price (another provider behind the same id, per-request fees)."""
        from distill.llm.provider_prices import is_openrouter

        ep = self.endpoint
        return getattr(ep, "price_source", "auto") == "openrouter" or is_openrouter(ep.base_url)

    @staticmethod
    def provider_cost(resp: dict[str, Any]) -> float | None:
        """The charge the provider reported for this response (`usage.cost`, $), when it did."""
        v = (resp.get("usage") or {}).get("cost") if isinstance(resp.get("usage"), dict) else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None

    # -- what it may cost ---------------------------------------------------------------------------------------
    def worst_case_usd(self, full_messages: list[dict[str, Any]], n: int, *, batch: bool = False) -> float:
        """The spend cap's true upper bound for one request of `n` samples (see budget.py for why it holds)."""
        worst = self.price.cost(prompt_token_bound(full_messages), self.max_output * n)
        return self.price.batch_discount * worst if batch else worst

    @property
    def cheapest_worst_case_usd(self) -> float:
        """The worst case of the cheapest request there can be: when not even this fits, nothing will."""
        return self.price.cost(prompt_token_bound([{"role": "user", "content": ""}]), self.max_output)

    def cost_usd(self, usage: dict[str, int], provider_cost: float | None = None) -> float:
        """What a response cost: the provider's own figure when it gave one, else tokens x price."""
        if provider_cost is not None:
            return provider_cost
        return self.price.cost(usage["prompt_tokens"], usage["completion_tokens"])

    # -- what an answer becomes ---------------------------------------------------------------------------------
    def records(self, resp: dict[str, Any], pending: dict[int, str], *, latency: float | None, attempts: int,
                batch_id: str | None = None) -> list[dict[str, Any]]:
        """One record per choice, for the sample indices (-> cache keys) in `pending`; tokens and cost are split
        across the samples so that records sum to the bill (at the batch price when `batch_id` is set)."""
        ep = self.endpoint
        usage = usage_fields(resp.get("usage"))
        discount = self.price.batch_discount if batch_id is not None else 1.0
        choices = sorted(resp["choices"], key=lambda c: c.get("index", 0))[: len(pending)]
        parsed = [parse_message(c.get("message") or {}) for c in choices]
        lengths = [len(p["completion"]) + len(p["reasoning"] or "") for p in parsed]
        total_len = sum(lengths) or 1
        share = [(ln / total_len) if sum(lengths) else 1 / len(parsed) for ln in lengths]
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        billed = self.provider_cost(resp)  # the provider's real charge, split as the tokens are
        out = []
        for (index, key), choice, p, s in zip(pending.items(), choices, parsed, share, strict=False):
            rec = {
                "id": key,
                "endpoint": ep.name,
                "model": resp.get("model") or ep.model,
                "requested_model": ep.model,
                "base_url": ep.base_url,
                "sample_index": index,
                **p,
                "finish_reason": choice.get("finish_reason"),
                "prompt_tokens": usage["prompt_tokens"],
                "completion_tokens": round(usage["completion_tokens"] * s),
                "reasoning_tokens": round(usage["reasoning_tokens"] * s),
                "cost_usd": (billed * s if billed is not None else
                             self.price.cost(usage["prompt_tokens"] * s, usage["completion_tokens"] * s) * discount),
                "latency_s": round(latency, 4) if latency is not None else None,
                "created_at": created,
                "response_id": resp.get("id"),
                "attempts": attempts,
                "params": self.params_json,
            }
            if batch_id is not None:
                rec["batch_id"] = batch_id
            if billed is not None:
                rec["cost_source"] = "provider"
            self.check_structured(rec)
            out.append(rec)
        return out

    def check_structured(self, rec: dict[str, Any]) -> None:
        """With a response_format: the parsed object into `structured`, or the validation error into `invalid`
        (never cached: the executor asks again, `split_invalid`)."""
        if self.structured is None:
            return
        obj, invalid = self.structured.check(rec["completion"])
        rec["structured"] = json.dumps(obj, ensure_ascii=False) if invalid is None else None
        if invalid is not None:
            cut = rec.get("finish_reason") == "length"
            rec["invalid"] = invalid + (" (the answer was cut at max_tokens: raise it)" if cut else "")

    def split_invalid(self, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(valid, invalid) records of an answer: invalid = not matching the response_format (none without one)."""
        if self.structured is None:
            return records, []
        return [r for r in records if "invalid" not in r], [r for r in records if "invalid" in r]


class Runner(Protocol):
    """What collect and eval need of an executor (online `ChatRunner`, `batch.BatchRunner`)."""

    model: RequestModel
    ep: EndpointConfig
    price: Price
    stats: RunStats

    async def run(self, requests: Any, on_result: OnResult) -> RunStats: ...
