"""Run-dir layout: runs/<pipeline>/<stage>/ each with summary.json, written atomically.

A stage writes into a temp dir beside its final dir and renames it when complete, so a killed stage never looks
finished. A stage whose config and input fingerprint are unchanged is skipped unless forced.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from distill import __version__
from distill.errors import DistillError, InputError

SUMMARY = "summary.json"


def fingerprint(*parts: Any) -> str:
    """Stable hash of JSON-able parts (configs, input fingerprints)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    """Cheap identity of an input file or directory tree: names, sizes, mtimes."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return fingerprint(str(path.resolve()), st.st_size, st.st_mtime_ns)
    if path.is_dir():
        items = []
        for p in sorted(path.rglob("*")):
            if p.is_file():
                st = p.stat()
                items.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns))
        return fingerprint(str(path.resolve()), items)
    return fingerprint(str(path))


def read_summary(stage_dir: Path) -> dict[str, Any] | None:
    f = Path(stage_dir) / SUMMARY
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


def require_stage(stage_dir: Path, stage: str) -> dict[str, Any]:
    """The summary of a finished stage this one reads from, or a clear error."""
    summary = read_summary(stage_dir)
    if summary is None:
        raise InputError(f"{stage_dir}: no finished {stage} stage here (missing {SUMMARY}); run `distill {stage}` first")
    if summary.get("stage") != stage:
        raise InputError(f"{stage_dir}/{SUMMARY}: expected a {stage} run, found stage={summary.get('stage')!r}")
    fmt = summary.get("format_version")
    if fmt != FORMAT_VERSION:
        raise InputError(
            f"{stage_dir}/{SUMMARY}: run dir format_version={fmt!r} from distill {summary.get('distill_version')!r}; "
            f"this distill reads format_version={FORMAT_VERSION} (re-run the {stage} stage with --force)"
        )
    return summary


FORMAT_VERSION = 1


def is_fresh(stage_dir: Path, fp: str) -> bool:
    summary = read_summary(stage_dir)
    return bool(summary and summary.get("fingerprint") == fp and summary.get("complete", True))


def write_json(path: Path, data: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")  # concurrent writers never share one
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


@contextmanager
def stage_output(stage_dir: Path) -> Iterator[Path]:
    """Yield a temp dir; on success it replaces `stage_dir` atomically, on failure it is removed."""
    stage_dir = Path(stage_dir)
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = stage_dir.with_name(f".{stage_dir.name}.tmp-{os.getpid()}-{int(time.time() * 1000)}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if stage_dir.exists():
        old = stage_dir.with_name(f".{stage_dir.name}.old-{os.getpid()}")
        os.replace(stage_dir, old)
    os.replace(tmp, stage_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def base_summary(stage: str, fp: str, config: Any) -> dict[str, Any]:
    """Fields every summary.json starts with."""
    return {
        "stage": stage,
        "format_version": FORMAT_VERSION,
        "distill_version": __version__,
        "fingerprint": fp,
        "config": config,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def run_lock(run_root: Path, name: str, what: str) -> IO[str]:
    """An exclusive lock on runs/<name>/.<name>.lock, held until the returned file is closed.

    `flock` on an open file: the kernel drops it when the holder dies (even by kill -9), so a stale lock never
    blocks the next run. The holder writes its PID into the file so that a refusal can name it."""
    run_root = Path(run_root)
    run_root.mkdir(parents=True, exist_ok=True)
    path = run_root / f".{name}.lock"
    f = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "unknown"
        f.close()
        raise DistillError(f"{run_root}: another {what} holds {path.name} (PID {pid}); wait for it to finish "
                           f"or stop it") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
