"""Crash-safe response cache: SQLite in WAL mode, one row per (request, sample index).

A response is committed before it counts as done, so after Ctrl-C or `kill -9` a re-run sends only what is
missing, and anything answered in an earlier run (collect or eval) is free. Keys hash what determines the answer:
base_url, model, request params, messages, sample index. No key, header or secret is ever stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def request_key(base_url: str, model: str, params: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    blob = json.dumps(
        {"base_url": base_url.rstrip("/"), "model": model, "params": params, "messages": messages},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def sample_key(req_key: str, sample_index: int) -> str:
    return f"{req_key[:40]}-{sample_index}"


class ResponseCache:
    """Thread-safe, process-crash-safe key -> record store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed row survives a killed process (not necessarily a power cut).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, endpoint TEXT, sample_index INTEGER, record TEXT NOT NULL, created_at REAL)"
        )

    def put_many(self, rows: Iterable[tuple[str, str, int, dict[str, Any]]]) -> None:
        """Durably store (key, endpoint, sample_index, record) rows in one transaction."""
        now = time.time()
        data = [(k, e, i, json.dumps(r, ensure_ascii=False), now) for k, e, i, r in rows]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?)", data)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM responses WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key, record FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            with self._lock:
                rows = self._db.execute(q, chunk).fetchall()
            out.update((k, json.loads(r)) for k, r in rows)
        return out

    def has_many(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT key FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            with self._lock:
                found.update(k for (k,) in self._db.execute(q, chunk))
        return found

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def iter_records(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT record FROM responses ORDER BY rowid").fetchall()
        for (r,) in rows:
            yield json.loads(r)

    def close(self) -> None:
        with self._lock:
            self._db.close()
