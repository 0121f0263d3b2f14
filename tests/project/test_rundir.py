"""rundir: the run layout, the fresh-check, and the temp-dir build that a kill never leaves looking finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from distill.rundir import (SUMMARY, RunLayout, Stage, fingerprint, is_fresh, read_summary, run_lock, write_jsonl)


def test_layout_names_every_stage_path(tmp_path: Path) -> None:
    lay = RunLayout(tmp_path / "run")
    assert lay.collect == tmp_path / "run" / "collect"
    assert lay.dataset == tmp_path / "run" / "curate" / "dataset"
    assert lay.merged == tmp_path / "run" / "train" / "merged"
    assert lay.adapter == tmp_path / "run" / "train" / "adapter"
    assert lay.train_work == tmp_path / "run" / "train-work"
    assert lay.eval_model("teacher") == tmp_path / "run" / "eval" / "teacher"
    assert lay.report == tmp_path / "run" / "report"
    assert lay.cache == tmp_path / "run" / "cache" / "llm.sqlite"
    assert lay.ledger == tmp_path / "run" / "spend.jsonl"
    assert RunLayout(tmp_path, cache_path=tmp_path / "c.sqlite").cache == tmp_path / "c.sqlite"
    # the lock path is the one run_lock really holds
    with run_lock(lay.root, "collect", "test"):
        assert lay.lock("collect").read_text().strip() == str(os.getpid())


def test_pipeline_config_builds_the_layout(tmp_path: Path) -> None:
    from distill.config import parse_config

    cfg = parse_config({"name": "x", "run_dir": str(tmp_path / "r")})
    assert cfg.layout.train == tmp_path / "r" / "train" and cfg.cache_file == cfg.layout.cache


def test_stage_builds_then_skips_until_the_fingerprint_changes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    d = tmp_path / "report"
    fp = fingerprint("a")
    stage = Stage("report", d, fp, {"k": 1})
    assert stage.fresh() is None
    with stage.build() as b:
        assert b.out != d and b.out.parent == d.parent and not d.exists()  # built beside, not in place
        (b.out / "table.md").write_text("t")
        b.summary["rows"] = 3
    s = read_summary(d)
    assert s is not None and s["stage"] == "report" and s["fingerprint"] == fp and s["rows"] == 3
    assert s["config"] == {"k": 1} and (d / "table.md").read_text() == "t"
    assert stage.fresh() == s and "up to date in" in capsys.readouterr().err  # the console writes to stderr
    assert stage.fresh(force=True) is None
    assert Stage("report", d, fingerprint("b"), {}).fresh() is None
    # a rebuild replaces the old dir whole: no stale file survives
    with Stage("report", d, fingerprint("b"), {}).build() as b:
        (b.out / "other.md").write_text("o")
    assert not (d / "table.md").exists() and (d / "other.md").is_file() and is_fresh(d, fingerprint("b"))
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temp dirs left behind


def test_a_failed_build_leaves_the_previous_stage_untouched(tmp_path: Path) -> None:
    d = tmp_path / "eval"
    with Stage("eval", d, "fp1", {}).build() as b:
        (b.out / "rows.jsonl").write_text("old\n")
    with pytest.raises(RuntimeError), Stage("eval", d, "fp2", {}).build() as b:
        (b.out / "rows.jsonl").write_text("half")
        raise RuntimeError("boom")
    assert (d / "rows.jsonl").read_text() == "old\n" and read_summary(d)["fingerprint"] == "fp1"
    assert [p.name for p in tmp_path.iterdir()] == ["eval"]


def test_a_killed_build_never_looks_finished(tmp_path: Path) -> None:
    """SIGKILL mid-build (no cleanup runs): the stage dir does not exist, so the next run is not skipped."""
    d = tmp_path / "collect"
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from distill.rundir import Stage
        with Stage("collect", Path({str(d)!r}), "fp", {{}}).build() as b:
            (b.out / "records.jsonl").write_text("x\\n")
            print(b.out, flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        tmp_out = Path(proc.stdout.readline().strip())
        assert tmp_out.is_dir()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not d.exists() and not is_fresh(d, "fp") and read_summary(d) is None
    assert not (tmp_out / SUMMARY).exists()  # the orphan temp dir was never marked finished
    with Stage("collect", d, "fp", {}).build() as b:
        (b.out / "records.jsonl").write_text("y\n")
    assert is_fresh(d, "fp") and (d / "records.jsonl").read_text() == "y\n"


def test_write_jsonl_keeps_utf8_and_counts(tmp_path: Path) -> None:
    f = tmp_path / "rows.jsonl"
    assert write_jsonl(f, ({"q": "héllo", "i": i} for i in range(3))) == 3
    text = f.read_text(encoding="utf-8")
    assert "héllo" in text and [json.loads(x)["i"] for x in text.splitlines()] == [0, 1, 2]


def test_summary_write_is_atomic_under_concurrent_writers(tmp_path: Path) -> None:
    """Two processes rewriting one summary never leave a torn file (each uses its own temp name)."""
    f = tmp_path / SUMMARY
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from distill.rundir import write_json
        for i in range(200):
            write_json(Path({str(f)!r}), {{"writer": sys.argv[1], "i": i, "pad": "x" * 5000}})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w)]) for w in range(2)]
    deadline = time.monotonic() + 60
    reads = 0
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if f.exists():
            json.loads(f.read_text())  # never a partial document
            reads += 1
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert json.loads(f.read_text())["i"] == 199 and not list(tmp_path.glob("*.tmp-*"))
