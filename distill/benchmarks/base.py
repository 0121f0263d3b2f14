"""What every benchmark is: items (loaded from the hub or a local file), a k-shot chat prompt, and a scorer.

Evaluation and curate's decontamination both go through these objects, so "the GSM8K test set" means the same
rows in both places.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import InputError


@dataclass
class Item:
    """One benchmark question. `reference` is the gold answer (number, letter, or canonical code)."""

    id: str
    question: str
    reference: str
    subject: str | None = None
    choices: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Score:
    """How one output was judged: the answer read from it and whether it is right (`detail`: the grade's reason,
    e.g. "mismatch" or "truncated", or the sandbox status)."""

    extracted: str | None
    correct: bool
    detail: str | None = None


def graded(output: str, reference: str, kind: str, finish_reason: str | None = None,
           letters: str | None = None) -> Score:
    """A Score from `distill.answers.grade`; `detail` is the grade's reason, so eval counts reasons per benchmark."""
    from distill.answers import grade

    g = grade(output, reference, kind, finish_reason=finish_reason, letters=letters)
    return Score(g.extracted, g.correct, g.reason)


def offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def stable_id(prefix: str, *parts: Any) -> str:
    """An id that depends on the item's content, not its position, so `--limit` and reordering keep ids."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def read_local_rows(path: str | Path, split: str = "test") -> list[dict[str, Any]]:
    """Rows of a local JSONL(.gz) / JSON / CSV / TSV / Parquet file, a dir of Parquet files, or a saved HF dataset.

    Reading is `distill.prompts.iter_rows` (the one local-file reader); only a JSON array file is read here.
    """
    from distill.prompts import PromptSource, iter_rows

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: benchmark file not found")
    name = p.name.lower()
    if name.endswith(".json") and p.read_text(encoding="utf-8").lstrip().startswith("["):
        data = json.loads(p.read_text(encoding="utf-8"))
        return [r for r in data if isinstance(r, dict)]
    src = PromptSource(path=str(p), split=split, field="question")  # `field` is unused by iter_rows
    return [row for _, row in iter_rows(src)]


def hub_rows(repo: str, subset: str | None, split: str, *, what: str) -> list[dict[str, Any]]:
    """Rows from the Hugging Face hub, or one clear error when offline or unreachable."""
    hint = (f"pass a local file instead: `source: path/to/{what}_{split}.jsonl` in the eval config "
            f"(JSONL / Parquet / CSV, or a saved HF dataset dir)")
    if offline():
        raise InputError(f"{what}: no local source given and the hub is offline (HF_HUB_OFFLINE=1); {hint}")
    import datasets

    try:
        ds = datasets.load_dataset(repo, subset, split=split)
    except Exception as e:  # noqa: BLE001 - any hub failure is the same user-facing problem
        raise InputError(f"{what}: cannot load {repo} ({subset or 'default'}, split {split}) from the hub "
                         f"({type(e).__name__}: {e}); {hint}") from None
    return [dict(r) for r in ds]


def _looks_like_path(source: str) -> bool:
    """A missing local file, as opposed to a hub dataset name like `openai/gsm8k`."""
    suffixes = (".jsonl", ".json", ".gz", ".csv", ".tsv", ".parquet", ".arrow")
    return source.lower().endswith(suffixes) or source.startswith((".", "/", "~")) or source.count("/") > 1


class Benchmark:
    """Base class: subclasses set `name`, `k_shot`, `max_tokens` and implement `_rows_to_items` and `score`."""

    name: str = ""
    kind: str = ""
    k_shot: int = 0  # the standard number of shots for this benchmark
    max_tokens: int = 512  # a completion budget that fits its answers
    metric: str = "accuracy"

    def load(self, source: str | None = None, split: str = "test", limit: int | None = None) -> list[Item]:
        """Items from `source` (a local path, or a hub dataset name), else the built-in/hub default."""
        if source is not None and Path(source).exists():
            items = self._from_rows(read_local_rows(source, split), str(source))
        elif source is not None and _looks_like_path(source):
            raise InputError(f"{self.name}: source {source} does not exist (expected a JSONL / Parquet / CSV file "
                             "or a saved HF dataset dir)")
        else:
            items = self._default_items(source, split)
        if not items:
            raise InputError(f"{self.name}: {source or 'the default source'} has no items")
        return items[:limit] if limit else items

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        raise NotImplementedError

    def _from_rows(self, rows: list[dict[str, Any]], where: str) -> list[Item]:
        items = []
        for i, row in enumerate(rows):
            try:
                items.append(self._item(row))
            except KeyError as e:
                raise InputError(f"{where}: row {i + 1}: {self.name} needs field {e.args[0]!r}; the row has "
                                 f"fields: {', '.join(map(str, row)) or '(none)'}") from None
        return items

    def _item(self, row: dict[str, Any]) -> Item:
        raise NotImplementedError

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        raise NotImplementedError

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        raise NotImplementedError

    def decontam_texts(self, items: list[Item]) -> list[str]:
        """Texts a training prompt must not overlap with: the questions."""
        return [it.question for it in items]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "k_shot": self.k_shot, "metric": self.metric}
