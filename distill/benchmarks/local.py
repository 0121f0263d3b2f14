"""A user's own benchmark from a local JSONL / CSV / Parquet file: numeric or multiple-choice answers.

For held-out task sets (the demo's arithmetic problems, a company's internal questions): zero-shot by default,
the question sent as-is (or through `prompt_template`), scored with the same extraction as GSM8K (numeric) or
MMLU (choice).
"""

from __future__ import annotations

import string
from typing import Any, Literal

from distill.benchmarks.base import Benchmark, Item, Score, graded, stable_id
from distill.benchmarks.mmlu import LETTERS, _answer_letter, _choices
from distill.errors import InputError


class LocalBenchmark(Benchmark):
    kind = "local"
    k_shot = 0
    max_tokens = 256
    metric = "accuracy"

    def __init__(self, name: str = "local", answer_type: Literal["numeric", "choice"] = "numeric",
                 question_field: str = "question", answer_field: str = "answer", choices_field: str = "choices",
                 id_field: str | None = None, subject_field: str | None = None, prompt_template: str | None = None,
                 k_shot: int = 0, fewshot_source: str | None = None):
        if answer_type not in ("numeric", "choice"):
            raise InputError(f"benchmark {name}: answer_type must be 'numeric' or 'choice', got {answer_type!r}")
        self.name = name
        self.answer_type = answer_type
        self.question_field, self.answer_field, self.choices_field = question_field, answer_field, choices_field
        self.id_field, self.subject_field = id_field, subject_field
        self.prompt_template = prompt_template
        if prompt_template is not None and not [f for _, f, _, _ in string.Formatter().parse(prompt_template) if f]:
            raise InputError(f"benchmark {name}: prompt_template {prompt_template!r} names no field "
                             f"(write e.g. '{{{question_field}}}')")
        self.k_shot = k_shot
        self.fewshot_source = fewshot_source
        self._shots: list[Item] = []

    def load(self, source: str | None = None, split: str | None = None, limit: int | None = None) -> list[Item]:
        if source is None:
            raise InputError(f"benchmark {self.name}: a local benchmark needs `source: path/to/file.jsonl` "
                             f"(JSONL / CSV / Parquet with {self.question_field!r} and {self.answer_field!r})")
        items = super().load(source, split)
        if self.k_shot:
            # exemplars from fewshot_source, else the first other items of the same file
            self._shots = super().load(self.fewshot_source, split) if self.fewshot_source else items
        return items[:limit] if limit else items

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        raise InputError(f"benchmark {self.name}: source {source} does not exist (a local benchmark reads a "
                         "JSONL / CSV / Parquet file)")

    def _item(self, row: dict[str, Any]) -> Item:
        from distill.answers import extract_number

        question = str(row[self.question_field])
        raw = row[self.answer_field]
        choices = None
        if self.answer_type == "numeric":
            ref = extract_number(str(raw))
            if ref is None:
                raise InputError(f"benchmark {self.name}: answer {raw!r} of question {question[:60]!r} is not a number")
        else:
            choices = _choices({"choices": row[self.choices_field]} if self.choices_field in row else row)
            ref = _answer_letter(raw, len(choices))
        subject = str(row[self.subject_field]) if self.subject_field else None
        item_id = str(row[self.id_field]) if self.id_field else stable_id(self.name, question, choices)
        meta = {k: v for k, v in row.items() if isinstance(v, str | int | float | bool) or v is None}
        return Item(id=item_id, question=question, reference=ref, subject=subject, choices=choices, metadata=meta)

    def _prompt(self, item: Item) -> str:
        if self.prompt_template is None:
            text = item.question
        else:
            try:
                text = self.prompt_template.format_map({**item.metadata, self.question_field: item.question})
            except KeyError as e:
                raise InputError(f"benchmark {self.name}: prompt_template field {e.args[0]!r} is not a column of "
                                 f"the benchmark file (columns: {', '.join(item.metadata)})") from None
        if item.choices:
            text += "\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
        return text

    def _answer_turn(self, item: Item) -> str:
        return f"Answer: {item.reference}" if item.choices else f"The answer is {item.reference}."

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        k = self.k_shot if k_shot is None else k_shot
        msgs: list[dict[str, str]] = []
        for s in [s for s in self._shots if s.id != item.id][:k]:
            msgs += [{"role": "user", "content": self._prompt(s)}, {"role": "assistant", "content": self._answer_turn(s)}]
        msgs.append({"role": "user", "content": self._prompt(item)})
        return msgs

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        if item.choices:
            return graded(output, item.reference, "choice", finish_reason, letters=LETTERS[: len(item.choices)])
        return graded(output, item.reference, "number", finish_reason)

    def describe(self) -> dict[str, Any]:
        scoring = ("generative: the option letter read from the reply (not log-likelihood)" if self.answer_type ==
                   "choice" else "generative: the final number read from the reply, compared by value")
        return {**super().describe(), "answer_type": self.answer_type, "scoring": scoring}
