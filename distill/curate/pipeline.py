"""The curate table: every step in run order, and the runner that applies it.

`STEPS` is the one place the order lives: it drives the run, summary.json's `filters` (same order, same names) and
so the dataset card's filter list. Adding a filter is one `keep(batch, section)` function beside its kind
(`filters.py`), one row here, its config section (`config.py`) and its test.

Records stay in Arrow throughout: one batched `datasets.map` pass (`num_proc` from 20k records) derives the text,
token counts and every per-record filter's keep column; whole-table steps (verification, dedup, decontamination)
then work on numpy masks over row indices, so a million records never become Python lists.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from distill.answers import strip_reasoning
from distill.curate import filters
from distill.curate.build import assistant_text
from distill.curate.config import CurateConfig
from distill.curate.decontam import decontam_step
from distill.curate.dedup import exact_dedup_step, near_dedup_step
from distill.curate.judge import judge_step
from distill.curate.step import Rows, Step, keep_column, record_filter
from distill.curate.verify import UNVERIFIABLE, rejection_step, verify_step
from distill.errors import ConfigError, InputError
from distill.progress import console
from distill.tokens import TokenCounter

STEPS: tuple[Step, ...] = (
    record_filter("errors", filters.errors_keep),
    record_filter("structured", filters.structured_keep, needs=("structured",)),
    record_filter("finish_reason", filters.finish_reason_keep, stats=filters.finish_reason_stats,
                  needs=("finish_reason",)),
    record_filter("trace", filters.trace_keep),
    record_filter("trace_ratio", filters.trace_ratio_keep),
    record_filter("empty", filters.empty_keep),
    record_filter("refusal", filters.refusal_keep),
    record_filter("length", filters.length_keep, stats=filters.length_stats),
    record_filter("repetition", filters.repetition_keep),
    record_filter("language", filters.language_keep),
    Step("verify", verify_step, needs=("reference",), timer="verify_s"),
    Step("rejection_sampling", rejection_step, section="verify", timer="verify_s"),
    Step("exact_dedup", exact_dedup_step, timer="exact_dedup_s"),
    Step("near_dedup", near_dedup_step, timer="near_dedup_s"),
    Step("decontam", decontam_step, active=lambda c: c.enabled and bool(c.benchmarks), timer="decontam_s"),
    Step("judge", judge_step, timer="judge_s"),  # paid: last, so it scores only what every free step kept
)


def needed_columns(cfg: CurateConfig) -> list[str]:
    """Record columns the switched-on steps read beyond the required ones, in table order."""
    out: list[str] = []
    for step in STEPS:
        if step.active(step.config(cfg)):
            out += [c for c in step.needs if c not in out]
    return out


def token_counter(path: str | None) -> TokenCounter:
    """Curate's token counts: the student's tokenizer (a local directory) when configured, else chars/4."""
    if path and not Path(path).is_dir():
        raise ConfigError(f"curate.student_tokenizer: {path!r} is not a local tokenizer directory")
    return TokenCounter(None, path, field="curate.student_tokenizer")


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    """The prompt as text for dedup/decontam: user (and earlier assistant) turns; the shared system prompt is left
    out so it cannot make unrelated prompts look alike."""
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "system")


def _prepare(batch: dict[str, list[Any]], per_record: list[tuple[str, Any, Any]], counter: TokenCounter,
             mode: str) -> dict[str, Any]:
    answers = [strip_reasoning(c) if c is not None else "" for c in batch["completion"]]
    prompts = [_prompt_text(m or []) for m in batch["messages"]]
    out: dict[str, Any] = {"_answer": answers, "_prompt_text": prompts}
    # in field mode the trace sits in its own key, but it is trained on all the same: count and dedup it
    seen = "think" if mode == "field" else mode
    assistant = [assistant_text(a, r, seen) for a, r in zip(answers, batch["reasoning"])]
    out["assistant_tokens"] = counter.texts(assistant)
    if mode != "drop":  # the trace is trained on too, so dedup and decontamination must see it
        out["_assistant"] = assistant
    out["_prompt_tokens"] = counter.texts(prompts)
    out["_trace_tokens"] = counter.texts([r or "" for r in batch["reasoning"]])
    out["_answer_tokens"] = out["assistant_tokens"] if mode == "drop" else counter.texts(answers)
    view = {**batch, **out}
    for name, keep, section in per_record:
        out[keep_column(name)] = keep(view, section).tolist()
    return out


def prepare(records: Any, cfg: CurateConfig, timings: dict[str, float], executor: Any = None) -> Rows:
    """The one batched pass: derived text and token columns plus each switched-on per-record filter's keep column
    (on `executor`: local `datasets.map`, or Ray Data `map_batches`)."""
    from distill.curate.executor import LocalExecutor

    executor = executor or LocalExecutor()
    t = time.monotonic()
    counter = token_counter(cfg.student_tokenizer)
    num_proc = cfg.num_proc if (cfg.num_proc > 1 and len(records) >= 20_000) else None
    per_record = [(s.name, s.per_record, s.config(cfg)) for s in STEPS
                  if s.per_record is not None and s.active(s.config(cfg))]
    ds = executor.map_records(records, _prepare, {"per_record": per_record, "counter": counter, "mode": cfg.reasoning},
                              num_proc=num_proc, desc="curate: per-record filters")
    timings["record_filters_s"] = time.monotonic() - t
    return Rows(ds, num_proc=num_proc, progress=cfg.progress, token_count_method=counter.method,
                verification=np.full(len(ds), UNVERIFIABLE, dtype=object), executor=executor)


def run_steps(rows: Rows, cfg: CurateConfig, timings: dict[str, float],
              steps: tuple[Step, ...] = STEPS) -> tuple[np.ndarray, dict[str, Any]]:
    """(alive mask, summary of every step) after running `steps` in order over `rows`."""
    alive = np.ones(len(rows), dtype=bool)
    report: dict[str, Any] = {}
    for step in steps:
        section = step.config(cfg)
        if not step.active(section):
            report[step.name] = {"enabled": False, "removed": 0}
            continue
        t = time.monotonic()
        out = step.run(rows, alive, section)
        removed = np.flatnonzero(alive & ~out.keep)
        before = int(alive.sum())
        report[step.name] = {"enabled": True, "removed": int(len(removed)), **out.info,
                             "examples": rows.examples(removed, out.extra)}
        if len(removed) == before and before > 0:
            raise InputError(f"curate: filter `{step.name}` removed all {before} remaining records "
                             f"({len(alive)} in); nothing would be left to train on — check "
                             f"curate.{step.section or step.name} settings (or switch it off with `enabled: false`) "
                             "and the collect output")
        alive &= out.keep
        console.print(f"curate: {step.name}: removed {len(removed)}, {before - len(removed)} left")
        if step.timer:
            timings[step.timer] = timings.get(step.timer, 0.0) + time.monotonic() - t
    return alive, report
