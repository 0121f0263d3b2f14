"""The shape of a reply around its answer, shared by every kind: where a clause ends, what retracts an earlier
answer, what is a hedge, a refusal, a check section. docs/grading.md states these rules in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    """What a reply committed to: the answer text (None: nothing committed), its value, and whether it hedged."""

    extracted: str | None
    value: object = None
    hedged: bool = False


NOTHING = Reading(None)


# Words that take back what came before ("Wait, I misread...", "Actually, ..."): an answer before them is not
# committed unless it is stated again after them.
RETRACT = re.compile(
    r"\b(?:wait|hold on|oops|hmm+|actually|on second thought|scratch that|correction|"
    r"i made (?:a|an) (?:mistake|error)|i misread|that(?:'s| is| was) (?:not right|wrong|incorrect)|"
    r"let me (?:re-?(?:check|calculate|compute|do|read|consider|think|evaluate|examine))|"
    r"let me (?:start over|try again|redo)|no,? (?:that's|that is|wait))\b",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(?:i (?:can(?:no|')t|cannot|am unable to|'m unable to|won't|am not able to|'m not able to) "
    r"(?:help|assist|answer|provide|solve|determine|do that|comply)|i'm sorry,? but|as an ai\b)",
    re.IGNORECASE,
)
# Where a reply starts checking its answer; numbers after it are the check's, not a new answer.
CHECK = re.compile(
    r"^[ \t>*#_-]*(?:\*\*)?(?:check|verification|verify|verifying|double[- ]check|sanity check|"
    r"let(?:'s| us) (?:verify|check|double[- ]check))\b",
    re.IGNORECASE | re.MULTILINE,
)


def clause_at(text: str, pos: int, *, lines: int = 2) -> tuple[int, str]:
    """The clause starting at `pos` (after up to `lines` blank/markup-only lines): up to the sentence's end.

    Returns (start offset, clause text). A decimal point ("7.5") does not end a sentence.
    """
    i = pos
    for _ in range(lines + 1):
        m = re.match(r"[ \t*:_#>=\-]*(?:\$\$|\\\[)?[ \t]*\n", text[i:])
        if not m:
            break
        i += m.end()
    j = i
    while j < len(text):
        c = text[j]
        if c == "\n":
            break
        if c in ".!?;" and (j + 1 == len(text) or text[j + 1] in " \t\n*") and not (
                c == "." and j > i and text[j - 1].isdigit() and j + 1 < len(text) and text[j + 1].isdigit()):
            break
        j += 1
    return i, text[i:j]


def drop_parenthetical(clause: str) -> str:
    """`540 m (9 x 60 m)` -> `540 m          `: breakdowns in parentheses are not the answer (offsets kept)."""
    out = clause
    while True:
        new = re.sub(r"(?<!\\left)\((?![A-Ja-j]\))[^()]*\)", lambda m: " " * len(m.group(0)), out)
        if new == out:
            return out
        out = new


def retracted_after(text: str, pos: int) -> re.Match[str] | None:
    """The first retraction cue after `pos`, if any."""
    return RETRACT.search(text, pos)


def check_start(text: str) -> int | None:
    """Offset of the first check section ("Check: ...", "**Verification**"), or None."""
    m = CHECK.search(text)
    return m.start() if m else None


def boxed_content(text: str, start: int) -> str:
    """The text inside `\\boxed{` from `start` (just past the brace) to its balanced closing brace."""
    depth, i = 1, start
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1] if depth == 0 else text[start:]
