"""Agreement with the teacher on the distillation dataset's held-out split (curate's `validation`).

Each row's prompt is sent to the model; the row's last assistant turn is the teacher's answer. A model "agrees"
when the answer extracted from its output equals the one extracted from the teacher's (a number, a choice
letter, or — for free text — the whitespace/case-normalised text). This measures how much of the teacher's
behaviour the student copied on the task it was distilled for, where no gold labels may exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from distill.benchmarks.base import Benchmark, Item, Score, graded, stable_id
from distill.errors import InputError


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class Agreement(Benchmark):
    kind = "agreement"
    k_shot = 0
    max_tokens = 512
    metric = "agreement"
    default_split = "validation"
    scoring = "generative: the reply's answer equals the teacher's recorded answer"

    def __init__(self, name: str = "agreement", answer_type: Literal["auto", "numeric", "choice", "text"] = "auto"):
        if answer_type not in ("auto", "numeric", "choice", "text"):
            raise InputError(f"benchmark {name}: answer_type must be auto, numeric, choice or text; got {answer_type!r}")
        self.name = name
        self.answer_type = answer_type

    def load(self, source: str | None = None, split: str | None = None, limit: int | None = None) -> list[Item]:
        if source is None or not Path(source).exists():
            raise InputError(f"benchmark {self.name}: no curated dataset at {source} (run `distill curate` first, "
                             "or set `source:` to a saved DatasetDict with a `messages` column)")
        if split in (None, "test"):  # a curated dataset holds `validation`
            split = "validation"
        return super().load(source, split, limit)

    def _item(self, row: dict[str, Any]) -> Item:
        msgs = row["messages"]
        if isinstance(msgs, str):
            msgs = json.loads(msgs)
        msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in msgs]
        if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
            raise InputError(f"benchmark {self.name}: a row's `messages` does not end with the teacher's assistant turn")
        prompt, teacher = msgs[:-1], msgs[-1]["content"]
        question = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        pid = row.get("prompt_id")
        kind = self._kind(teacher)
        return Item(id=str(pid) if pid else stable_id(self.name, prompt), question=question,
                    reference=self._extract(teacher, kind) or "", subject=None,
                    metadata={"messages": prompt, "teacher_output": teacher, "answer_type": kind})

    def _kind(self, teacher: str) -> str:
        if self.answer_type != "auto":
            return self.answer_type
        from distill.answers import extract_number

        return "numeric" if extract_number(teacher) is not None else "text"

    @staticmethod
    def _extract(text: str, kind: str) -> str | None:
        from distill.answers import extract_choice, extract_number, strip_reasoning

        if kind == "numeric":
            return extract_number(text)
        if kind == "choice":
            return extract_choice(text)
        return _norm_text(strip_reasoning(text)) or None

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        return [dict(m) for m in item.metadata["messages"]]

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        kind = item.metadata["answer_type"]
        if kind in ("numeric", "choice"):  # the teacher's committed answer is the reference
            return graded(output, item.reference, "number" if kind == "numeric" else "choice", finish_reason)
        pred = self._extract(output, kind)
        if finish_reason == "length":
            return Score(None, False, "truncated")
        return Score(pred, pred is not None and pred == item.reference)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "answer_type": self.answer_type}

