"""Kind `math` (MATH-500, AIME): the committed LaTeX answer, compared by Hugging Face's `math-verify`.

What counts as committed follows the number rules (last `\\boxed{}` or "final answer is ...", unless retracted);
whether two answers are the same expression ("\\frac{1}{2}" vs "0.5", "(3, \\frac{\\pi}{2})" vs "\\left(3,
\\frac{\\pi}{2}\\right)") is math-verify's job: we do not write a LaTeX parser.
"""

from __future__ import annotations

import re
import threading

from distill.answers.markers import NOTHING, Reading, boxed_content, clause_at, last_reading, retracted_after
from distill.answers.numbers import parse_number

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER = re.compile(r"\bfinal\s+answer\b(?:\s*\*\*)?(?:\s*(?:is\b|:|=))?(?:\s*\*\*)?"
                     r"|\banswer\s*(?:\*\*\s*)?(?:is\b|:|=)(?:\s*\*\*)?", re.IGNORECASE)
_MAX_SPAN = 200  # longer "answers" are prose or a degenerate loop, and cost math-verify seconds to parse
_MATH_SPAN = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\$([^$\n]+)\$|\\\((.+?)\\\)", re.DOTALL)


def _read_marker(text: str, m: re.Match[str]) -> tuple[int, Reading]:
    """(end, reading) of one `\\boxed{` or answer phrase; a span longer than _MAX_SPAN is not an answer."""
    if m.group(0).startswith("\\"):
        content = boxed_content(text, m.end()).strip()
        ok = content and len(content) <= _MAX_SPAN and "\\boxed" not in content
        return m.end() + len(content), Reading(content) if ok else NOTHING
    start, clause = clause_at(text, m.end())
    span = clause.strip().rstrip(".").strip()
    # a boxed answer in the clause is read as boxed; a clause of plain words ("The answer is") is not math
    ok = (span and len(span) <= _MAX_SPAN and not _BOXED.search(span)
          and (len(span) <= 8 or re.search(r"[\d\\^_=+\-*/(){}\[\]<>|$]", span)))
    return start + len(clause), Reading(_unwrap(span)) if ok else NOTHING


def _unwrap(span: str) -> str:
    """`$x^2$` -> `x^2`, `\\[ x \\]` -> `x`: the math inside the delimiters (the first span, if any)."""
    m = _MATH_SPAN.search(span)
    if m:
        return next(g for g in m.groups() if g is not None).strip()
    return span.strip("* ")


def read_math(text: str, _depth: int = 0) -> Reading:
    """The reply's committed math answer as LaTeX text; `text` has reasoning already stripped."""
    strong = last_reading([(m.start(), m) for rx in (_BOXED, _ANSWER) for m in rx.finditer(text)],
                          lambda m: _read_marker(text, m))
    if strong:
        end, reading = strong
    else:
        paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        spans = list(_MATH_SPAN.finditer(paras[-1])) if paras else []
        last = next(g for g in spans[-1].groups() if g is not None).strip() if spans else ""
        if not last or len(last) > _MAX_SPAN:
            return NOTHING
        end, reading = len(text), Reading(last)
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
