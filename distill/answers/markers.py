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


def clause_at(text: str, pos: int, *, lines: int = 2, limit: int = 400) -> tuple[int, str]:
    """The clause starting at `pos` (after up to `lines` blank/markup-only lines): up to the sentence's end.

    Returns (start offset, clause text). A decimal point ("7.5") does not end a sentence; a clause stops after
    `limit` characters (an answer is stated in far fewer; this bounds the work on a pathological reply).
    """
    i = pos
    for _ in range(lines + 1):
        m = re.match(r"[ \t*:_#>=\-]*(?:\$\$|\\\[)?[ \t]*\n", text[i:])
        if not m:
            break
        i += m.end()
    j, stop = i, min(len(text), i + limit)
    while j < stop:
        c = text[j]
        if c == "\n":
            break
        if c in ".!?;" and (j + 1 == len(text) or text[j + 1] in " \t\n*") and not (
                c == "." and j > i and text[j - 1].isdigit() and j + 1 < len(text) and text[j + 1].isdigit()):
            break
        j += 1
    return i, text[i:j]


def drop_parenthetical(clause: str) -> str:
    """`540 m (9 x 60 m)` -> `540 m          `: breakdowns in parentheses are not the answer (offsets kept).

    Closed groups only, nested ones whole; `\\left(` (LaTeX) and a lone option letter `(B)` stay."""
    chars, opens = list(clause), []
    for i, c in enumerate(clause):
        if c == "(" and not clause.endswith("\\left", 0, i) and not re.match(r"\([A-Ja-j]\)", clause[i:i + 3]):
            opens.append(i)
        elif c == ")" and opens:
            start = opens.pop()
            if not opens:
                chars[start:i + 1] = " " * (i + 1 - start)
    return "".join(chars)


def retracted_after(text: str, pos: int) -> re.Match[str] | None:
    """The first retraction cue after `pos`, if any."""
    return RETRACT.search(text, pos)


def check_start(text: str) -> int | None:
    """Offset of the first check section ("Check: ...", "**Verification**"), or None."""
    m = CHECK.search(text)
    return m.start() if m else None


MAX_MARKERS = 100  # a reply with more empty markers than this after its answer is a degenerate loop


def last_reading(marks: list[tuple[int, object]], read) -> tuple[int, Reading] | None:
    """The (end, reading) of the last mark (start, payload) whose `read(payload)` commits to something. Read
    from the end, so a degenerate reply repeating "The answer is" thousands of times costs a few readings."""
    for _, payload in sorted(marks, key=lambda c: c[0], reverse=True)[:MAX_MARKERS]:
        end, reading = read(payload)
        if reading.extracted is not None:
            return end, reading
    return None


def boxed_content(text: str, start: int) -> str:
    """The text inside `\\boxed{` from `start` (just past the brace) to its balanced closing brace."""
    depth, i, stop = 1, start, min(len(text), start + 400)  # an answer is short; bound the work on garbage
    while i < stop and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1] if depth == 0 else text[start:stop]
