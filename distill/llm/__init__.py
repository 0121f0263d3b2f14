"""The one way distill talks to a model: concurrent, rate-limited, retried, cached and priced chat requests.

A `RequestModel` says what one endpoint's requests are (body, cache key, worst-case cost, records; `request_model`
picks the wire format by `provider`: OpenAI chat completions, or `anthropic.AnthropicRequestModel`); an executor
sends them behind one `run(requests, on_result)`: `ChatRunner` online, `BatchRunner` through the Batch API
(`anthropic_batch.AnthropicBatchRunner` through the Message Batches API).
Collect (teacher answers) and evaluate (teacher and student on benchmarks) both go through them, so the teacher
API and the student's vLLM server are queried by exactly the same code. A new mode is a new executor over the
same `RequestModel`; a new wire format is a `RequestModel` subclass (`transport`, `body`, `check`, `usage`,
`records`).
"""

from distill.llm.cache import ResponseCache
from distill.llm.endpoint import EndpointConfig, RetryConfig, SamplingParams
from distill.llm.pricing import Price, price_for
from distill.llm.request import ChatRequest, OnResult, RequestModel, Runner, RunStats, request_model
from distill.llm.runner import ChatRunner

__all__ = [
    "ChatRequest",
    "ChatRunner",
    "EndpointConfig",
    "OnResult",
    "Price",
    "RequestModel",
    "ResponseCache",
    "RetryConfig",
    "RunStats",
    "Runner",
    "SamplingParams",
    "price_for",
    "request_model",
]
