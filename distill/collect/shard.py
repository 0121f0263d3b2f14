"""`distill collect --shard i/n`: n collectors (processes, machines) split one collect run without paying twice.

- Assignment: a prompt goes to shard `blake2b(prompt_id) mod n`, stable across runs, machines and Python versions,
  so a killed shard's re-run asks for exactly its own prompts again and finds its answers in its cache.
- Isolation: shard i of n is a run dir of its own under `runs/<name>/collect-shards/i-of-n/` (its cache file,
  collect lock, spend ledger and batch state), so shards never contend for a lock or a SQLite file.
- Limits, split explicitly and printed: each shard gets budget_usd / n, and every teacher's rpm, tpm, input_tpm,
  output_tpm, its share of the header-announced limits (`limit_share`) and
  concurrency / n, so n shards together stay under the cap and the provider's limits.
- Merge (`merge_shards`, run by whichever shard finishes last, or `distill collect --merge n`): every
  prompt x teacher x sample must be present at most once (a duplicate is an error); missing ones are counted and
  make the run incomplete; the shards' record files become the one stage output `runs/<name>/collect/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from distill.collect.config import CollectConfig
from distill.errors import DistillError, InputError
from distill.rundir import RunLayout, Stage, fingerprint, read_summary, run_lock


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; one clear error otherwise."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected i/n, e.g. 0/4 (shard 0 of 4)") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text!r}: expected 0 <= i < n")
    return i, n


def shard_of(prompt_id: str, n: int) -> int:
    return int.from_bytes(hashlib.blake2b(str(prompt_id).encode(), digest_size=8).digest(), "little") % n


def shard_root(layout: RunLayout, i: int, n: int) -> Path:
    return layout.root / "collect-shards" / f"{i}-of-{n}"


def shard_layout(layout: RunLayout, i: int, n: int) -> RunLayout:
    """Shard i's own run dir: its collect output, cache, locks, ledger and batch state."""
    root = shard_root(layout, i, n)
    return RunLayout(root, cache_path=root / "cache" / "llm.sqlite")


