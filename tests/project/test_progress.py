"""Progress in a log file (stderr not a TTY): periodic lines, not one per step — for distill's own bars and for the
tqdm bars of the libraries underneath (datasets, transformers, vLLM)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO


def _run(code: str, **env: str) -> str:
    """Run `code` with stdout/stderr going to a pipe (not a TTY); returns stderr."""
    full = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"} | {"PYTHONPATH": str(REPO), **env}
    p = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stderr


STAGE = """
import time
from distill.progress import make_progress
with make_progress() as p:
    a = p.add_task("collect gpt", total=3000, stats="")
    b = p.add_task("collect claude", total=None, stats="")
    for i in range(3000):
        p.advance(a)
        p.update(b, completed=i, stats=f"$0.{i:04d}")
        time.sleep(0.0005)
"""


def test_stage_progress_writes_periodic_lines_to_a_log() -> None:
    err = _run(STAGE, DISTILL_PROGRESS_INTERVAL="0.5")
    lines = err.strip().splitlines()
    # ~2 s of 3,000 steps: a few interval lines + one final line per task, never one per step
    assert 3 <= len(lines) <= 20, lines
    assert len(err) < 2000
    assert "collect gpt: 3000/3000 (100%) in 0:00:0" in err  # the end of a task is always logged
    assert "collect claude: 2999 in" in err and "| $0.2999" in err  # an open-ended task, with its stats
    assert any("left" in ln and "collect gpt:" in ln for ln in lines)  # an interval line with an ETA


def test_stage_progress_disabled_writes_nothing() -> None:
    assert _run(STAGE.replace("make_progress()", "make_progress(False)"), DISTILL_PROGRESS_INTERVAL="0") == ""


TQDM = """
import time
from distill.progress import log_friendly_bars
if {setup}:
    log_friendly_bars()
from tqdm import tqdm
for _ in tqdm(range(400), desc="tokenizing"):
    time.sleep(0.005)
"""


def _redraws(err: str) -> int:
    return len([s for s in err.replace("\r", "\n").splitlines() if "tokenizing" in s])


def test_library_tqdm_bars_redraw_per_interval_in_a_log() -> None:
    flood = _redraws(_run(TQDM.format(setup=False)))
    quiet = _redraws(_run(TQDM.format(setup=True), DISTILL_PROGRESS_INTERVAL="30"))
    assert flood >= 10  # tqdm's own default: a redraw every 0.1 s, each a new line in a file
    assert quiet <= 2, quiet  # the first and the last
    # a user's own setting wins
    assert _redraws(_run(TQDM.format(setup=True), TQDM_MININTERVAL="0.05")) >= 10
