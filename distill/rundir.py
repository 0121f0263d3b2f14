"""Run-dir layout: runs/<pipeline>/<stage>/ each with summary.json, written atomically.

`RunLayout` names every path of a run once (collect/, curate/dataset, train/merged, eval/<model>/, report/, the
cache, the spend ledger, locks, ...). `Stage` is the one skeleton every stage runs through: skip when its
summary's fingerprint is unchanged, else build in a temp dir beside the final one, write summary.json, rename —
so a killed stage never looks finished.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from distill import __version__
from distill.errors import DistillError, InputError

SUMMARY = "summary.json"
MERGED = "merged"  # train/<MERGED>: base + adapter folded into one model (what serve and eval load)
ADAPTER = "adapter"
LEDGER = "spend.jsonl"


@dataclass(frozen=True)
class RunLayout:
    """Every path of one pipeline run, named once. Stages take this instead of building paths themselves."""

    root: Path
    cache_path: Path | None = None  # the pipeline's `cache_path:` override

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def collect(self) -> Path:
        return self.root / "collect"

    @property
    def collect_batches(self) -> Path:
        """Batch-mode state: one file per teacher naming its submitted jobs (outside collect/, which is renamed)."""
        return self.root / "collect-batches"

    @property
    def estimate(self) -> Path:
        return self.root / "estimate.json"

    @property
    def eval_estimate(self) -> Path:
        """`eval --dry-run`'s estimate (items, tokens, $ low/expected/high per model x benchmark)."""
        return self.root / "eval-estimate.json"

    @property
    def prices(self) -> Path:
        """The prices each stage used per endpoint, with their source and date (`llm.provider_prices`)."""
        return self.root / "prices.json"

    @property
    def curate(self) -> Path:
        return self.root / "curate"

    @property
    def dataset(self) -> Path:
        return self.curate / "dataset"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_work(self) -> Path:
        return work_dir(self.train)

    @property
    def merged(self) -> Path:
        return self.train / MERGED

    @property
    def adapter(self) -> Path:
        return self.train / ADAPTER

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def eval_model(self, name: str) -> Path:
        return self.eval / name

    @property
    def eval_replay(self) -> Path:
        return self.root / "eval-replay"

    @property
    def serve(self) -> Path:
        """`distill serve`'s summary and vLLM log (a served model's files stay where train wrote them)."""
        return self.root / "serve"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def push(self) -> Path:
        return self.root / "push"

    @property
    def demo(self) -> Path:
        return self.root / "demo"

    @property
    def cache(self) -> Path:
        """The LLM response cache shared by collect and eval."""
        return self.cache_path if self.cache_path is not None else self.root / "cache" / "llm.sqlite"

    @property
    def ledger(self) -> Path:
        """The spend ledger every paid request of every stage and run is written to."""
        return self.root / LEDGER

    def lock(self, name: str) -> Path:
        """The lock file `run_lock(root, name, ...)` holds."""
        return self.root / f".{name}.lock"


def work_dir(stage_dir: Path) -> Path:
    """A stage's scratch beside it (train-work/: checkpoints a killed run resumes from), never renamed away."""
    return Path(stage_dir).with_name(f"{Path(stage_dir).name}-work")


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


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """One JSON object per line, UTF-8 kept as is; returns the number of lines written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


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


@dataclass
class StageBuild:
    """What a stage writes into while it builds: `out` (the temp dir) and `summary` (written on success)."""

    out: Path
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stage:
    """The skeleton of every stage: skip if fresh, else build in a temp dir, write summary.json, rename.

        stage = Stage("report", layout.report, fp, config_json)
        if (done := stage.fresh(force)) is not None:
            return done
        with stage.build() as b:
            (b.out / "report.md").write_text(md)
            b.summary.update(rows=...)
        return b.summary
    """

    name: str
    dir: Path
    fp: str
    config: Any
    label: str | None = None  # how the "up to date" line names it (default: name)

    def __post_init__(self) -> None:
        self.dir = Path(self.dir)

    def fresh(self, force: bool = False, *, say: bool = True) -> dict[str, Any] | None:
        """The stored summary when the stage is up to date (and not forced), else None."""
        if force or not is_fresh(self.dir, self.fp):
            return None
        if say:
            from distill.progress import console

            console.print(f"{self.label or self.name}: up to date in {self.dir} (use --force to re-run)")
        return read_summary(self.dir)

    @contextmanager
    def build(self) -> Iterator[StageBuild]:
        """A temp dir and a summary started with `base_summary`; on success summary.json is written into it and it
        replaces `dir` atomically; on an error (or a kill) nothing of it remains in `dir`."""
        with stage_output(self.dir) as tmp:
            b = StageBuild(tmp, base_summary(self.name, self.fp, self.config))
            yield b
            write_json(tmp / SUMMARY, b.summary)


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