def shard_config(cfg: CollectConfig, n: int) -> tuple[CollectConfig, list[str]]:
    """The section one of n shards runs with (its share of the budget and of each teacher's limits), and the
    lines that say so."""
    lines = []
    budget = cfg.budget_usd / n if cfg.budget_usd is not None else None
    lines.append(f"budget_usd: {'none' if budget is None else f'${budget:.4f} of ${cfg.budget_usd:.4f}'}")
    teachers = []
    for t in cfg.teachers:
        upd: dict[str, Any] = {"concurrency": max(1, t.concurrency // n), "limit_share": t.limit_share / n}
        for key in ("rpm", "tpm", "input_tpm", "output_tpm"):
            if getattr(t, key) is not None:
                upd[key] = getattr(t, key) / n
        teachers.append(t.model_copy(update=upd))
        lines.append(f"{t.name}: concurrency {upd['concurrency']} of {t.concurrency}"
                     + "".join(f", {k} {upd[k]:g} of {getattr(t, k):g}" for k in ("rpm", "tpm", "input_tpm",
                                                                               "output_tpm") if k in upd)
                     + f", {upd['limit_share']:.3g} of the limits the provider's headers announce")
    return cfg.model_copy(update={"budget_usd": budget, "teachers": teachers}), lines


def _record_files(stage_dir: Path) -> list[Path]:
    return sorted(stage_dir.glob("records-*.parquet")) or sorted(stage_dir.glob("records-*.jsonl"))


def _keys(files: list[Path]) -> list[tuple[str, str, int]]:
    """(prompt_id, teacher, sample_index) of every record in `files`."""
    import pyarrow.parquet as pq

    out: list[tuple[str, str, int]] = []
    for f in files:
        if f.suffix == ".parquet":
            t = pq.read_table(f, columns=["prompt_id", "teacher", "sample_index"]).to_pydict()
            out += zip(t["prompt_id"], t["teacher"], t["sample_index"], strict=True)
        else:
            for line in f.read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                out.append((r["prompt_id"], r["teacher"], r["sample_index"]))
    return out


def merge_shards(cfg: CollectConfig, layout: RunLayout, n: int) -> dict[str, Any] | None:
    """The n shards' outputs as one collect stage, checked; None while a shard has not finished yet."""
    from distill.collect.stage import collect_fingerprint
    from distill.progress import console
    from distill.prompts import load_prompts

    summaries = [read_summary(shard_layout(layout, i, n).collect) for i in range(n)]
    waiting = [i for i, s in enumerate(summaries) if s is None]
    if waiting:
        console.print(f"collect: shards {', '.join(f'{i}/{n}' for i in waiting)} not finished yet; the last one "
                      "to finish merges (or run `distill collect --merge " f"{n}`)")
        return None
    ds, _ = load_prompts(cfg.prompts)
    expected = {(pid, t.name, s) for pid in ds["prompt_id"] for t in cfg.teachers for s in range(t.params.n)}
    files = {i: _record_files(shard_layout(layout, i, n).collect) for i in range(n)}
    seen = Counter(k for i in range(n) for k in _keys(files[i]))
    dups = {k: c for k, c in seen.items() if c > 1}
    stray = [k for k in seen if k not in expected]
    if dups or stray:
        raise DistillError(f"collect --merge {n}: {len(dups)} prompt x teacher x sample present more than once "
                           f"(e.g. {next(iter(dups), None)}), {len(stray)} not in the prompts/teachers of this config "
                           f"(e.g. {stray[0] if stray else None}); were the shards run with another config?")
    missing = len(expected) - len(seen)
    try:
        lock = run_lock(layout.root, "collect", "`distill collect`")
    except DistillError:
        console.print("collect: another process is merging (or collecting into) this run dir; leaving it to it")
        return None
    with lock:
        stage = Stage("collect", layout.collect, fingerprint(collect_fingerprint(cfg), f"shards:{n}"),
                      cfg.model_dump(mode="json"))
        with stage.build() as b:
            for i in range(n):
                for f in files[i]:
                    _link_or_copy(f, b.out / f"{f.stem.replace('records-', f'records-s{i:04d}-')}{f.suffix}")
            with (b.out / "failures.jsonl").open("w", encoding="utf-8") as out:
                for i in range(n):
                    src = shard_layout(layout, i, n).collect / "failures.jsonl"
                    if src.is_file():
                        out.write(src.read_text(encoding="utf-8"))
            add = ("records", "completed", "from_cache", "failed", "not_sent", "dropped_truncated")
            b.summary.update({k: sum(int(s.get(k) or 0) for s in summaries) for k in add})
            b.summary.update(
                prompts=len(ds), shards=n, expected_records=len(expected), missing=missing, duplicates=0,
                cost_usd=round(sum(float(s.get("cost_usd") or 0) for s in summaries), 6),
                complete=missing == 0 and all(s.get("complete") for s in summaries),
                per_shard=[{"shard": f"{i}/{n}", "records": s.get("records"), "complete": s.get("complete"),
                            "cost_usd": s.get("cost_usd"), "spend": s.get("spend")} for i, s in enumerate(summaries)],
            )
    console.print(f"collect: merged {n} shards: {b.summary['records']} records, {missing} missing, 0 duplicates")
    return b.summary


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def run_collect_shard(cfg: CollectConfig, layout: RunLayout, i: int, n: int, *,
                      force: bool = False) -> dict[str, Any]:
    """Collect shard i of n (its prompts, its share of every limit) into its own run dir, then merge if all n are
    done; returns the merged summary, or the shard's own while others are still running."""
    from distill.collect.stage import run_collect
    from distill.progress import console

    scfg, lines = shard_config(cfg, n)
    console.print(f"collect shard {i}/{n}: " + "; ".join(lines))
    summary = run_collect(scfg, shard_layout(layout, i, n), force=force, shard=(i, n))
    merged = merge_shards(cfg, layout, n)
    return merged if merged is not None else summary
