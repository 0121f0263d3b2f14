"""Final-answer extraction and matching: the one place curate (verification) and evaluate (scoring) read answers.

Kept deliberately small and deterministic: both stages must agree on what "the model answered 12" means, or the
report's teacher-vs-student comparison is not fair.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from distill.answers.code import extract_code
from distill.answers.reasoning import strip_reasoning

# A number as people write it: optional sign, optional $, digits with optional thousands commas, optional decimals.
_NUM = r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\$?\s?\.\d+"
_HASHES = re.compile(r"####\s*(" + _NUM + ")")
_ANSWER_IS = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*\**\s*(?:\\boxed\{)?\s*(" + _NUM + ")", re.IGNORECASE
)
_BOXED = re.compile(r"\\boxed\{\s*(" + _NUM + r")\s*\}")
_ANY_NUM = re.compile(_NUM)


def _normalize_number(raw: str) -> str | None:
    s = raw.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    if not s or s in {"-", "."}:
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def extract_number(text: str | None) -> str | None:
    """GSM8K-style final answer as a normalized decimal string ("1,234.0" -> "1234"), or None.

    Order: `#### N`, then the last "The answer is N" / `\\boxed{N}`, then the last number in the text.
    """
    text = strip_reasoning(text)
    if not text:
        return None
    for pat in (_HASHES, _ANSWER_IS, _BOXED):
        found = pat.findall(text)
        if found:
            return _normalize_number(found[-1])
    found = _ANY_NUM.findall(text)
    return _normalize_number(found[-1]) if found else None


def numbers_match(pred: str | None, ref: str | None) -> bool:
    """Numeric equality after normalization: 12.0 == 12, "1,234" == 1234, "$5" == 5."""
    if pred is None or ref is None:
        return False
    a = _normalize_number(str(pred).strip())
    b = _normalize_number(str(ref).strip())
    if a is None or b is None:
        return False
    return Decimal(a) == Decimal(b)


def extract_choice(text: str | None, letters: str = "ABCD") -> str | None:
    """A multiple-choice letter ("Answer: C", "(C)", "The answer is C", a lone "C"), or None.

    Explicit answer phrases win over bare parenthesized letters; the last explicit one wins (models restate).
    """
    text = strip_reasoning(text)
    if not text:
        return None
    L = re.escape(letters)
    explicit = re.compile(
        rf"(?:answer|choice|option)\s*(?:is|:)?\s*:?\s*(?:option\s*)?\**\(?\s*(?-i:([{L}]))\s*\)?(?![A-Za-z0-9])", re.IGNORECASE
    )
    found = explicit.findall(text)
    if found:
        return found[-1]
    paren = re.findall(rf"\(([{L}])\)", text)
    if paren:
        return paren[-1]
    lone = re.fullmatch(rf"\s*\**\s*([{L}])\s*[\.\):]?\s*\**\s*", text)
    if lone:
        return lone.group(1)
    lead = re.match(rf"\s*([{L}])[\.\):]\s", text + " ")
    if lead:
        return lead.group(1)
    return None

__all__ = ["strip_reasoning", "extract_number", "numbers_match", "extract_choice", "extract_code"]
