"""Live progress for long stages: rich bars on a terminal, periodic plain lines in a log file.

A bar redrawn in place is right on a TTY, but in a log (nohup, CI, `docker logs`) rich shows nothing and tqdm writes
one line per redraw. So when stderr is not a TTY, `make_progress` returns `LogProgress` (one line per task every
DISTILL_PROGRESS_INTERVAL seconds, default 30, and one when a task ends), and `log_friendly_bars` makes the
tqdm bars of datasets/transformers/vLLM redraw at most that often.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


def interval_s() -> float:
    """Seconds between progress lines in a log (DISTILL_PROGRESS_INTERVAL, default 30)."""
    try:
        return max(0.0, float(os.environ.get("DISTILL_PROGRESS_INTERVAL", "30")))
    except ValueError:
        return 30.0


def log_friendly_bars() -> None:
    """When stderr is a log, make tqdm (read from TQDM_* at its import) redraw every interval, not every step.

    Call before anything imports tqdm (the CLI does, first); subprocesses such as vLLM inherit it. A user's own
    TQDM_MININTERVAL wins.
    """
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_MININTERVAL", str(interval_s()))


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    stats: str = ""
    started: float = field(default_factory=time.monotonic)
    done_logged: bool = False


def _clock(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class LogProgress:
    """The subset of `rich.progress.Progress` the stages use, writing one plain line per task per interval."""

    def __init__(self, enabled: bool = True, interval: float | None = None, out: Console | None = None):
        self.enabled = enabled
        self.interval = interval_s() if interval is None else interval
        self.out = out or console
        self.tasks: dict[int, _Task] = {}
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:  # the error says what happened; a progress line would bury it
            return
        with self._lock:
            for t in self.tasks.values():
                if not t.done_logged:
                    self._line(t)

    def add_task(self, description: str, total: float | None = None, stats: str = "", **_: Any) -> int:
        with self._lock:
            tid = len(self.tasks)
            self.tasks[tid] = _Task(description, total, stats=stats)
            return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, stats: str | None = None, **_: Any) -> None:
        with self._lock:
            t = self.tasks[task_id]
            if total is not None:
                t.total = total
            if completed is not None:
                t.completed = completed
            if advance:
                t.completed += advance
            if stats is not None:
                t.stats = stats
            if t.total is not None and t.completed >= t.total and not t.done_logged:
                self._line(t)
            elif time.monotonic() - self._last >= self.interval:
                self._last = time.monotonic()
                for other in self.tasks.values():
                    if not other.done_logged:
                        self._line(other, final=False)

    def remove_task(self, task_id: int) -> None:
        with self._lock:
            t = self.tasks.pop(task_id, None)
            if t is not None and not t.done_logged:
                self._line(t)

    def _line(self, t: _Task, final: bool = True) -> None:
        t.done_logged = t.done_logged or final
        if not self.enabled:
            return
        elapsed = time.monotonic() - t.started
        done = f"{t.completed:.0f}" + (f"/{t.total:.0f} ({100 * t.completed / t.total:.0f}%)" if t.total else "")
        left = ""
        if t.total and 0 < t.completed < t.total:
            left = f", ~{_clock(elapsed * (t.total - t.completed) / t.completed)} left"
        self.out.print(f"{t.description}: {done} in {_clock(elapsed)}{left}" + (f" | {t.stats}" if t.stats else ""),
                       highlight=False)


def make_progress(enabled: bool = True) -> Progress | LogProgress:
    """Bars on a terminal; periodic lines when stderr is a file or a pipe."""
    if not console.is_terminal:
        return LogProgress(enabled)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        disable=not enabled,
        refresh_per_second=4,
    )
