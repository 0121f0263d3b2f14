"""MATH-500 and AIME 2024: competition math with LaTeX answers, zero-shot, graded by `grade(..., "math")`.

What reasoning-distillation users compare on (DeepSeek-R1, s1, OpenThoughts all report them). The answer is the
reply's final `\\boxed{...}` (or "final answer: ..."), judged equal to the reference by math-verify, so
`\\frac{1}{2}`, `0.5` and `\\dfrac12` agree. Hub sources: `HuggingFaceH4/MATH-500` (split `test`: problem,
solution, answer, subject, level, unique_id) and `HuggingFaceH4/aime_2024` (split `train`, its only one: id,
problem, solution, answer, url, year).
"""

from __future__ import annotations

from typing import Any

from distill.benchmarks.base import Benchmark, Item, Score, graded, stable_id
from distill.errors import InputError

INSTRUCTION = "Solve the following problem. Reason step by step, and put your final answer within \\boxed{}."


class Math500(Benchmark):
    name = "math500"
    kind = "math500"
    k_shot = 0
    max_tokens = 4096  # step-by-step solutions; raise it (`max_tokens:`) for reasoning models
    metric = "accuracy"
    scoring = "generative: the final answer (last \\boxed{}) checked for equivalence by math-verify"
    hub: tuple[str, str | None] = ("HuggingFaceH4/MATH-500", None)

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        repo, subset = (source, self.hub[1]) if source else self.hub
        return self._hub_items(repo, subset, split)

    def _item(self, row: dict[str, Any]) -> Item:
        question, answer = str(row["problem"]), str(row["answer"]).strip()
        if not answer:
            raise InputError(f"{self.name}: problem {question[:60]!r} has an empty answer")
        item_id = str(row["unique_id"]) if row.get("unique_id") else stable_id(self.kind, question)
        meta = {k: row[k] for k in ("solution", "level", "url", "year") if row.get(k) is not None}
        return Item(id=item_id, question=question, reference=answer,
                    subject=str(row["subject"]) if row.get("subject") else None, metadata=meta)

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        if k_shot:
            raise InputError(f"{self.name} is zero-shot; set k_shot: 0 (or leave it unset)")
        return [{"role": "user", "content": f"{INSTRUCTION}\n\n{item.question}"}]

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        return graded(output, item.reference, "math", finish_reason)


class AIME2024(Math500):
    name = "aime_2024"
    kind = "aime_2024"
    max_tokens = 8192  # AIME solutions are long; reasoning models need far more (set `max_tokens:`)
    default_split = "train"  # the hub dataset's only split
    hub = ("HuggingFaceH4/aime_2024", None)

    def _item(self, row: dict[str, Any]) -> Item:
        item = super()._item(row)
        if not row.get("unique_id"):
            item.id = f"aime2024-{row['id']}" if row.get("id") is not None else item.id
        return item
