"""$ per 1M tokens for common models; the config's `price` overrides. Unknown models cost 0 and say so."""

from __future__ import annotations

from dataclasses import dataclass, replace

from distill.llm.endpoint import EndpointConfig


@dataclass(frozen=True)
class Price:
    prompt: float  # $ / 1M prompt tokens
    completion: float  # $ / 1M completion tokens (reasoning tokens included)
    known: bool = True
    batch_discount: float = 0.5  # Batch API price = discount x online price (OpenAI and Anthropic alike)
    cache_read: float | None = None  # $ / 1M prompt tokens read from the provider's prompt cache (None: `prompt`)
    cache_write: float | None = None  # $ / 1M prompt tokens written to it (None: `prompt`)

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6

    def cost_cached(self, prompt_tokens: float, completion_tokens: float, cache_read: float, cache_write: float
                    ) -> float:
        """`prompt_tokens` counts every prompt token; the cache-read and cache-written ones among them are priced
        at their own rates."""
        plain = prompt_tokens - cache_read - cache_write
        read = self.prompt if self.cache_read is None else self.cache_read
        write = self.prompt if self.cache_write is None else self.cache_write
        return (plain * self.prompt + cache_read * read + cache_write * write
                + completion_tokens * self.completion) / 1e6


# Public list prices (USD per 1M tokens). Longest matching prefix of the model id wins, so dated snapshots
# (gpt-4o-2024-08-06) and provider prefixes (openai/gpt-4o on OpenRouter) resolve.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o1-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "o3-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-5": (5.00, 25.00),
    "claude-haiku-4": (1.00, 5.00),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
    "deepseek-r1": (0.55, 2.19),
    "deepseek-v3": (0.27, 1.10),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
    "llama-3.1-8b-instruct": (0.02, 0.05),
    "llama-3.1-70b-instruct": (0.12, 0.30),
    "llama-3.3-70b-instruct": (0.12, 0.30),
    "qwen-2.5-72b-instruct": (0.12, 0.39),
    "qwen3-235b-a22b": (0.13, 0.60),
}


# Anthropic's prompt caching: reads cost 0.1x the input price, 5-minute cache writes 1.25x
ANTHROPIC_CACHE_READ, ANTHROPIC_CACHE_WRITE = 0.1, 1.25


def lookup(model: str) -> Price | None:
    name = model.lower().rsplit("/", 1)[-1]
    best = max((k for k in DEFAULT_PRICES if name.startswith(k)), key=len, default=None)
    if best is None:
        return None
    return Price(*DEFAULT_PRICES[best])


def price_for(endpoint: EndpointConfig) -> Price:
    """The config's price, else the table's, else zero marked unknown (reports say "price unknown").
    An Anthropic endpoint's cache reads and writes get Anthropic's multipliers unless the config names them."""
    p = endpoint.price
    if p is not None:
        found = Price(p.prompt, p.completion, cache_read=p.cache_read, cache_write=p.cache_write)
    else:
        found = lookup(endpoint.model) or Price(0.0, 0.0, known=False)
    if endpoint.provider == "anthropic":
        found = replace(
            found,
            cache_read=found.cache_read if found.cache_read is not None else ANTHROPIC_CACHE_READ * found.prompt,
            cache_write=found.cache_write if found.cache_write is not None else ANTHROPIC_CACHE_WRITE * found.prompt)
    return found
