"""The one way distill talks to a model: concurrent, rate-limited, retried, cached and priced chat requests.

Collect (teacher answers) and evaluate (teacher and student on benchmarks) both go through `ChatRunner`, so the
teacher API and the student's vLLM server are queried by exactly the same code.
"""

from distill.llm.cache import ResponseCache
from distill.llm.endpoint import EndpointConfig, RetryConfig, SamplingParams
from distill.llm.pricing import Price, price_for
from distill.llm.runner import ChatRequest, ChatRunner, RunStats

__all__ = [
    "ChatRequest",
    "ChatRunner",
    "EndpointConfig",
    "Price",
    "ResponseCache",
    "RetryConfig",
    "RunStats",
    "SamplingParams",
    "price_for",
]
