"""The judge step: a model scores each answer on a rubric, for answers no reference can check.

The judge is an endpoint like a teacher, asked through the same `distill.llm` path: cached (a re-run, or a new
threshold, asks nothing again), priced, held to `judge.budget_usd` in the run's spend ledger. Its verdict is a
structured output (`{reasoning, score}` under `params.response_format`), so a malformed verdict is retried like
any invalid answer and never cached. Answers at or above `threshold` stay (`keep: best`: only each prompt's best
scored sample); `judge_score` and `judge_reasoning` become dataset columns.

Agreement: where the reference grader (`verify`) gave a verdict, the judge's pass (score >= threshold) is compared
with it. The answers `verify` removed as incorrect are judged too (`agreement: true`), or the comparison would
only ever see correct answers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill.curate.config import JudgeConfig
from distill.curate.step import Outcome, Rows, snippet
from distill.curate.verify import CORRECT, INCORRECT

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"reasoning": {"type": "string", "description": "brief reasoning, written before the score"},
                   "score": {"type": "integer", "minimum": 1, "maximum": 10}},
    "required": ["reasoning", "score"],
    "additionalProperties": False,
}
ASK = ("[Request]\n{question}\n\n[Answer]\n{answer}\n\n"
       "Grade the answer by the rubric. Reply with JSON: {{\"reasoning\": \"...\", \"score\": <1-10>}}.")


def judge_messages(rubric: str, question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": rubric},
            {"role": "user", "content": ASK.format(question=question, answer=answer)}]


def _endpoint(cfg: JudgeConfig) -> Any:
    ep = cfg.endpoint
    assert ep is not None
    return ep.model_copy(update={"params": ep.params.model_copy(update={"response_format": VERDICT_SCHEMA})})


def _ask(rows: Rows, todo: np.ndarray, cfg: JudgeConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(score per row, reasoning per row, the runner's stats) for the rows in `todo`; NaN / None where the judge
    gave no verdict."""
    from distill.llm import ChatRequest, ChatRunner, ResponseCache, request_model
    from distill.llm.budget import Budget
    from distill.progress import make_progress

    if rows.layout is None:
        raise RuntimeError("the judge step needs the run layout (rows.layout), set by run_curate")
    scores = np.full(len(rows), np.nan)
    reasons = np.full(len(rows), None, dtype=object)
    questions = rows.column("_prompt_text")
    answers = rows.column("_answer")
    requests = [ChatRequest(judge_messages(cfg.rubric, str(questions[i]), str(answers[i] or "")), [0], int(i))
                for i in todo]
    cache = ResponseCache(rows.layout.cache)
    budget = Budget.open(rows.layout.root, "curate", cfg.budget_usd)
    runner = ChatRunner(request_model(_endpoint(cfg)), cache, budget=budget)
    try:
        with make_progress(rows.progress) as progress:
            task = progress.add_task(f"curate: judge ({runner.ep.name})", total=len(requests), stats="")

            def on_result(req: Any, records: Any, error: str | None, from_cache: bool) -> None:
                progress.update(task, advance=len(req.samples))
                if records:
                    verdict = json.loads(records[0]["structured"])
                    scores[req.tag], reasons[req.tag] = float(verdict["score"]), str(verdict["reasoning"])

            asyncio.run(runner.run(requests, on_result))
        stats = {**runner.stats.summary(), "spend": budget.summary()}
    finally:
        budget.close()
        cache.close()
    return scores, reasons, stats


def best_per_prompt(prompt_ids: pa.ChunkedArray, scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Of each prompt's kept rows, the one with the highest score (ties: the earlier row)."""
    codes = np.asarray(pc.dictionary_encode(prompt_ids.combine_chunks()).indices)
    idx = np.flatnonzero(keep)
    out = np.zeros(len(keep), dtype=bool)
    if len(idx):
        order = idx[np.lexsort((idx, -scores[idx]))]
        _, first = np.unique(codes[order], return_index=True)
        out[order[first]] = True
    return out


def agreement(passed: np.ndarray, status: np.ndarray, scored: np.ndarray) -> dict[str, Any]:
    """The judge's pass vs the reference grader's verdict, over rows that have both."""
    both = scored & np.isin(status, [CORRECT, INCORRECT])
    correct = status == CORRECT
    cells = {"judge_pass_grader_correct": int((both & passed & correct).sum()),
             "judge_pass_grader_incorrect": int((both & passed & ~correct).sum()),
             "judge_fail_grader_correct": int((both & ~passed & correct).sum()),
             "judge_fail_grader_incorrect": int((both & ~passed & ~correct).sum())}
    n = int(both.sum())
    agree = cells["judge_pass_grader_correct"] + cells["judge_fail_grader_incorrect"]
    return {"records": n, "agree": agree, "rate": round(agree / n, 4) if n else None, **cells}


def judge_step(rows: Rows, alive: np.ndarray, cfg: JudgeConfig) -> Outcome:
    """Score the alive answers (and, for agreement, those `verify` found incorrect); keep by threshold / best."""
    from distill.progress import console

    status = rows.verification if rows.verification is not None else np.full(len(rows), "", dtype=object)
    todo_mask = alive | ((status == INCORRECT) if cfg.agreement else False)
    scores, reasons, stats = _ask(rows, np.flatnonzero(todo_mask), cfg)
    scored = ~np.isnan(scores)
    passed = scored & (np.nan_to_num(scores, nan=0.0) >= cfg.threshold)
    keep = passed | (~scored if cfg.on_error == "keep" else False)
    if cfg.keep == "best":
        keep = best_per_prompt(rows.ds.data.column("prompt_id"), np.nan_to_num(scores, nan=0.0), keep & alive)
    rows.columns["judge_score"] = (scores, pa.float64())
    rows.columns["judge_reasoning"] = (reasons, pa.string())
    on = alive & scored
    hist = {str(int(k)): int(v) for k, v in zip(*np.unique(scores[on], return_counts=True))}
    agree = agreement(passed, status, scored)
    if agree["records"]:
        console.print(f"curate: judge agrees with the reference grader on {agree['agree']}/{agree['records']} "
                      f"answers ({100 * agree['rate']:.1f}%)")
    unscored = int((alive & ~scored).sum())
    note = (f"{int(on.sum())} scored (mean {scores[on].mean():.2f}), {unscored} unscored; keep score >= "
            f"{cfg.threshold}" + ("; best per prompt" if cfg.keep == "best" else "")) if on.any() else \
        f"no answer scored ({unscored} unscored)"
    if agree["records"]:  # the card's filter table shows the note
        note += f"; agrees with the reference grader on {agree['agree']}/{agree['records']}"
    extra = {int(r): {"judge_score": None if np.isnan(scores[r]) else scores[r],
                      "judge_reasoning": snippet(reasons[r], 160)} for r in np.flatnonzero(alive & ~keep)[:3]}
    info = {"note": note, "judge": cfg.endpoint.name if cfg.endpoint else None, "threshold": cfg.threshold,
            "policy": cfg.keep, "scored": int(on.sum()), "unscored": unscored, "scores": hist,
            "mean_score": round(float(scores[on].mean()), 4) if on.any() else None,
            "agreement_with_grader": agree, "requests": stats}
    return Outcome(keep, info, extra)
