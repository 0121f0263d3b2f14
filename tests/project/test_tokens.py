"""One chars/4 rule: curate's fallback count, the dry-run estimate and the TPM pre-charge all read `approx_tokens`."""

from __future__ import annotations

from distill.curate.pipeline import TokenCounter
from distill.llm.request import estimate_prompt_tokens
from distill.tokens import approx_tokens


def test_approx_tokens_rounds_up() -> None:
    assert [approx_tokens("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_curate_and_the_request_estimate_count_a_text_alike() -> None:
    texts = ["", "a", "What is 12 + 30?", "x" * 401]
    assert TokenCounter(None)(texts) == [approx_tokens(t) for t in texts]
    msgs = [{"role": "user", "content": t} for t in texts]
    # the request estimate is the same per-text count plus the chat overhead (4 per message, 3 to prime the reply)
    assert estimate_prompt_tokens(msgs) == sum(approx_tokens(t) for t in texts) + 4 * len(texts) + 3
