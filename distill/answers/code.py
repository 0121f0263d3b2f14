"""Code replies: which block of a chat answer is the program to run (HumanEval, curate's code verification)."""

from __future__ import annotations

import re

from distill.answers.reasoning import strip_reasoning

_FENCE_PY = re.compile(r"```(?:python|py|python3)[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FENCE_ANY = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(text: str | None) -> str:
    """The first ```python fenced block (else the first fenced block, else the whole answer text)."""
    text = strip_reasoning(text)
    for pat in (_FENCE_PY, _FENCE_ANY):
        m = pat.search(text)
        if m:
            return m.group(1)
    return text
