"""What every benchmark is: items (loaded from the hub or a local file), a k-shot chat prompt, and a scorer.

Evaluation and curate's decontamination both go through these objects, so "the GSM8K test set" means the same
rows in both places.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _hub_revision(ds: Any) -> str | None:
    """The hub commit a loaded dataset came from: `datasets` caches each commit under its own sha."""
    for f in getattr(ds, "cache_files", None) or []:
        m = re.search(r"[/\\]([0-9a-f]{40})[/\\]", str(f.get("filename", "")))
        if m:
            return m.group(1)
    return None


def hub_rows(repo: str, subset: str | None, split: str, *, what: str,
             source_info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows from the Hugging Face hub, or one clear error when offline or unreachable.

    `source_info`, when given, is filled with {hub, config, split, revision} for the eval manifest.
    """
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
    if source_info is not None:
        source_info.update(hub=repo, config=subset, split=split, revision=_hub_revision(ds))
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
    default_split: str = "test"  # the split scored when the config names none
    # how a reply is judged, for the report's protocol line (generative, never log-likelihood)
    scoring: str = "generative"

    def load(self, source: str | None = None, split: str | None = None, limit: int | None = None) -> list[Item]:
        """Items from `source` (a local path, or a hub dataset name), else the built-in/hub default.

        Sets `source_info` (local: file + sha256; hub: name, config, split, revision) for the eval manifest.
        """
        split = split or self.default_split
        if source is not None and Path(source).exists():
            items = self._from_rows(read_local_rows(source, split), str(source))
            self.source_info = self.local_source_info(source)
        elif source is not None and _looks_like_path(source):
            raise InputError(f"{self.name}: source {source} does not exist (expected a JSONL / Parquet / CSV file "
                             "or a saved HF dataset dir)")
        else:
            self._hub_info: dict[str, Any] = {}
            items = self._default_items(source, split)
            self.source_info = dict(self._hub_info)
        if not items:
            raise InputError(f"{self.name}: {source or 'the default source'} has no items")
        return items[:limit] if limit else items

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        raise NotImplementedError

    def _hub_items(self, repo: str, subset: str | None, split: str) -> list[Item]:
        """Items of a hub dataset; the first hub load of a `load()` is the one the manifest names."""
        info: dict[str, Any] = {}
        items = self._from_rows(hub_rows(repo, subset, split, what=self.name, source_info=info), repo)
        if not getattr(self, "_hub_info", None):
            self._hub_info = info
        return items

    @staticmethod
    def local_source_info(source: str | Path) -> dict[str, Any]:
        return {"file": str(source), "sha256": file_sha256(Path(source))}

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
        return {"name": self.name, "kind": self.kind, "k_shot": self.k_shot, "metric": self.metric,
                "scoring": self.scoring}
