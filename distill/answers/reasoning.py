"""Reasoning traces inside an answer: what is left for grading once `<think>` blocks are cut."""

from __future__ import annotations

import re

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think(?:ing)?>.*\Z", re.DOTALL | re.IGNORECASE)
_THINK_CLOSE_ONLY = re.compile(r"\A.*?</think(?:ing)?>", re.DOTALL | re.IGNORECASE)


def strip_reasoning(text: str | None) -> str:
    """The answer part of a completion: drops `<think>...</think>` blocks (and an unclosed trailing one).

    A completion that starts mid-trace and only has the closing tag (some servers strip the opening one) keeps
    what follows the close.
    """
    if not text:
        return ""
    out = _THINK.sub("", text)
    if re.search(r"</think(?:ing)?>", out, re.IGNORECASE):
        out = _THINK_CLOSE_ONLY.sub("", out)
    out = _THINK_OPEN.sub("", out)
    return out.strip()


def has_unclosed_think(text: str | None) -> bool:
    """True when a `<think>` block opens and never closes: the model was still reasoning, so it never answered."""
    if not text:
        return False
    return bool(re.search(r"<think(?:ing)?>", _THINK.sub("", text), re.IGNORECASE))
