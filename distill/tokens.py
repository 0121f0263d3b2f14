"""The one rough token count, for wherever no tokenizer is at hand: ceil(characters / 4).

Curate's token bounds without `student_tokenizer`, collect's dry-run estimate without tiktoken or a local
tokenizer, and the TPM limiter's charge before a request all fall back to it, so a text has one estimate.
Never used to bill or to cap spend (that is `llm.budget.prompt_token_bound`, a true upper bound).
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """ceil(len / 4): English BPE averages about 4 characters a token; rounding up counts a short text as 1."""
    return -(-len(text) // CHARS_PER_TOKEN)


_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding", "davinci", "babbage")


class TokenCounter:
    """Token counts by the best method at hand, one class for every stage that counts: tiktoken for OpenAI model
    names, else a tokenizer (`tokenizer_dir`: a local dir or hub id), else `approx_tokens`. `method` says which was
    used (summaries print it); `field` is the config key a tokenizer that fails to load is reported under."""

    def __init__(self, model: str | None, tokenizer_dir: str | None, *, field: str):
        self.method = "chars/4"
        self._enc: Any = None
        self._hf: Any = None
        name = (model or "").lower().rsplit("/", 1)[-1]
        reasons = []
        if name.startswith(_OPENAI_PREFIXES):
            try:
                import tiktoken

                try:
                    self._enc = tiktoken.encoding_for_model(name)
                except KeyError:
                    self._enc = tiktoken.get_encoding("o200k_base")
                self.method = f"tiktoken ({self._enc.name})"
                return
            except Exception as e:  # noqa: BLE001 - offline boxes cannot fetch the BPE files
                reasons.append(f"tiktoken unavailable: {type(e).__name__}")
        if tokenizer_dir:
            from transformers import AutoTokenizer

            from distill.errors import ConfigError

            try:
                self._hf = AutoTokenizer.from_pretrained(tokenizer_dir)
            except Exception as e:  # noqa: BLE001
                raise ConfigError(f"{field}: cannot load a tokenizer from {tokenizer_dir!r} "
                                  f"({type(e).__name__}: {e})") from None
            self.method = f"tokenizer {tokenizer_dir}"
            return
        if reasons:
            self.method = f"chars/4 ({'; '.join(reasons)})"

    def texts(self, texts: list[str]) -> list[int]:
        """Plain texts (no chat template, no special tokens): curate's token bounds."""
        if self._enc is not None:
            return [len(ids) for ids in self._enc.encode_batch(texts)]
        if self._hf is not None:
            return [len(ids) for ids in self._hf(texts, add_special_tokens=False)["input_ids"]]
        return [approx_tokens(t) for t in texts]

    def count(self, messages: list[dict[str, Any]]) -> int:
        """One chat prompt as the provider bills it (its chat template, or OpenAI's per-message accounting)."""
        if self._enc is not None:  # OpenAI's chat accounting: 3 tokens per message + 3 to prime the reply
            return sum(len(self._enc.encode(str(m.get("content") or ""))) + 3 for m in messages) + 3
        if self._hf is not None:
            if getattr(self._hf, "chat_template", None):
                return len(self._hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True))
            return len(self._hf.encode("\n".join(str(m.get("content") or "") for m in messages)))
        from distill.llm.request import estimate_prompt_tokens

        return estimate_prompt_tokens(messages)
