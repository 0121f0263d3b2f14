"""One chars/4 rule: curate's fallback count, the dry-run estimate and the TPM pre-charge all read `approx_tokens`."""

from __future__ import annotations

from distill.llm.request import estimate_prompt_tokens
from distill.tokens import TokenCounter, approx_tokens


def test_approx_tokens_rounds_up() -> None:
    assert [approx_tokens("x" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_curate_and_the_request_estimate_count_a_text_alike() -> None:
    texts = ["", "a", "What is 12 + 30?", "x" * 401]
    counter = TokenCounter(None, None, field="curate.student_tokenizer")
    assert counter.method == "chars/4" and counter.texts(texts) == [approx_tokens(t) for t in texts]
    msgs = [{"role": "user", "content": t} for t in texts]
    # the request estimate is the same per-text count plus the chat overhead (4 per message, 3 to prime the reply)
    assert estimate_prompt_tokens(msgs) == sum(approx_tokens(t) for t in texts) + 4 * len(texts) + 3
    assert counter.count(msgs) == estimate_prompt_tokens(msgs)  # one class counts texts and chat prompts


def test_one_counter_reads_a_tokenizer_for_texts_and_chat_prompts(tmp_path) -> None:
    """Curate (texts) and the dry runs (chat prompts) count with the same class; a bad tokenizer names its field."""
    import pytest

    from distill.devtools.tiny import build_tokenizer
    from distill.errors import ConfigError

    tok_dir = tmp_path / "tok"
    build_tokenizer(["hello world, what is 12 + 30?"] * 20, out_dir=tok_dir)
    c = TokenCounter("my-student", str(tok_dir), field="curate.student_tokenizer")
    assert c.method == f"tokenizer {tok_dir}"
    assert c.texts(["", "hello world"])[0] == 0 and c.texts(["hello world"])[0] > 0
    assert c.count([{"role": "user", "content": "hello world"}]) >= c.texts(["hello world"])[0]  # + any template
    with pytest.raises(ConfigError, match="eval.estimate.tokenizers.m: cannot load a tokenizer"):
        TokenCounter("m", str(tmp_path / "missing"), field="eval.estimate.tokenizers.m")
