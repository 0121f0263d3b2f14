"""curate: a collect run -> a filtered, verified, deduplicated, decontaminated `DatasetDict` ready for SFT.

The steps and their order are one table, `pipeline.STEPS`: per-record filters (errors, finish_reason, trace, empty,
refusal, length, repetition, language) -> verification and rejection sampling -> exact dedup -> near-dup (MinHash
LSH) -> decontamination; then messages + split by prompt id (`build.py`). Each step's count and up to 3 examples
go to summary.json; a step that would leave nothing is an error naming it.

Output (`<run_dir>/curate/`): `dataset/` (`DatasetDict.save_to_disk`: train, validation), `README.md` (dataset
card), `summary.json`. Load it with `load_curated(stage_dir)`. Heavy imports wait until a stage runs, so reading a
config (`distill.curate.config`) stays light.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distill.curate.config import CurateConfig
from distill.errors import InputError
from distill.rundir import RunLayout, Stage, file_fingerprint, fingerprint, require_stage

__all__ = ["CurateConfig", "load_curated", "run_curate"]

REQUIRED = ["id", "prompt_id", "messages", "completion"]
OPTIONAL_NULL = ["reasoning", "reasoning_status", "reference", "metadata", "teacher", "model", "finish_reason", "sample_index"]


def load_curated(stage_dir: str | Path) -> Any:
    """The curated `DatasetDict` (train, validation) of a finished curate stage."""
    from datasets import load_from_disk

    stage_dir = Path(stage_dir)
    require_stage(stage_dir, "curate")
    return load_from_disk(str(stage_dir / "dataset"))


def run_curate(cfg: CurateConfig, layout: RunLayout, *, force: bool = False,
               pipeline: str = "distill") -> dict[str, Any]:
    """Run the curate stage on `cfg.input` (default the layout's collect dir) into the layout's curate dir; returns
    its summary (also in summary.json)."""
    from distill.curate.executor import make_executor
    from distill.progress import console

    t_start = time.monotonic()
    in_dir = Path(cfg.input) if cfg.input else layout.collect
    collect_summary = require_stage(in_dir, "collect")
    stage = Stage("curate", layout.curate, _fingerprint(cfg, in_dir, collect_summary), cfg.model_dump(mode="json"))
    if (done := stage.fresh(force)) is not None:
        return done
    records = _read_records(in_dir, cfg)
    console.print(f"curate: {len(records)} records from {in_dir}")
    timings: dict[str, float] = {}
    executor = make_executor(cfg.executor, cfg.ray_address)
    try:
        return _curate(records, cfg, in_dir, collect_summary, stage, executor, timings, t_start, pipeline, layout)
    finally:
        executor.close()


def _curate(records: Any, cfg: CurateConfig, in_dir: Path, collect_summary: dict[str, Any], stage: Stage,
            executor: Any, timings: dict[str, float], t_start: float, pipeline: str,
            layout: RunLayout) -> dict[str, Any]:
    import pyarrow as pa

    from distill.curate.build import dataset_card, split_counts, teacher_table, write_dataset
    from distill.curate.pipeline import prepare, run_steps

    rows = prepare(records, cfg, timings, executor)
    rows.layout = layout  # for a step that asks a model (the judge): the run's cache and ledger
    alive, steps = run_steps(rows, cfg, timings)
    t = time.monotonic()
    idx = alive.nonzero()[0]
    with stage.build() as b:
        dd = write_dataset(rows.ds.data.table, idx, rows.verification, cfg, b.out, rows.columns)
        timings["build_s"] = time.monotonic() - t
        b.summary.update(
            pipeline=pipeline,
            executor=executor.name,
            input=str(in_dir),
            records_in=len(records),
            records_out=len(idx),
            splits=split_counts(dd),
            teachers=teacher_table(records.data.table,
                                   pa.table({"teacher": rows.ds.data.column("teacher").take(pa.array(idx))})),
            token_count_method=rows.token_count_method,
            filters=steps,
            timings_s={k: round(v, 3) for k, v in timings.items()},
            wall_time_s=round(time.monotonic() - t_start, 3),
        )
        (b.out / "README.md").write_text(dataset_card(b.summary, collect_summary))
    if cfg.push_to_hub is not None:
        _push(dd, layout.curate / "README.md", cfg)
    return b.summary


def _read_records(in_dir: Path, cfg: CurateConfig) -> Any:
    """The collect records, with the columns the switched-on steps need (a missing one is named) and no partial
    traces unless allowed."""
    from distill.collect import load_records
    from distill.curate.pipeline import needed_columns

    records = load_records(in_dir)
    cols = set(records.column_names)
    missing = [c for c in REQUIRED + needed_columns(cfg) if c not in cols]
    if missing:
        raise InputError(f"{in_dir}: records lack column(s) {', '.join(missing)} needed by curate "
                         f"(found: {', '.join(sorted(cols))})")
    for c in OPTIONAL_NULL:
        if c not in cols:
            records = records.add_column(c, [None] * len(records))
    if len(records) == 0:
        raise InputError(f"{in_dir}: the collect run has no records to curate")
    _refuse_partial_traces(records, in_dir, cfg)
    return records


def _refuse_partial_traces(records: Any, in_dir: Path, cfg: CurateConfig) -> None:
    """Reasoning-SFT data from summarized or redacted traces teaches the student a summary (or nothing) as if it
    were the reasoning: refused unless the config says so."""
    import pyarrow.compute as pc

    if cfg.reasoning == "drop" or cfg.allow_partial_traces:
        return
    status = records.data.column("reasoning_status")
    partial = {s: int(pc.sum(pc.equal(status, s)).as_py() or 0) for s in ("summarized", "redacted")}
    if any(partial.values()):
        what = ", ".join(f"{n} {s}" for s, n in partial.items() if n)
        raise InputError(
            f"{in_dir}: {what} reasoning traces (reasoning_status); curate.reasoning: {cfg.reasoning} would train the "
            "student on them as if they were the teacher's reasoning. Set curate.reasoning: drop (answer-only), or "
            "curate.allow_partial_traces: true to use them anyway")


def _fingerprint(cfg: CurateConfig, in_dir: Path, collect_summary: dict[str, Any]) -> str:
    # where it runs is not what it makes: both executors keep the same records, so switching one is not a change
    parts: list[Any] = [cfg.model_dump(mode="json", exclude={"executor", "ray_address"}),
                        collect_summary.get("fingerprint"), file_fingerprint(in_dir)]
    if cfg.decontam.enabled:
        for ref in cfg.decontam.benchmarks:
            if ref.source and Path(ref.source).exists():
                parts.append(file_fingerprint(Path(ref.source)))
    if cfg.student_tokenizer and Path(cfg.student_tokenizer).exists():
        parts.append(file_fingerprint(Path(cfg.student_tokenizer)))
    return fingerprint(*parts)


def _push(dd: Any, card: Path, cfg: CurateConfig) -> None:
    from distill.errors import DistillError
    from distill.progress import console

    hub = cfg.push_to_hub
    assert hub is not None
    try:
        dd.push_to_hub(hub.repo_id, private=hub.private, token=hub.token)
        from huggingface_hub import HfApi

        HfApi(token=hub.token).upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=hub.repo_id,
                                            repo_type="dataset")
    except Exception as err:  # network/auth problems are the user's to fix; say so in one line
        raise DistillError(f"curate.push_to_hub: could not push to {hub.repo_id!r} ({type(err).__name__}: {err}); "
                           "the dataset is saved locally") from None
    console.print(f"curate: pushed to https://huggingface.co/datasets/{hub.repo_id}")
