"""The committed letter of a multiple-choice reply (kind `choice`), by the rules of docs/grading.md.

The last explicit commitment wins ("Answer: C", "the correct option is (b)", `\\boxed{C}`, "I'll go with A",
"B is correct"), unless retracted afterwards. Without one: a bold option (`**D)** ...`), a reply that is only a
letter or opens with one ("C. Paris"), then the last parenthesised letter. A lower-case letter counts only where it
cannot be a word ("Answer: c", "(b)"), so "the answer is a bit tricky" and an article "A" opening a sentence are
not answers. Two different letters joined by "or"/"and" ("either A or C") are a hedge.
"""

from __future__ import annotations

import re

from distill.answers.markers import NOTHING, Reading, retracted_after

_OPEN = r"(?:\\boxed\{\s*|\\text(?:bf)?\{\s*|\*\*|\\\(|\$)*\s*[(\[]?\s*(?:\*\*)?"
_VERB = r"\s+(?:is|would\s+be|should\s+be|must\s+be|remains)"
_PHRASES = (
    r"(?:\b(?:final\s+answer|correct\s+(?:answer|option|choice|response)|best\s+(?:answer|option|choice)|"
    rf"right\s+(?:answer|option|choice))\b(?:\s*\*\*)?(?:\s+here)?(?:{_VERB})?"
    rf"|\banswer\b(?:\s*\*\*)?(?:\s+here)?(?:{_VERB}|\s*[:=]))"
    r"(?:\s+therefore|\s+then|\s+clearly)?\s*[:=]?(?:\s*\*\*)?\s*(?:option|choice)?\s*"
    r"|\b(?:go(?:ing)?\s+with|choose|chose|pick|select|opt\s+for|settle\s+on|answer\s+with)\s+"
    r"(?:option\s+|choice\s+|answer\s+)?"
    r"|\\boxed\{\s*"
)


def _patterns(letters: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    L = "".join(sorted(set(letters.upper() + letters.lower())))
    phrase = re.compile(rf"(?:{_PHRASES}){_OPEN}(?P<l>[{re.escape(L)}])(?![A-Za-z0-9])(?=(?P<after>[^\n]{{0,24}}))",
                        re.IGNORECASE)
    is_right = re.compile(
        rf"(?:option\s+|choice\s+)?(?:\*\*)?[(\[]?(?P<l>[{re.escape(letters.upper())}])[)\].]?(?:\*\*)?"
        rf"(?:\s+\([^)\n]{{0,40}}\))?\s+is\s+(?:the\s+)?(?:correct|right|best)\b(?!\s+for\b)")
    bold = re.compile(rf"\*\*\s*[(\[]?(?P<l>[{re.escape(L)}])(?:[)\].:]|\*\*)")
    return phrase, is_right, bold


def _ok_letter(letter: str, after: str) -> bool:
    """A lower-case letter followed by a word is prose ("a bit"), not an option."""
    if letter == "I" and re.match(r"\s+[a-z]", after):
        return False  # "the answer is I think C": a pronoun
    return letter.isupper() or not re.match(r"\s+[a-z]|[a-z']", after)


def _hedge(letter: str, after: str, letters: str) -> bool:
    m = re.match(rf"[)\]*.]*\s*(?:\*\*)?\s*(?:,\s*)?(?:or|and|/)\s+(?:option\s+)?[(\[]?(?:\*\*)?"
                 rf"([{letters}])(?![A-Za-z])", after, re.IGNORECASE)
    return bool(m and m.group(1).upper() != letter.upper())


def _strong(text: str, letters: str) -> list[tuple[int, int, Reading]]:
    phrase, is_right, _ = _patterns(letters)
    out = []
    for m in phrase.finditer(text):
        if _ok_letter(m.group("l"), m.group("after")):
            hedged = _hedge(m.group("l"), m.group("after"), letters)
            out.append((m.start(), m.end("l"), Reading(m.group("l").upper(), hedged=hedged)))
    for m in is_right.finditer(text):
        out.append((m.start(), m.end(), Reading(m.group("l").upper())))
    either = rf"\beither\s+(?:option\s+)?[(\[]?([{letters}])[)\]]?\s+or\s+(?:option\s+)?[(\[]?([{letters}])\b"
    for m in re.finditer(either, text, re.IGNORECASE):
        if m.group(1).upper() != m.group(2).upper():
            out.append((m.start(), m.end(), Reading(m.group(2).upper(), hedged=True)))
    return sorted(out, key=lambda c: c[0])


def _weak(text: str, letters: str) -> tuple[int, Reading]:
    _, _, bold = _patterns(letters)
    found = list(bold.finditer(text))
    if found:
        return found[-1].start(), Reading(found[-1].group("l").upper())
    U = re.escape(letters.upper())
    lone = re.fullmatch(rf"\s*(?:\*\*)?\s*[(\[]?([{U}])[)\].:]?\s*(?:\*\*)?\s*", text, re.IGNORECASE)
    if lone:
        return 0, Reading(lone.group(1).upper())
    lead = re.match(rf"\s*(?:\*\*)?\s*(?:\(([{U}])\)|([{U}])[.):])(?:\*\*)?\s", text + " ", re.IGNORECASE)
    if lead:
        return 0, Reading((lead.group(1) or lead.group(2)).upper())
    paren = list(re.finditer(rf"\(([{U}])\)", text))
    if paren:
        return paren[-1].start(), Reading(paren[-1].group(1))
    return -1, NOTHING


def read_choice(text: str, letters: str = "ABCD", _depth: int = 0) -> Reading:
    """The reply's committed option letter (upper case); `text` has reasoning already stripped."""
    strong = _strong(text, letters)
    if strong:
        _, end, reading = strong[-1]
    else:
        end, reading = _weak(text, letters)
        if reading.extracted is None:
            return NOTHING
    again = retracted_after(text, max(end, 0))
    if again is None or _depth > 4:
        return reading
    return read_choice(text[again.end():], letters, _depth + 1)
