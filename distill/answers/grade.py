"""`grade()`: the one verdict eval scoring and curate verification share, with a reason tag that summaries count.

Reasons: match, mismatch, no_answer, truncated, hedged, refusal, unclosed_think, bad_reference.
The rules (what counts as the committed answer, per kind) are written in docs/grading.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distill.answers.choice import read_choice
from distill.answers.markers import REFUSAL, Reading
from distill.answers.mathkind import math_equal, read_math
from distill.answers.numbers import find_numbers, parse_number
from distill.answers.numeric import read_number
from distill.answers.reasoning import has_unclosed_think, strip_reasoning
from distill.errors import InputError

# Bump when a rule in docs/grading.md changes what a reply is graded: reports and manifests carry it, so two
# tables are comparable only at the same version.
GRADER_VERSION = "2"
KINDS = ("number", "choice", "math")
REASONS = ("match", "mismatch", "no_answer", "truncated", "hedged", "refusal", "unclosed_think", "bad_reference")
CHOICE_LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Grade:
    """A verdict: right or not, the answer read from the reply (None: none committed), and why (a REASONS tag)."""

    correct: bool
    extracted: str | None
    reason: str


def read_answer(output: str | None, kind: str, *, letters: str = "ABCD") -> Reading:
    """The committed answer of a reply (reasoning stripped), without judging it."""
    text = strip_reasoning(output)
    if kind == "number":
        return read_number(text)
    if kind == "choice":
        return read_choice(text, letters)
    if kind == "math":
        return read_math(text)
    raise InputError(f"grade: kind must be one of {', '.join(KINDS)}; got {kind!r}")


def _reference_value(reference: str):
    v = parse_number(reference)
    if v is None:
        nums = find_numbers(str(reference))
        v = nums[-1].value if "####" in str(reference) and nums else None
    return v


def grade(output: str, reference: str, kind: str, *, finish_reason: str | None = None,
          letters: str | None = None) -> Grade:
    """Judge one reply against its reference.

    kind: number (GSM8K-style), choice (`letters`: the options' letters, default A-D or up to the reference's
    letter), math (LaTeX, via math-verify). A reply cut off by the token limit
    (`finish_reason == "length"`) or inside an unclosed `<think>` is wrong whatever it said so far.
    """
    if kind not in KINDS:
        raise InputError(f"grade: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if finish_reason == "length":
        return Grade(False, None, "truncated")
    if has_unclosed_think(output):
        return Grade(False, None, "unclosed_think")
    ref = str(reference).strip()
    if kind == "choice":
        ref = re.sub(r"[^A-Za-z]", "", ref).upper()
        if len(ref) != 1 or ref not in CHOICE_LETTERS:
            return Grade(False, None, "bad_reference")
        if letters is None:  # A-D, or up to the reference's letter when it is later (MMLU-Pro has A-J)
            letters = CHOICE_LETTERS[: max(4, CHOICE_LETTERS.index(ref) + 1)]
        elif ref not in letters.upper():
            return Grade(False, None, "bad_reference")
    reading = read_answer(output, kind, letters=letters or "ABCD")
    if reading.extracted is None:
        return Grade(False, None, "refusal" if REFUSAL.search(strip_reasoning(output)) else "no_answer")
    if reading.hedged:
        return Grade(False, reading.extracted, "hedged")
    if kind == "number":
        want = _reference_value(ref)
        if want is None:
            return Grade(False, reading.extracted, "bad_reference")
        ok = reading.value == want
    elif kind == "choice":
        ok = reading.extracted == ref
    else:
        ok = math_equal(reading.extracted, ref)
    return Grade(ok, reading.extracted, "match" if ok else "mismatch")
