"""`collect.parser`: the user's `(row, completion) -> dict` run on every answer as collect writes it out.

It runs at export, over cached answers, not inside the request loop: a parser edit re-parses everything without a
single new request, and a slow parser never holds a connection. A parser that raises marks that record failed
(failures.jsonl, with its message); one that returns something other than a dict (or None) is a bug in the
function, stopped at the first record with one line naming the key.
"""

from __future__ import annotations

import json
from typing import Any

from distill.errors import InputError


class RecordParser:
    """Loaded once per stage; `__call__(record) -> (extra columns, None)` or `(None, error message)`."""

    KEY = "collect.parser"

    def __init__(self, ref: str, reserved: list[str]):
        from distill.userfn import load

        self.fn = load(ref, self.KEY)
        self.reserved = set(reserved)
        self.columns: list[str] = []  # in first-seen order, for the shard schema

    @staticmethod
    def prompt_row(record: dict[str, Any]) -> dict[str, Any]:
        """The prompt's row as the parser sees it: the source fields (metadata) + prompt_id, messages, reference."""
        meta = record.get("metadata")
        try:
            row = json.loads(meta) if isinstance(meta, str) and meta else {}
        except ValueError:
            row = {}
        row = row if isinstance(row, dict) else {}
        return {**row, "prompt_id": record["prompt_id"], "messages": record["messages"],
                "reference": record.get("reference")}

    def __call__(self, record: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        from distill.userfn import call_error

        where = f"prompt {record['prompt_id']!r} sample {record.get('sample_index')} ({record.get('teacher')})"
        try:
            out = self.fn.obj(self.prompt_row(record), record.get("completion") or "")
        except Exception as err:  # noqa: BLE001 - the parser rejects this answer: recorded as failed, run goes on
            return None, call_error(self.KEY, self.fn.ref, err, where)
        if out is None:
            out = {}
        if not isinstance(out, dict) or not all(isinstance(k, str) for k in out):
            raise InputError(f"{self.KEY} ({self.fn.ref}) returned {type(out).__name__} for {where}; expected a dict "
                             "of extra columns (str keys), or None")
        clash = sorted(self.reserved & set(out))
        if clash:
            raise InputError(f"{self.KEY} ({self.fn.ref}) returned column(s) {', '.join(clash)} for {where}: these are "
                             "record columns collect writes itself; name yours differently")
        for k in out:
            if k not in self.columns:
                self.columns.append(k)
        # nested values as JSON text: one Arrow type per column whatever each record returns
        return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list | tuple) else v
                for k, v in out.items()}, None

    def apply(self, record: dict[str, Any], failures: list[dict[str, Any]]) -> bool:
        """Add the parser's columns to `record`; False (and a failures.jsonl line) when it rejected the record."""
        extra, error = self(record)
        if extra is None:
            failures.append({"prompt_id": record["prompt_id"], "teacher": record.get("teacher"),
                             "sample_indices": [record.get("sample_index")], "error": error})
            return False
        record.update(extra)
        return True
