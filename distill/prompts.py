"""Prompt sources (JSONL, CSV, Parquet, HF dataset dir or hub name) -> chat messages with stable ids.

The result is a `PromptTable` with columns `prompt_id`, `messages`, `reference`, `metadata` (JSON of the
source's other fields). Each row's messages are held as one JSON string, so a million prompts never become a
Python list of dicts; not a `datasets.Dataset` or Arrow table: importing `datasets` (and pyarrow, which imports
pandas to convert Python lists) cost collect ~1 s before its first request, for nothing it used.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from distill.errors import InputError
from distill.schema import Section


WAYS = ("field", "template", "messages_field", "template_jinja", "builder")


class PromptSource(Section):
    """Where prompts come from and how a row becomes chat messages (exactly one of field, template, messages_field,
    template_jinja, builder)."""

    path: str = Field(description="JSONL / CSV / TSV / Parquet file or dir, a saved HF dataset dir, or a hub "
                                  "dataset name")
    format: Literal["auto", "jsonl", "csv", "parquet", "hf"] = Field(default="auto",
                                                                     description="`auto`, `jsonl`, `csv`, "
                                                                                 "`parquet`, `hf`")
    split: str = Field(default="train", description="split to read (HF datasets)")
    subset: str | None = Field(default=None, description="subset (config name) to read (HF datasets)")
    field: str | None = Field(default=None, description="column with the user prompt (exactly one of `field`, "
                                                        "`template`, `messages_field`, `template_jinja`, "
                                                        "`builder`)")
    template: str | None = Field(default=None, description="Python format string over the row, e.g. `\"Question: "
                                                           "{question}\"`")
    messages_field: str | None = Field(default=None, description="column with ready chat messages (a trailing "
                                                                 "assistant turn is dropped)")
    template_jinja: str | None = Field(default=None, description="Jinja2 template of the user message over the row's "
                                                                 "fields (`{{ question }}`; a missing field is an "
                                                                 "error): a file (relative to the working dir, then "
                                                                 "the pipeline file's dir) or inline text with `{{`")
    builder: str | None = Field(default=None, description="`module:function` called with each row (a dict): returns "
                                                          "chat messages (a list of `{role, content}`, or a string "
                                                          "for one user turn), or `None` to skip the row; the module "
                                                          "is looked for beside the pipeline file, then installed; "
                                                          "its source hash is in collect's fingerprint")
    id_field: str | None = Field(default=None, description="column with a stable prompt id; a repeat with the same "
                                                           "text is skipped and counted (default: hash of the "
                                                           "messages)")
    reference_field: str | None = Field(default=None, description="column with the reference answer, kept for "
                                                                  "verification in curate")
    system_prompt: str | None = Field(default=None, description="system message added to every prompt")
    limit: int | None = Field(default=None, gt=0, description="first N prompts (default: all)")
    duplicate_ids: Literal["error", "keep"] = Field(default="error",
                                                    description="an id repeated with different text: `error` (names "
                                                                "the id and both lines) or `keep` (the later "
                                                                "becomes `<id>#2`, ...)")

    @model_validator(mode="after")
    def _one_way(self) -> PromptSource:
        ways = [w for w in WAYS if getattr(self, w)]
        if len(ways) != 1:
            raise ValueError(f"set exactly one of {', '.join(WAYS)}" + (f" (got {', '.join(ways)})" if ways else ""))
        if self.builder:
            from distill.userfn import check_ref

            check_ref(self.builder)
        return self


def _detect_format(src: PromptSource) -> str:
    if src.format != "auto":
        return src.format
    p = Path(src.path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json") or p.name.lower().endswith((".jsonl.gz", ".json.gz")):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".parquet" or (p.is_dir() and any(p.glob("*.parquet")) and not (p / "dataset_info.json").exists()
                                and not (p / "dataset_dict.json").exists()):
        return "parquet"
    return "hf"


def _opener(path: Path) -> Any:
    return gzip.open if path.suffix == ".gz" else open


def _not_utf8(path: Path, lineno: int, line: bytes, offset: int, err: UnicodeDecodeError) -> InputError:
    """The one line a user needs for a file that is not UTF-8: where, and which bytes."""
    bad = line[err.start : err.start + 4]
    return InputError(f"{path}:{lineno}: not UTF-8 text: byte 0x{bad[0]:02x} at byte offset {offset + err.start} "
                      f"of the file (column {err.start + 1} of the line{', uncompressed' if path.suffix == '.gz' else ''}); "
                      "save the file as UTF-8")


def _first_bad_utf8(path: Path) -> InputError | None:
    """Scan for the first line that is not UTF-8 (only after a decode error, to name where it is)."""
    offset = 0
    with _opener(path)(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return _not_utf8(path, lineno, line, offset, e)
            offset += len(line)
    return None


def _rows_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    offset = 0
    with _opener(path)(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, lineno, raw, offset, e) from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line.rstrip("\r\n"))  # the column then points into the line
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}")
            yield f"{path}:{lineno}", row


def _rows_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            for row in reader:
                yield f"{path}:{reader.line_num}", dict(row)
    except UnicodeDecodeError:
        raise (_first_bad_utf8(path) or InputError(f"{path}: not UTF-8 text; save the file as UTF-8")) from None


def _rows_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    for file in files:
        pf = pq.ParquetFile(file)
        n = 0
        for batch in pf.iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                n += 1
                yield f"{file}:row {n}", row


def _rows_hf(src: PromptSource) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    p = Path(src.path)
    try:
        if p.exists():
            ds = datasets.load_from_disk(str(p))
        else:
            ds = datasets.load_dataset(src.path, src.subset, split=src.split)
    except Exception as e:  # noqa: BLE001 - any loader failure is a user-facing input problem
        raise InputError(f"{src.path}: cannot load as a Hugging Face dataset ({type(e).__name__}: {e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if src.split not in ds:
            raise InputError(f"{src.path}: no split {src.split!r} (splits: {', '.join(ds)})")
        ds = ds[src.split]
    for i, row in enumerate(ds):
        yield f"{src.path}[{src.split}] row {i}", row


def iter_rows(src: PromptSource) -> Iterator[tuple[str, dict[str, Any]]]:
    fmt = _detect_format(src)
    path = Path(src.path)
    if fmt != "hf" and not path.exists():
        raise InputError(f"prompts.path: {path} does not exist")
    if fmt == "jsonl":
        return _rows_jsonl(path)
    if fmt == "csv":
        return _rows_csv(path)
    if fmt == "parquet":
        return _rows_parquet(path)
    return _rows_hf(src)


def _messages(src: PromptSource, where: str, row: dict[str, Any], make: Any = None) -> list[dict[str, str]] | None:
    """The row's chat messages; None when the builder skips it. `make`: the builder / Jinja maker, if any."""
    def missing(name: str, what: str) -> InputError:
        return InputError(f"{where}: {what} {name!r} not found; the row has fields: {', '.join(map(str, row)) or '(none)'}")

    if make is not None:
        out = make(where, row)
        if out is None:
            return None
    elif src.messages_field:
        if src.messages_field not in row:
            raise missing(src.messages_field, "prompts.messages_field")
        msgs = row[src.messages_field]
        if isinstance(msgs, str):
            try:
                msgs = json.loads(msgs)
            except json.JSONDecodeError:
                raise InputError(f"{where}: {src.messages_field!r} is a string that is not JSON chat messages") from None
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise InputError(f"{where}: {src.messages_field!r} must be a list of {{role, content}} messages")
        out = [{"role": str(m["role"]), "content": str(m["content"])} for m in msgs]
        # a trailing assistant turn is the reference, not part of the prompt
        if out and out[-1]["role"] == "assistant":
            out = out[:-1]
        if not out:
            raise InputError(f"{where}: {src.messages_field!r} has no user turn")
    elif src.template:
        try:
            text = src.template.format_map(row)
        except KeyError as e:
            raise missing(e.args[0], "prompts.template field") from None
        out = [{"role": "user", "content": text}]
    else:
        assert src.field is not None
        if src.field not in row:
            raise missing(src.field, "prompts.field")
        out = [{"role": "user", "content": str(row[src.field])}]
    if src.system_prompt and out[0]["role"] != "system":
        out.insert(0, {"role": "system", "content": src.system_prompt})
    return out


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def prompt_id_for(messages: list[dict[str, str]]) -> str:
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class PromptTable:
    """Loaded prompts: `len(t)`, `t[i]` (one row as a dict), `t[a:b]` (a dict of column lists), `t["column"]`."""

    COLUMNS = ("prompt_id", "messages", "reference", "metadata")

    def __init__(self) -> None:
        self._cols: dict[str, list[Any]] = {c: [] for c in self.COLUMNS}  # messages as JSON strings

    def append(self, prompt_id: str, messages: list[dict[str, str]], reference: str | None, metadata: str) -> None:
        for c, v in zip(self.COLUMNS, (prompt_id, json.dumps(messages, ensure_ascii=False), reference, metadata),
                        strict=True):
            self._cols[c].append(v)

    def __len__(self) -> int:
        return len(self._cols["prompt_id"])

    def select(self, rows: list[int]) -> PromptTable:
        """A table of the given rows, in that order (a collect shard's prompts)."""
        out = PromptTable()
        out._cols = {c: [v[r] for r in rows] for c, v in self._cols.items()}
        return out

    def _column(self, name: str, rows: slice | int) -> Any:
        v = self._cols[name][rows]
        if name != "messages":
            return v
        return json.loads(v) if isinstance(rows, int) else [json.loads(m) for m in v]

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            return self._column(key, slice(None))
        if isinstance(key, int) and not -len(self) <= key < len(self):
            raise IndexError(f"prompt {key} of {len(self)}")
        return {c: self._column(c, key) for c in self.COLUMNS}


