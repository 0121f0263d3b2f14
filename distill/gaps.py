"""The gap explorer's rules (notebooks/gap_explorer.ipynb): why a model fails an item, where a student's reasoning
first departs from the teacher's, which difficulty features an item carries, and the rounds' learning curves.

Rule-based and small on purpose, so a notebook cell stays one call and each rule is tested:
- error type of a wrong row, from the grader's reason (`detail`) and the trace:
  `no answer` (nothing committed, the reference nowhere in the text), `truncated` (cut by max_tokens or an
  unclosed think block), `format` (nothing committed, but the reference value is written in the reply),
  `wrong answer, right method` (the same steps as the teacher's solution, or every written equation false
  somewhere: an arithmetic slip), `wrong method` (other steps than the teacher's, or all written equations true yet
  the answer wrong);
- steps: the equations a reply writes, in order (`7+6+0=13`, `12 * 3 = 36`), else its sentences.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

ERROR_TYPES = ("no answer", "truncated", "format", "wrong answer, right method", "wrong method")
_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_EQ = re.compile(rf"((?:{_NUM}\s*[-+*/x×]\s*)+{_NUM})\s*=\s*({_NUM})")
_SENT = re.compile(r"(?<=[.!?])\s+|\n+")


def equations(text: str | None) -> list[tuple[str, str]]:
    """(left side, right side) of each `a op b ... = c` the text writes, spaces dropped, in order."""
    return [(re.sub(r"\s+", "", a), b.replace(",", "")) for a, b in _EQ.findall(text or "")]


def _value(expr: str) -> Fraction | None:
    """An arithmetic left side evaluated exactly, left to right with * and / first; None if it is not one."""
    tokens = re.findall(r"\d[\d,]*(?:\.\d+)?|[-+*/x×]", expr)
    try:
        nums = [Fraction(t.replace(",", "")) for t in tokens[0::2]]
        ops = ["*" if o in "x×" else o for o in tokens[1::2]]
        terms, signs = [nums[0]], [1]
        for op, n in zip(ops, nums[1:]):
            if op == "*":
                terms[-1] *= n
            elif op == "/":
                terms[-1] /= n
            else:
                terms.append(n)
                signs.append(1 if op == "+" else -1)
        return sum(s * t for s, t in zip(signs, terms))
    except (ValueError, ZeroDivisionError, IndexError):
        return None


def equation_true(left: str, right: str) -> bool | None:
    v = _value(left)
    try:
        return None if v is None else v == Fraction(right)
    except ValueError:
        return None


def steps(text: str | None) -> list[str]:
    """A reply's reasoning steps: its equations when it writes any, else its sentences."""
    eqs = equations(text)
    if eqs:
        return [f"{a}={b}" for a, b in eqs]
    return [s.strip() for s in _SENT.split(text or "") if s.strip()]


def first_difference(teacher: str | None, student: str | None) -> dict[str, Any]:
    """Where the student's steps first depart from the teacher's: the step index (None when they never do),
    the two steps there, and the steps they share before it."""
    t, s = steps(teacher), steps(student)
    for i, (a, b) in enumerate(zip(t, s)):
        if a != b:
            return {"step": i, "teacher": a, "student": b, "shared": i}
    if len(t) == len(s):
        return {"step": None, "teacher": None, "student": None, "shared": len(t)}
    i = min(len(t), len(s))
    return {"step": i, "teacher": t[i] if i < len(t) else "(stops)", "student": s[i] if i < len(s) else "(stops)",
            "shared": i}


def _mentions(text: str, reference: str | None) -> bool:
    from distill.answers import numbers_match

    return reference is not None and any(numbers_match(n, str(reference)) for n in re.findall(_NUM, text or ""))


def error_type(row: dict[str, Any], teacher_output: str | None = None) -> str | None:
    """The error type of one graded row (None when it is correct). `teacher_output`: the teacher's reply to the
    same item when the teacher solved it, to tell a slip from another method."""
    if row.get("correct"):
        return None
    detail, text = row.get("detail"), row.get("output") or ""
    if row.get("finish_reason") == "length" or detail in ("truncated", "unclosed_think"):
        return "truncated"
    if detail in ("no_answer", "hedged", "refusal") or row.get("extracted") in (None, ""):
        return "format" if _mentions(text, row.get("reference")) else "no answer"
    mine = equations(text)
    if teacher_output:
        theirs = equations(teacher_output)
        if mine and theirs:
            return "wrong answer, right method" if [a for a, _ in mine] == [a for a, _ in theirs] \
                else "wrong method"
    verdicts = [equation_true(a, b) for a, b in mine]
    if any(v is False for v in verdicts):
        return "wrong answer, right method"
    return "wrong method"


def taxonomy(rows: Any, teacher: str | None) -> Any:
    """`rows` (eval_rows_frame) with an `error_type` column: per row, against the teacher's first-sample reply on
    the same item when the teacher solved it."""
    first = rows[(rows["sample_index"] == 0)]
    solved = {}
    if teacher is not None:
        t = first[(first["model"] == teacher) & first["correct"]]
        solved = {(b, i): o for b, i, o in zip(t["benchmark"], t["id"], t["output"])}
    out = rows.copy()
    out["error_type"] = [error_type(r, solved.get((r["benchmark"], r["id"]))) for r in rows.to_dict("records")]
    return out


def difficulty_features(rows: Any, teacher: str | None) -> Any:
    """Per (benchmark, item): question length in words, steps in the teacher's solution (when it has one),
    subject; what accuracy is plotted against."""
    import pandas as pd

    first = rows[rows["sample_index"] == 0].drop_duplicates(["benchmark", "id"])
    feats = pd.DataFrame({"benchmark": first["benchmark"], "id": first["id"],
                          "question_words": [len(str(q).split()) for q in first["question"]],
                          "subject": first["subject"].fillna("").astype(str)})
    if teacher is not None:
        t = rows[(rows["model"] == teacher) & (rows["sample_index"] == 0)]
        n = {(b, i): len(steps(o)) for b, i, o in zip(t["benchmark"], t["id"], t["output"])}
        feats["teacher_steps"] = [n.get((b, i)) for b, i in zip(feats["benchmark"], feats["id"])]
    return feats


def rounds_curves(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Learning curves from a rounds summary: `distill rounds` (runs/<name>/rounds/summary.json: one curve per
    benchmark, cumulative teacher requests) or `make demo-rounds` (runs/demo-rounds/summary.json: one per arm).
    Each point: requests, accuracy, ci95 (half-width)."""
    s = json.loads(Path(path).read_text())
    if s.get("stage") == "demo-rounds":
        return s["curves"]
    curves: dict[str, list[dict[str, Any]]] = {}
    total = 0
    for r in s["rounds"]:
        total += r.get("teacher_requests") or 0
        for b, v in (r.get("student") or {}).items():
            if v.get("score") is None:
                continue
            curves.setdefault(b, []).append({"requests": total, "accuracy": v["score"],
                                             "ci95": 1.96 * (v.get("stderr") or 0.0)})
    return curves
