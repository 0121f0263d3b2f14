"""The one rough token count, for wherever no tokenizer is at hand: ceil(characters / 4).

Curate's token bounds without `student_tokenizer`, collect's dry-run estimate without tiktoken or a local
tokenizer, and the TPM limiter's charge before a request all fall back to it, so a text has one estimate.
Never used to bill or to cap spend (that is `llm.budget.prompt_token_bound`, a true upper bound).
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """ceil(len / 4): English BPE averages about 4 characters a token; rounding up counts a short text as 1."""
    return -(-len(text) // CHARS_PER_TOKEN)
