"""Kind `math` (MATH-500, AIME): the committed LaTeX answer, compared by Hugging Face's `math-verify`.

What counts as committed follows the number rules (last `\\boxed{}` or "final answer is ...", unless retracted);
whether two answers are the same expression ("\\frac{1}{2}" vs "0.5", "(3, \\frac{\\pi}{2})" vs "\\left(3,
\\frac{\\pi}{2}\\right)") is math-verify's job: we do not write a LaTeX parser.
"""

from __future__ import annotations

import re
import threading

from distill.answers.markers import NOTHING, Reading, boxed_content, clause_at, retracted_after
from distill.answers.numbers import parse_number

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER = re.compile(r"\bfinal\s+answer\b(?:\s*\*\*)?(?:\s*(?:is\b|:|=))?(?:\s*\*\*)?"
                     r"|\banswer\s*(?:\*\*\s*)?(?:is\b|:|=)(?:\s*\*\*)?", re.IGNORECASE)
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\$([^$\n]+)\$|\\\((.+?)\\\)", re.DOTALL)


def _strong(text: str) -> list[tuple[int, int, Reading]]:
    out = []
    for m in _BOXED.finditer(text):
        content = boxed_content(text, m.end()).strip()
        if content:
            out.append((m.start(), m.end() + len(content), Reading(content)))
    for m in _ANSWER.finditer(text):
        start, clause = clause_at(text, m.end())
        span = clause.strip().rstrip(".").strip()
        if span and not _BOXED.search(span):  # a boxed answer in the clause is read as boxed
            out.append((m.start(), start + len(clause), Reading(_unwrap(span))))
    return sorted(out, key=lambda c: c[0])


def _unwrap(span: str) -> str:
    """`$x^2$` -> `x^2`, `\\[ x \\]` -> `x`: the math inside the delimiters (the first span, if any)."""
    m = _MATH_SPAN.search(span)
    if m:
        return next(g for g in m.groups() if g is not None).strip()
    return span.strip("* ")


def read_math(text: str, _depth: int = 0) -> Reading:
    """The reply's committed math answer as LaTeX text; `text` has reasoning already stripped."""
    strong = _strong(text)
    if strong:
        _, end, reading = strong[-1]
    else:
        paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        spans = list(_MATH_SPAN.finditer(paras[-1])) if paras else []
        if not spans:
            return NOTHING
        end, reading = len(text), Reading(next(g for g in spans[-1].groups() if g is not None).strip())
    again = retracted_after(text, end)
    if again is None or _depth > 4:
        return reading
    return read_math(text[again.end():], _depth + 1)


def math_equal(pred: str, reference: str) -> bool:
    """math-verify's verdict on `pred` against the gold `reference`; plain numbers by exact value first."""
    a, b = parse_number(_unwrap(pred)), parse_number(_unwrap(reference))
    if a is not None and b is not None:
        return a == b
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # math-verify times out with SIGALRM, which only the main thread may set; eval scores in a thread pool
    limit = 5 if threading.current_thread() is threading.main_thread() else None
    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold = parse(f"${_unwrap(reference)}$", extraction_config=configs, parsing_timeout=limit)
    got = parse(f"${_unwrap(pred)}$", extraction_config=configs, parsing_timeout=limit)
    if not gold or not got:
        return False
    return bool(verify(gold, got, timeout_seconds=limit))
