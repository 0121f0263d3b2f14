"""Number forms read by value: "1,234", "1 234" (narrow no-break space), "1{,}234", "$1.45 million", "1/2",
"1 1/2", "half", "eighteen", "−5" (U+2212), "5 below zero", "1e6", "10^6", "\\frac{3}{4}".

Values are exact `Fraction`s so "0.5", ".5", "1/2" and "half" are the same answer and no float rounding decides a
grade. Only `find_numbers` decides what a number *is* in running text; the committed-answer logic lives elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

_SEP = r"(?:,|\u202f|\u00a0|\u2009|\{,\}|\\,|\\ )"  # thousands separators, LaTeX {,} and \, included
_INT = rf"\d{{1,3}}(?:{_SEP}\d{{3}})+(?!\d)|\d+"
_FRAC_TEX = r"\\[dt]?frac\s*\{\s*(?P<tn>-?\d+)\s*\}\s*\{\s*(?P<td>\d+)\s*\}"
_SCALE_WORDS = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w.])[-\u2212\u2013](?=\\?\$?\.?\d|\\[dt]?frac))?"
    r"(?P<cur>\\?\$\s?)?"
    r"(?:"
    rf"(?P<mixw>\d+)\s+(?P<mixn>\d+)/(?P<mixd>\d+)(?![\d/])"          # 1 1/2
    rf"|(?P<fn>\d+)/(?P<fd>\d+)(?![\d/])"                              # 1/2
    rf"|{_FRAC_TEX}"                                                   # \frac{1}{2}
    rf"|(?P<int>{_INT})(?P<dec>\.\d+)?|(?P<bare>\.\d+)"                # 1,234.5 / .5
    r")"
    r"(?:(?P<e>[eE][-+]?\d+)(?![\w])|\s?(?:\^|\*\*)\s?\{?(?P<pow>-?\d+)\}?)?"  # 1e6, 10^6, 10^{6}
    r"(?:\s(?P<scale>thousand|million|billion|trillion)\b)?"
    r"(?P<pct>\s?(?:\\?%|percent\b))?"
    r"(?P<below>\s?(?:°\s?[CF]?\s?|degrees?\s+(?:[CF]\s+|celsius\s+|fahrenheit\s+)?)?below\s+zero)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?", re.IGNORECASE)

_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUE = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_WORD_VALUE |= {"none": 0, "no": 0, "a dozen": 12, "dozen": 12, "half": Fraction(1, 2), "a half": Fraction(1, 2),
                "one half": Fraction(1, 2), "a quarter": Fraction(1, 4), "one quarter": Fraction(1, 4)}
_WORD = re.compile(
    r"(?<![\w-])(?P<w>(?:" + "|".join(_TENS) + r")(?:[- ](?:" + "|".join(_UNITS[1:10]) + r"))?"
    r"|one and a half|a dozen|dozen|a half|one half|a quarter|one quarter|half|none|"
    + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")(?![\w-])"
    r"(?:\s(?P<scale>hundred|thousand|million|billion))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Num:
    """One number found in text: its exact value, where it sits, and the text it was read from."""

    value: Fraction
    start: int
    end: int
    text: str


def _digits(s: str) -> str:
    return re.sub(_SEP, "", s)


def _value(m: re.Match[str]) -> Fraction | None:
    g = m.groupdict()
    if g["mixw"] is not None:
        if int(g["mixd"]) == 0 or int(g["mixn"]) >= int(g["mixd"]):
            return None  # "3 10/5" is not a mixed number
        v = int(g["mixw"]) + Fraction(int(g["mixn"]), int(g["mixd"]))
    elif g["fn"] is not None:
        if int(g["fd"]) == 0:
            return None
        v = Fraction(int(g["fn"]), int(g["fd"]))
    elif g["tn"] is not None:
        if int(g["td"]) == 0:
            return None
        v = Fraction(int(g["tn"]), int(g["td"]))
    elif g["int"] is not None:
        v = Fraction(_digits(g["int"]) + (g["dec"] or ""))
    else:
        v = Fraction("0" + g["bare"])
    if g["e"]:
        v *= Fraction(10) ** int(g["e"][1:])
    elif g["pow"] is not None:
        if abs(int(g["pow"])) > 30:
            return None
        v = v ** int(g["pow"])
    if g["scale"]:
        v *= _SCALE_WORDS[g["scale"].lower()]
    if g["sign"] or g["below"]:
        v = -v
    return v


def find_numbers(text: str, *, words: bool = False) -> list[Num]:
    """Every number in `text`, left to right; clock times ("3:30 pm") are not numbers. `words` adds number
    words ("eighteen", "half", "none"), which only count where an answer is expected, never in running prose."""
    clocks = [(m.start(), m.end()) for m in _CLOCK.finditer(text)]
    out: list[Num] = []
    for m in _NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in clocks):
            continue
        v = _value(m)
        if v is not None:
            out.append(Num(v, m.start(), m.end(), m.group(0)))
    if words:
        for m in _WORD.finditer(text):
            w = m.group("w").lower().replace("-", " ")
            base = Fraction(3, 2) if w == "one and a half" else _word_value(w)
            if base is None or any(n.start < m.end() and m.start() < n.end for n in out):
                continue
            scale = {"hundred": 100, **_SCALE_WORDS}.get((m.group("scale") or "").lower(), 1)
            out.append(Num(Fraction(base) * scale, m.start(), m.end(), m.group(0)))
        out.sort(key=lambda n: n.start)
    return out


def _word_value(w: str) -> Fraction | int | None:
    if w in _WORD_VALUE:
        return _WORD_VALUE[w]
    parts = w.split()
    if len(parts) == 2 and parts[0] in _TENS and parts[1] in _UNITS[1:10]:
        return _WORD_VALUE[parts[0]] + _WORD_VALUE[parts[1]]
    return None


def parse_number(text: str | None) -> Fraction | None:
    """The value of a string that is one number (a reference like "1,234" or "$18.00"), else None."""
    if text is None:
        return None
    s = str(text).strip().rstrip(".")
    found = find_numbers(s, words=True)
    if len(found) != 1:
        return None
    rest = s[:found[0].start] + " " + s[found[0].end:]
    if not re.fullmatch(r"[\s$*]*(?:[A-Za-z]+\s*){0,2}", rest):
        return None  # "[4, \\infty)" or "x = 4, y" is not one number
    return found[0].value


def format_number(v: Fraction) -> str:
    """A canonical string for a value: "1234", "-3.5", "1/3" (a fraction only when no short decimal exists)."""
    if v.denominator == 1:
        return str(v.numerator)
    d = v.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        return format(Decimal(v.numerator) / Decimal(v.denominator), "f")
    return str(v)
