"""MMLU: 57-subject multiple choice; 5-shot (exemplars from the subject's dev split), letter accuracy.

Reads the hub's `cais/mmlu` layout (question, subject, choices, answer index) from the hub, JSONL or Parquet, and
the original Hendrycks CSVs (headerless `question,A,B,C,D,answer`, subject from the file name
`<subject>_test.csv`), one file or a directory of them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from distill.benchmarks.base import Benchmark, Item, Score, graded, read_local_rows, stable_id
from distill.errors import InputError

LETTERS = "ABCDEFGHIJ"


def _choices(row: dict[str, Any]) -> list[str]:
    if "choices" in row:
        ch = row["choices"]
        if isinstance(ch, str):
            try:
                ch = json.loads(ch)
            except json.JSONDecodeError:
                raise InputError(f"MMLU choices field is a string that is not a JSON list: {ch[:80]!r}") from None
        return [str(c) for c in ch]
    if "A" in row:
        return [str(row[k]) for k in LETTERS if k in row and row[k] not in (None, "")]
    raise KeyError("choices")


def _answer_letter(answer: Any, n: int) -> str:
    a = str(answer).strip()
    if a.isdigit() and int(a) < n:
        return LETTERS[int(a)]
    if len(a) == 1 and a.upper() in LETTERS[:n]:
        return a.upper()
    raise InputError(f"MMLU answer {answer!r} is neither a choice index 0..{n - 1} nor a letter {LETTERS[:n]}")


def _subject_from_file(path: Path, split: str) -> str:
    stem = path.stem
    for suffix in (f"_{split}", "_test", "_dev", "_val", "_validation"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _hendrycks_rows(path: Path, split: str) -> list[dict[str, Any]]:
    """Headerless question,A,B,C,D,answer CSV rows, or header CSV rows, from one file or a dir of `*_<split>.csv`."""
    files = (sorted(path.glob(f"*_{split}.csv")) or sorted(path.glob("*.csv"))) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no *_{split}.csv files (the Hendrycks MMLU layout)")
    rows: list[dict[str, Any]] = []
    for f in files:
        with f.open(encoding="utf-8", newline="") as fh:
            raw = list(csv.reader(fh))
        if not raw:
            continue
        if "question" in [c.strip().lower() for c in raw[0]]:
            header = [c.strip() for c in raw[0]]
            rows += [dict(zip(header, r, strict=False)) for r in raw[1:]]
            continue
        subject = _subject_from_file(f, split)
        for i, r in enumerate(raw, 1):
            if len(r) < 4:
                raise InputError(f"{f}:{i}: expected question,A,B,C,D,answer (got {len(r)} columns)")
            rows.append({"question": r[0], "choices": r[1:-1], "answer": r[-1], "subject": subject})
    return rows


class MMLU(Benchmark):
    name = "mmlu"
    kind = "mmlu"
    k_shot = 5
    max_tokens = 256
    metric = "accuracy"
    scoring = "generative: the option letter read from the reply (not log-likelihood)"
    hub = ("cais/mmlu", "all")

    def __init__(self, fewshot_source: str | None = None, fewshot_split: str = "dev"):
        self.fewshot_source = fewshot_source
        self.fewshot_split = fewshot_split
        self._pool: dict[str, list[Item]] = {}
        self.fewshot_origin = "none"

    def load(self, source: str | None = None, split: str | None = None, limit: int | None = None) -> list[Item]:
        split = split or self.default_split
        if source is not None and Path(source).exists() and (Path(source).is_dir() and any(Path(source).glob("*.csv"))
                                                            or source.lower().endswith(".csv")):
            items = self._from_rows(_hendrycks_rows(Path(source), split), source)
            self.source_info = self.local_source_info(source)
        else:
            items = super().load(source, split)
        if self.fewshot_source:
            self._set_pool(self._load_any(self.fewshot_source, self.fewshot_split), f"{self.fewshot_source}")
        elif source is None or not Path(source).exists():  # the hub: its dev split
            self._set_pool(self._default_items(source, self.fewshot_split), f"{source or self.hub[0]} {self.fewshot_split}")
        else:
            # no dev split given: exemplars are other items of the same subject (never the item itself)
            self._set_pool(items, "other test items of the same subject (set fewshot_source for the dev split)")
        return items[:limit] if limit else items

    def _load_any(self, source: str, split: str) -> list[Item]:
        p = Path(source)
        if p.exists() and (p.is_dir() and any(p.glob("*.csv")) or source.lower().endswith(".csv")):
            return self._from_rows(_hendrycks_rows(p, split), source)
        if p.exists():
            return self._from_rows(read_local_rows(p, split), source)
        return self._default_items(source, split)

    def _set_pool(self, items: list[Item], origin: str) -> None:
        self._pool = {}
        for it in items:
            self._pool.setdefault(it.subject or "", []).append(it)
        self.fewshot_origin = origin

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        repo, subset = (source, self.hub[1]) if source else self.hub
        return self._hub_items(repo, subset, split)

    def _item(self, row: dict[str, Any]) -> Item:
        question = str(row["question"])
        choices = _choices(row)
        if len(choices) < 2:
            raise InputError(f"MMLU question {question[:60]!r} has {len(choices)} choices; expected at least 2")
        subject = str(row.get("subject") or "") or None
        return Item(id=stable_id("mmlu", subject, question, choices), question=question,
                    reference=_answer_letter(row["answer"], len(choices)), subject=subject, choices=choices)

    @staticmethod
    def format_question(item: Item) -> str:
        assert item.choices is not None
        opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))
        return f"{item.question}\n{opts}\nAnswer:"

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        k = self.k_shot if k_shot is None else k_shot
        subject = (item.subject or "general knowledge").replace("_", " ")
        header = (f"The following are multiple choice questions (with answers) about {subject}. "
                  "Reply with the letter of the correct option, as 'Answer: X'.\n\n")
        shots = [s for s in self._pool.get(item.subject or "", []) if s.id != item.id][:k]
        msgs: list[dict[str, str]] = []
        for s in shots:
            msgs += [{"role": "user", "content": self.format_question(s)},
                     {"role": "assistant", "content": f"Answer: {s.reference}"}]
        msgs.append({"role": "user", "content": self.format_question(item)})
        msgs[0] = {"role": "user", "content": header + msgs[0]["content"]}
        return msgs

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        return graded(output, item.reference, "choice", finish_reason, letters=LETTERS[: len(item.choices or "ABCD")])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fewshot_from": self.fewshot_origin}
