"""Reading answers: the one place curate (verification) and evaluate (scoring) judge a reply.

`grade(output, reference, kind, finish_reason=...)` is the public verdict; the rules it follows are written in
docs/grading.md. The `extract_*` / `numbers_match` helpers below are thin views of the same readers, for code that
needs the answer without a reference (a benchmark file's gold answer, the demo's answer-only targets).
"""

from __future__ import annotations

from distill.answers.choice import read_choice
from distill.answers.code import extract_code
from distill.answers.grade import GRADER_VERSION, KINDS, REASONS, Grade, grade, read_answer
from distill.answers.numbers import format_number, parse_number
from distill.answers.numeric import read_number
from distill.answers.reasoning import has_unclosed_think, strip_reasoning


def extract_number(text: str | None) -> str | None:
    """The committed final number as a canonical string ("1,234.0" -> "1234"), or None (rules: docs/grading.md)."""
    return read_number(strip_reasoning(text)).extracted


def numbers_match(pred: str | None, ref: str | None) -> bool:
    """Equality by value: "12.0" == "12", "1,234" == "1234", "$5" == "5", ".5" == "1/2"."""
    a, b = parse_number(pred), parse_number(ref)
    return a is not None and a == b


def extract_choice(text: str | None, letters: str = "ABCD") -> str | None:
    """The committed option letter (upper case), or None (rules: docs/grading.md)."""
    return read_choice(strip_reasoning(text), letters).extracted


__all__ = ["grade", "Grade", "GRADER_VERSION", "KINDS", "REASONS", "read_answer", "strip_reasoning", "has_unclosed_think",
           "extract_number", "numbers_match", "extract_choice", "extract_code", "parse_number", "format_number"]
