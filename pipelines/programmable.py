"""The code `pipelines/programmable.yaml` names: a prompt builder, an answer schema and a parser.

Found by `module:function` beside the pipeline file. Collect hashes this file into its fingerprint: edit it and the
next `distill collect` re-runs, asking the teacher again only for prompts whose messages changed (and re-parsing
every cached answer for free).
"""

from __future__ import annotations

import json
import math
import re

from pydantic import BaseModel, Field


class Solution(BaseModel):
    """The teacher's answer, as a structured output (sent as a strict JSON schema, validated on arrival)."""

    steps: list[str] = Field(min_length=1, description="one short sentence per reasoning step")
    answer: float = Field(description="the final number, no units")


def build(row: dict) -> list[dict] | None:
    """A GSM8K row -> chat messages; None skips a row (here: very long problems)."""
    question = row["question"].strip()
    if len(question) > 800:
        return None
    return [
        {"role": "system", "content": "You solve grade-school math problems. Reason in short steps, then give "
                                      "the final number."},
        {"role": "user", "content": question},
    ]


def _reference_number(reference: str | None) -> float | None:
    m = re.search(r"####\s*(-?[\d,]*\.?\d+)", reference or "")
    return float(m.group(1).replace(",", "")) if m else None


def parse(row: dict, completion: str) -> dict:
    """Extra record columns from the answer; raising marks the record failed (with this message)."""
    solution = json.loads(completion)
    answer = float(solution["answer"])
    if not math.isfinite(answer):
        raise ValueError(f"the answer is not a finite number: {solution['answer']!r}")
    ref = _reference_number(row.get("reference"))
    return {"final_answer": answer, "steps": len(solution["steps"]),
            "matches_reference": None if ref is None else abs(answer - ref) < 1e-6}
