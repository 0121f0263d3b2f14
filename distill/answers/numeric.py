"""The committed final number of a reply (kind `number`, GSM8K-style), by the rules of docs/grading.md.

Order: the last explicit marker (`#### N`, "The answer is N", "Final answer: N", `\\boxed{N}`) wins, unless the
reply retracts it afterwards (then only what it commits to after the retraction counts). Without a marker: the
later of the last bold number and the last concluding sentence ("So ...", "Therefore ..."); then the last number.
"""

from __future__ import annotations

import re

from distill.answers.markers import (NOTHING, Reading, boxed_content, check_start, clause_at, drop_parenthetical,
                                     retracted_after)
from distill.answers.numbers import Num, find_numbers, format_number

_HASHES = re.compile(r"(?<!#)####(?!#)[ \t]*")
_HEADING = re.compile(r"\s*(?:\*\*)?\s*(?:\d+[.)]\s*[A-Za-z]|[A-Za-z])")
_ANSWER = re.compile(
    r"\bfinal\s+answer\b(?:\s*\*\*)?(?:\s*(?:is\b|:|=))?"
    r"|\banswer\s*(?:\*\*\s*)?(?:is\b|would be\b|will be\b|should be\b|=|:)(?:\s*\*\*)?",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOLD = re.compile(r"\*\*([^*\n]{1,120}?)\*\*")
_LABEL = re.compile(r"^\s*(?:step|part|case|method|approach|option|day|week|question|problem)\b|:\s*$", re.I)
_CUE = re.compile(r"\b(?:so|therefore|thus|hence|in total|altogether|in all|overall|in conclusion|"
                  r"this means|which means|that means|the total|total of|a total)\b", re.IGNORECASE)
_OP_GAP = re.compile(r"\s*(?:[A-Za-z]+\s*){0,2}(?:[-+*/×÷x]|\\times|\\cdot|\\div)\s*(?:\()?\s*")
_EQ_GAP = re.compile(r"\s*\)?\s*(?:[A-Za-z]+\s*){0,3}(?:=|≈|\\approx|\bequals\b|\bgives\b|\bmakes\b|\byields\b)"
                     r"\s*(?:\\text\{[^}]*\}\s*)?")
_OR_GAP = re.compile(r"\s*(?P<unit>[A-Za-z]+)?\s*,?\s*(?:or|/)\s+(?:maybe\s+|perhaps\s+|possibly\s+)?")


def _unit(c: str, n: Num) -> str | None:
    if "$" in n.text:
        return "$"
    m = re.match(r"\s*([A-Za-z]+)", c[n.end:])
    word = m.group(1).lower().rstrip("s") if m else None
    return None if word in (None, "or", "and", "per", "each", "a", "in") else word


def value_in_clause(clause: str, *, words: bool = True) -> Reading:
    """The answer a clause states: its first number, carried along an arithmetic chain to the last `= result`
    ("80 + 150 = 230" -> 230). A second, different value joined by "or" is a hedge ("$18 or $20")."""
    c = drop_parenthetical(clause)
    nums = find_numbers(c)
    if not nums and words:
        nums = find_numbers(c, words=True)
    if not nums:
        return NOTHING
    k, result, had_op = 0, nums[0], False
    while k + 1 < len(nums):
        gap = c[nums[k].end:nums[k + 1].start]
        if had_op and _EQ_GAP.fullmatch(gap) or re.fullmatch(r"\s*(?:=|≈|\\approx)\s*", gap):
            result = nums[k + 1]
        elif _OP_GAP.fullmatch(gap):
            had_op = True
        else:
            break
        k += 1
    if k + 1 < len(nums) and nums[k + 1].value != result.value:
        m = _OR_GAP.fullmatch(c[nums[k].end:nums[k + 1].start])
        if m:
            u1, u2 = _unit(c, result), _unit(c, nums[k + 1])
            if not (u1 and u2 and u1 != u2):
                return Reading(format_number(result.value), result.value, hedged=True)
    return Reading(format_number(result.value), result.value)


def _unless_otherwise(reading: Reading, text: str, end: int) -> Reading:
    """"If so, the answer is 40; otherwise 60": an answer offered on a condition, with another one, is a hedge."""
    rest = text[end:].split("\n", 1)[0]
    if reading.extracted is None or not re.match(r"[;,.]?\s*(?:otherwise|else|or else|if not)\b", rest, re.I):
        return reading
    other = find_numbers(rest)
    if other and other[0].value != reading.value:
        return Reading(reading.extracted, reading.value, hedged=True)
    return reading


def _strong(text: str) -> list[tuple[int, int, Reading]]:
    """(start, end, reading) of every explicit final-answer marker that states a value."""
    out: list[tuple[int, int, Reading]] = []
    for m in _HASHES.finditer(text):
        start, clause = clause_at(text, m.end(), lines=0)
        if _HEADING.match(text, m.end()):
            continue  # "#### 1. Eggs laid" / "#### Step 2" is a markdown heading, not an answer
        out.append((m.start(), start + len(clause), value_in_clause(clause)))
    for m in _ANSWER.finditer(text):
        start, clause = clause_at(text, m.end())
        out.append((m.start(), start + len(clause), _unless_otherwise(value_in_clause(clause), text,
                                                                      start + len(clause))))
    for m in _BOXED.finditer(text):
        content = boxed_content(text, m.end())
        out.append((m.start(), m.end() + len(content), value_in_clause(content)))
    return sorted((c for c in out if c[2].extracted is not None), key=lambda c: c[0])


def _sentences(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    while pos < len(text):
        start, s = clause_at(text, pos, lines=0)
        if s.strip():
            out.append((start, s))
        pos = max(start + len(s) + 1, pos + 1)
    return out


def _result_of(sentence: str, cue_end: int) -> Reading:
    """A concluding sentence's value: from its cue on, the result after the last `=`, else the first number."""
    c = drop_parenthetical(sentence)
    eqs = [m.end() for m in re.finditer(r"=|≈|\\approx", c) if m.start() >= cue_end]
    if eqs:
        return value_in_clause(c[eqs[-1]:], words=False)
    return value_in_clause(c[cue_end:], words=False)


def _weak(text: str) -> tuple[int, Reading]:
    """Without a marker: the later of the last bold number and the last concluding sentence; else the last
    sentence's result (or last number). Numbers in a trailing check section do not count."""
    cut = check_start(text)
    if cut and find_numbers(text[:cut]):
        text = text[:cut]
    best: tuple[int, Reading] = (-1, NOTHING)
    for m in _BOLD.finditer(text):
        if not _LABEL.search(m.group(1)):
            r = value_in_clause(m.group(1))
            if r.extracted is not None:
                best = (m.start(), r)
    sentences = _sentences(text)
    last_para = max((m.end() for m in re.finditer(r"\n\s*\n", text.rstrip())), default=0)
    for start, s in reversed(sentences):
        if start < last_para:
            break  # a "so ..." in the working is not the conclusion
        cue = _CUE.search(s)
        if cue and find_numbers(s[cue.end():]):
            if start > best[0]:
                best = (start, _result_of(s, cue.end()))
            break
    if best[1].extracted is not None:
        return best
    for start, s in reversed(sentences):
        nums = find_numbers(drop_parenthetical(s))
        if nums:
            whole = value_in_clause(s, words=False)
            if whole.hedged:
                return start, whole
            if re.search(r"=|≈|\\approx", drop_parenthetical(s)):
                return start, _result_of(s, 0)
            return start, Reading(format_number(nums[-1].value), nums[-1].value)
    return -1, NOTHING


def read_number(text: str, _depth: int = 0) -> Reading:
    """The reply's committed number (see the module doc); `text` has reasoning already stripped."""
    strong = _strong(text)
    if strong:
        _, end, reading = strong[-1]
    else:
        end, reading = _weak(text)
        if reading.extracted is None:
            return NOTHING
        end = max(end, 0)
    again = retracted_after(text, end)
    if again is None or _depth > 4:
        return reading
    return read_number(text[again.end():], _depth + 1)
