"""Answer verification against the prompt's reference, and rejection sampling over a prompt's samples.

Which check applies to a record (kind "auto"): code when its metadata carries `tests` (run in the sandbox),
multiple-choice when the reference is a single letter, numeric when the reference contains a number; otherwise
the record is "unverifiable" (kept unless `drop_unverifiable`). Numeric and choice answers are judged by
`distill.answers.grade`, the grader eval scores with (rules: docs/grading.md).

Two curate steps: `verify_step` (incorrect answers go; the status of every row is kept for the dataset's
`verification` column) and `rejection_step` (of a prompt's correct samples keep all, the first or the shortest).
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow.compute as pc

from distill.answers import extract_number, grade
from distill.answers.code import check_program
from distill.curate.config import VerifyConfig
from distill.curate.step import EXAMPLES, Outcome, Rows, snippet
from distill.sandbox import Limits

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"


def _tests_of(metadata: Any) -> tuple[str | None, str | None]:
    if not metadata:
        return None, None
    try:
        meta = json.loads(metadata) if isinstance(metadata, str) else dict(metadata)
    except (ValueError, TypeError):
        return None, None
    if not isinstance(meta, dict):
        return None, None
    tests = meta.get("tests") or meta.get("test")
    if isinstance(tests, list):
        tests = "\n".join(str(t) for t in tests)
    entry = meta.get("entry_point")
    return (str(tests) if tests else None), (str(entry) if entry else None)


def kind_of(reference: str | None, metadata: Any, cfg: VerifyConfig) -> str | None:
    tests, _ = _tests_of(metadata)
    if cfg.kind == "code":
        return "code" if tests else None
    if reference is None or not str(reference).strip():
        return "code" if (cfg.kind == "auto" and tests) else None
    ref = str(reference).strip()
    if cfg.kind == "choice":
        return "choice"
    if cfg.kind == "numeric":
        return "numeric"
    if tests:
        return "code"
    if re.fullmatch(rf"\(?[{re.escape(cfg.letters)}]\)?\.?", ref):
        return "choice"
    if extract_number(ref) is not None:
        return "numeric"
    return None


def verify_batch(batch: dict[str, list[Any]], cfg: VerifyConfig) -> list[str]:
    """Verification status of each record in a batch: correct | incorrect | unverifiable."""
    answers, refs = batch["_answer"], batch["reference"]
    metas = batch.get("metadata") or [None] * len(answers)
    finish = batch.get("finish_reason") or [None] * len(answers)
    out: list[str] = [UNVERIFIABLE] * len(answers)
    code_jobs: list[tuple[int, str, str, str | None]] = []
    for i, (ans, ref, meta) in enumerate(zip(answers, refs, metas)):
        kind = kind_of(ref, meta, cfg)
        if kind in ("numeric", "choice"):  # one grader for curate and eval (docs/grading.md)
            num_ref = extract_number(str(ref)) if kind == "numeric" else str(ref)
            g = grade(ans or "", num_ref or "", "number" if kind == "numeric" else "choice",
                      finish_reason=finish[i], letters=cfg.letters if kind == "choice" else None)
            out[i] = CORRECT if g.correct else INCORRECT
        elif kind == "code":
            tests, entry = _tests_of(meta)
            code_jobs.append((i, ans or "", tests or "", entry))
    if code_jobs:
        limits = Limits(timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb, sandbox=cfg.sandbox)
        with ThreadPoolExecutor(cfg.workers) as pool:
            results = pool.map(lambda job: check_program(job[1], job[2], job[3], limits=limits), code_jobs)
            for (i, *_), res in zip(code_jobs, results):
                out[i] = CORRECT if res.passed else INCORRECT
    return out


def rejection_sample(prompt_codes: np.ndarray, status: np.ndarray, lengths: np.ndarray, keep: str,
                     drop_unverifiable: bool = False) -> np.ndarray:
    """Keep mask: incorrect answers go; of a prompt's correct samples keep the first, all, or the shortest.

    Unverifiable records are not part of the choice (they are kept, or all dropped with drop_unverifiable).
    """
    correct = status == CORRECT
    mask = status == UNVERIFIABLE if not drop_unverifiable else np.zeros(len(status), dtype=bool)
    if keep == "all":
        return mask | correct
    idx = np.flatnonzero(correct)
    if not len(idx):
        return mask
    if keep == "first":
        order = idx  # dataset order = prompt order then sample index
    else:  # shortest; ties -> the earlier sample
        order = idx[np.lexsort((idx, lengths[idx]))]
    _, first = np.unique(prompt_codes[order], return_index=True)
    mask[order[first]] = True
    return mask


def _verify_map(batch: dict[str, list[Any]], cfg: VerifyConfig) -> dict[str, list[str]]:
    return {"_v": verify_batch(batch, cfg)}


def verify_step(rows: Rows, alive: np.ndarray, cfg: VerifyConfig) -> Outcome:
    """Judge every alive answer (batched, `num_proc`); incorrect ones go, and each row's status is kept."""
    idx = np.flatnonzero(alive)
    sub = rows.ds.select(idx)
    status_ds = sub.map(_verify_map, batched=True, batch_size=256, num_proc=rows.num_proc, fn_kwargs={"cfg": cfg},
                        remove_columns=sub.column_names, desc="curate: verify answers")
    status = np.full(len(rows), UNVERIFIABLE, dtype=object)
    status[idx] = np.asarray(status_ds.data.column("_v").to_pylist(), dtype=object)
    rows.verification = status
    counts = {k: int((status[idx] == k).sum()) for k in (CORRECT, INCORRECT, UNVERIFIABLE)}
    extra = {int(r): {"reference": snippet(rows.ds[int(r)]["reference"], 80)}
             for r in np.flatnonzero(alive & (status == INCORRECT))[:EXAMPLES]}
    note = f"{counts[CORRECT]} correct, {counts[INCORRECT]} incorrect, {counts[UNVERIFIABLE]} unverifiable"
    return Outcome(status != INCORRECT, {"counts": counts, "note": note}, extra)


def rejection_step(rows: Rows, alive: np.ndarray, cfg: VerifyConfig) -> Outcome:
    """Rejection sampling over the statuses `verify_step` left (runs right after it, under `curate.verify`)."""
    codes = np.asarray(pc.dictionary_encode(rows.ds.data.column("prompt_id").combine_chunks()).indices)
    lengths = np.asarray(pc.utf8_length(rows.ds.data.column("_answer").combine_chunks()).to_numpy(zero_copy_only=False))
    alive_status = np.where(alive, rows.verification, "dead")
    keep = rejection_sample(codes, alive_status, lengths, cfg.keep, cfg.drop_unverifiable)
    note = f"keep {cfg.keep} correct per prompt" + ("; unverifiable dropped" if cfg.drop_unverifiable else "")
    return Outcome(keep, {"policy": cfg.keep, "note": note})
