"""Chat template -> token ids + loss labels, and the check that runs before any training step.

`encode` is the ONE rendering path: the trainer gets its pre-tokenized `input_ids`/`labels` from it and
`check_template` reports on exactly those, so the check can never disagree with what is trained. The traps it
catches: an assistant mask that is empty (template without `{% generation %}`), an end-of-turn token outside the
loss (the student never learns to stop), `<think>` traces the template drops, and truncation at max_length.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError, InputError
from distill.train.config import TrainConfig
from distill.train.data import validate_messages

IGNORE = -100
_GEN_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")
_THINK = re.compile(r"<think>(.*?)</think>", re.S)
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


def resolve_template(cfg: TrainConfig, tokenizer: Any) -> str:
    """The template training renders with: the config's (inline or a file) or the student's own."""
    tpl = cfg.chat_template
    if tpl is not None:
        if "{%" not in tpl and "{{" not in tpl:
            path = Path(tpl)
            if not path.is_file():
                raise ConfigError(f"train.chat_template: {tpl!r} is neither a Jinja template nor an existing file")
            tpl = path.read_text()
        return tpl
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):
        own = own.get("default")
    if not own:
        raise ConfigError(
            f"train.student: the tokenizer of {cfg.student!r} has no chat template; set train.chat_template "
            "(inline Jinja or a .jinja file), with the assistant turn wrapped in {% generation %}...{% endgeneration %}"
        )
    return own


def load_tokenizer(cfg: TrainConfig) -> Any:
    """The student's tokenizer with the training template attached (so it is saved with the model)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(cfg.student)
    except (OSError, ValueError) as err:
        raise ConfigError(f"train.student: cannot load a tokenizer from {cfg.student!r} ({err})") from None
    tok.chat_template = resolve_template(cfg, tok)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def end_token_ids(tokenizer: Any) -> set[int]:
    """Token ids that can end an assistant turn (EOS and the common end-of-turn specials in this vocab)."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in END_OF_TURN if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def encode(tokenizer: Any, messages: list[dict[str, str]], loss_on: str) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 outside the loss) of one conversation, rendered as the student will see it."""
    if loss_on == "assistant":
        out = tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(out["input_ids"])
        mask = out.get("assistant_masks") or [0] * len(ids)
        return ids, [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=True, return_dict=True, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    p, ids = list(prompt["input_ids"]), list(full["input_ids"])
    n = 0
    while n < min(len(p), len(ids)) and p[n] == ids[n]:
        n += 1
    return ids, [IGNORE] * n + ids[n:]


@dataclass
class TemplateCheck:
    """What the check measured over the first N examples; `problems` non-empty means training must not start."""

    examples: int = 0
    loss_on: str = "assistant"
    has_generation_tags: bool = False
    empty_mask: int = 0
    eos_in_loss: int = 0
    end_tokens: list[str] = field(default_factory=list)
    with_think: int = 0
    think_survives: int = 0
    max_length: int = 0
    truncated: int = 0
    assistant_tokens: int = 0
    assistant_tokens_truncated: int = 0
    dropped_after_truncation: int = 0
    problems: list[str] = field(default_factory=list)

    def share(self, n: int) -> float:
        return n / self.examples if self.examples else 0.0

    def rows(self) -> list[tuple[str, str, str]]:
        """(check, value, verdict) rows for the table and summary.json."""
        ok = lambda good: "ok" if good else "FAIL"  # noqa: E731
        think = (
            ("n/a (no <think> in data)", "ok") if not self.with_think
            else (f"{self.think_survives}/{self.with_think}", ok(self.think_survives == self.with_think))
        )
        return [
            ("examples rendered", str(self.examples), f"loss_on={self.loss_on}"),
            ("template has {% generation %}", "yes" if self.has_generation_tags else "no",
             "ok" if self.has_generation_tags or self.loss_on == "completion" else "FAIL"),
            ("empty assistant mask", f"{self.empty_mask} ({self.share(self.empty_mask):.1%})", ok(self.empty_mask == 0)),
            ("end-of-turn token in loss", f"{self.eos_in_loss}/{self.examples - self.empty_mask} "
             f"({', '.join(self.end_tokens)})", ok(self.eos_in_loss == self.examples - self.empty_mask)),
            ("<think> content survives", *think),
            (f"truncated at max_length={self.max_length}", f"{self.truncated} ({self.share(self.truncated):.1%})",
             "ok" if not self.truncated else "warn"),
            ("assistant tokens cut",
             f"{self.assistant_tokens_truncated}/{self.assistant_tokens}",
             "ok" if not self.assistant_tokens_truncated else "warn"),
            ("examples dropped (no loss left)", str(self.dropped_after_truncation),
             "ok" if not self.dropped_after_truncation else "warn (dropped)"),
        ]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = [{"check": c, "value": v, "verdict": s} for c, v, s in self.rows()]
        return d


def check_template(tokenizer: Any, dataset: Any, cfg: TrainConfig, source: str) -> TemplateCheck:
    """Render the first `cfg.check_examples` rows exactly as training will and measure the known traps."""
    tpl = tokenizer.chat_template
    chk = TemplateCheck(loss_on=cfg.loss_on, has_generation_tags=bool(_GEN_TAG.search(tpl)), max_length=cfg.max_length)
    ends = end_token_ids(tokenizer)
    chk.end_tokens = sorted(tokenizer.convert_ids_to_tokens(sorted(ends)))
    n = min(cfg.check_examples, len(dataset))
    for i, row in enumerate(dataset.select(range(n))):
        msgs = validate_messages(row["messages"], f"{source} row {i}")
        try:
            ids, labels = encode(tokenizer, msgs, cfg.loss_on)
        except Exception as err:  # a Jinja error in a user template is the user's to fix
            raise DistillError(f"chat template failed to render {source} row {i}: {err}") from None
        chk.examples += 1
        loss_pos = [j for j, lab in enumerate(labels) if lab != IGNORE]
        if not loss_pos:
            chk.empty_mask += 1
            continue
        if any(labels[j] in ends for j in loss_pos):
            chk.eos_in_loss += 1
        trained_turns = [m for m in msgs if m["role"] == "assistant"]
        if cfg.loss_on == "completion":
            trained_turns = trained_turns[-1:]  # only the last turn is in the loss by design
        thinks = [t.strip() for m in trained_turns
                  for t in [*_THINK.findall(m["content"]), m.get("reasoning_content") or ""] if t.strip()]
        if thinks:
            chk.with_think += 1
            trained = " ".join(tokenizer.decode([labels[j] for j in loss_pos]).split())
            if all(" ".join(t.split())[:200] in trained for t in thinks):
                chk.think_survives += 1
        chk.assistant_tokens += len(loss_pos)
        if len(ids) > cfg.max_length:
            chk.truncated += 1
            cut = sum(1 for j in loss_pos if j >= cfg.max_length)
            chk.assistant_tokens_truncated += cut
            if cut == len(loss_pos):
                chk.dropped_after_truncation += 1
    if chk.examples and chk.empty_mask:
        if cfg.loss_on == "assistant" and not chk.has_generation_tags:
            chk.problems.append(
                f"{chk.empty_mask}/{chk.examples} examples have an empty assistant mask: the chat template has no "
                "{% generation %}...{% endgeneration %} around the assistant turn, so assistant-only loss would train "
                "on nothing. Fix: set train.chat_template to a template that wraps the assistant content and its "
                "end-of-turn token in {% generation %} tags, or set train.loss_on: completion (loss on the last "
                "assistant turn, found as everything after the rendered prompt)"
            )
        else:
            chk.problems.append(
                f"{chk.empty_mask}/{chk.examples} examples have no loss tokens: the chat template renders no "
                f"assistant tokens for them (loss_on={cfg.loss_on}); check that it renders the assistant turn"
            )
    if chk.examples > chk.empty_mask and chk.eos_in_loss < chk.examples - chk.empty_mask:
        chk.problems.append(
            f"the end-of-turn token ({', '.join(chk.end_tokens) or 'none known'}) is outside the loss in "
            f"{chk.examples - chk.empty_mask - chk.eos_in_loss} examples: the student would never learn to stop. "
            "Fix: move it inside {% generation %}...{% endgeneration %} in train.chat_template"
        )
    if chk.with_think and chk.think_survives < chk.with_think:
        chk.problems.append(
            f"<think> content is lost in {chk.with_think - chk.think_survives}/{chk.with_think} examples that have it: "
            "the chat template strips reasoning from assistant turns (or does not render `reasoning_content`), so "
            "the student would not learn the traces. "
            "Fix: set train.chat_template to one that renders assistant content verbatim (or strip the traces in "
            "curate if answer-only training is what you want)"
        )
    return chk


def print_check(chk: TemplateCheck) -> None:
    from rich.table import Table

    from distill.progress import console

    table = Table(title="chat-template check", show_lines=False)
    for col in ("check", "value", "verdict"):
        table.add_column(col)
    colors = {"ok": "green", "FAIL": "red"}
    for c, v, s in chk.rows():
        color = colors.get(s, "yellow" if s.startswith("warn") else "white")
        table.add_row(c, v, f"[{color}]{s}[/{color}]")
    console.print(table)


def raise_on_problems(chk: TemplateCheck, student: str) -> None:
    if chk.problems:
        raise InputError(f"chat-template check failed for {student}: " + " | ".join(chk.problems))