def load_prompts(src: PromptSource) -> tuple[PromptTable, dict[str, int]]:
    """Read a prompt source into a `PromptTable`; duplicates (same id, same text) are dropped and counted.
    An id repeated with different text is an error naming both lines (or, with duplicate_ids: keep, kept as
    '<id>#2', ...). The same text under two ids stays two prompts; collect asks it once."""
    if src.template:
        fields = [f for _, f, _, _ in string.Formatter().parse(src.template) if f]
        if not fields:
            raise InputError(f"prompts.template: {src.template!r} names no field (write e.g. '{{question}}')")
    from distill.prompt_builders import maker_for

    made = maker_for(src)
    make = made[0] if made else None
    seen: dict[str, tuple[str, str]] = {}  # prompt id -> (where it first was, hash of its messages)
    repeats: dict[str, int] = {}
    table = PromptTable()
    stats = {"rows": 0, "duplicates": 0, "skipped": 0}
    for where, row in iter_rows(src):
        stats["rows"] += 1
        messages = _messages(src, where, row, make)
        if messages is None:
            stats["skipped"] += 1
            continue
        if src.id_field:
            if src.id_field not in row:
                raise InputError(f"{where}: prompts.id_field {src.id_field!r} not found; the row has fields: {', '.join(map(str, row))}")
            pid = str(row[src.id_field])
            digest = prompt_id_for(messages)
        else:
            pid = digest = prompt_id_for(messages)
        if pid in seen:
            first, first_digest = seen[pid]
            if first_digest == digest:
                stats["duplicates"] += 1
                continue
            if src.duplicate_ids == "error":
                raise InputError(f"{where}: prompt id {pid!r} repeats {first} with different text; give each prompt "
                                 "its own id, or set prompts.duplicate_ids: keep")
            repeats[pid] = repeats.get(pid, 1) + 1
            pid = f"{pid}#{repeats[pid]}"
        seen[pid] = (where, digest)
        ref = None
        if src.reference_field:
            if src.reference_field not in row:
                raise InputError(
                    f"{where}: prompts.reference_field {src.reference_field!r} not found; the row has fields: {', '.join(map(str, row))}"
                )
            r = row[src.reference_field]
            ref = r if isinstance(r, str) or r is None else json.dumps(_jsonable(r))
        skip = {src.field, src.messages_field, src.reference_field}
        meta = {k: _jsonable(v) for k, v in row.items() if k not in skip}
        table.append(pid, messages, ref, json.dumps(meta, ensure_ascii=False))
        if src.limit and len(seen) >= src.limit:
            break
    if stats["rows"] == 0:
        raise InputError(f"prompts.path: {src.path} has no rows")
    if len(table) == 0 and stats["skipped"]:
        raise InputError(f"prompts.builder ({src.builder}) skipped all {stats['skipped']} rows of {src.path} "
                         "(returned None for each): nothing to collect")
    return table, stats
