"""`distill rounds`: spend the teacher where the student fails, one round at a time, on the ordinary stages.

Round r is a run dir `runs/<name>/round-r/` (a `RunLayout`; the response cache is the pipeline's, shared):
  select/   which pool prompts the teacher gets this round (`picks.jsonl`: id, function, scores; `prompts.jsonl`:
            the rows collect reads). Round 0: a random (stratified) slice; later rounds: the acquisition
            functions over the last round's probe;
  collect/  `run_collect` on those prompts (the round's $ cap is its own run dir's spend cap);
  curate/   `run_curate`;
  union/    every round's curated data so far (training always sees the union);
  train/    `run_train` from the last round's student (`training: continue`) or from `train.student` (`retrain`);
  probe/    one vLLM server for the new student: `run_eval` through it (its score and failures), and k sampled
            answers on the next round's candidate prompts (their disagreement);
and `runs/<name>/rounds/summary.json` lists per round: teacher requests, $, the student's score with its
interval, and how many prompts each function picked. Each step is a stage (summary.json fingerprint), so a
killed run resumes at the step it was in and a finished round costs nothing to re-run.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.progress import console
from distill.prompts import PromptSource, PromptTable, load_prompts
from distill.rounds.config import RoundsConfig
from distill.rundir import (RunLayout, Stage, file_fingerprint, fingerprint, read_summary, require_stage,
                            write_json, write_jsonl)

SELECT, UNION, PROBE = "select", "union", "probe"


def round_layout(cfg: Any, r: int) -> RunLayout:
    """Round r's run dir; every round shares the pipeline's response cache."""
    return RunLayout(cfg.root / f"round-{r}", cfg.layout.cache)


def _check(cfg: Any) -> RoundsConfig:
    rc: RoundsConfig | None = cfg.rounds
    if rc is None:
        raise ConfigError(f"{cfg.name}: `distill rounds` needs a `rounds:` section (see README, 'Collection in rounds')")
    for section in ("collect", "curate", "train", "eval"):
        if getattr(cfg, section) is None:
            raise ConfigError(f"{cfg.name}: `distill rounds` needs a `{section}:` section")
    names = {m.name: m for m in cfg.eval.models}
    student = names.get(rc.student_model)
    if student is None or student.serve is None:
        raise ConfigError(f"rounds.student_model: {rc.student_model!r} must be an eval.models entry with `serve:` "
                          f"(have: {', '.join(names)})")
    if rc.teacher_model is not None and rc.teacher_model not in names:
        raise ConfigError(f"rounds.teacher_model: {rc.teacher_model!r} is not in eval.models ({', '.join(names)})")
    bench = rc.failure_neighbours.benchmark
    if bench is not None and bench not in [b.name for b in cfg.eval.benchmarks]:
        raise ConfigError(f"rounds.failure_neighbours.benchmark: {bench!r} is not in eval.benchmarks")
    return rc


def picks_per_round(cfg: Any, requests: int) -> int:
    """Prompts a round may pick: its teacher requests over (teachers x samples each)."""
    per_prompt = sum(t.params.n for t in cfg.collect.teachers)
    n = requests // per_prompt
    if n < 1:
        raise ConfigError(f"rounds: {requests} requests per round cannot cover one prompt ({per_prompt} requests "
                          "per prompt: teachers x params.n)")
    return n


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """What the sketches compare: the last user turn (a shared system prompt or k-shot examples would dominate)."""
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    return str(users[-1] if users else "")


class Pool:
    """The prompt pool, loaded once: ids, texts (last user turn), categories for stratifying."""

    def __init__(self, src: PromptSource, stratify_field: str | None):
        self.src = src
        self.table: PromptTable
        self.table, _ = load_prompts(src)
        self.ids: list[str] = self.table["prompt_id"]
        self.texts = [prompt_text(m) for m in self.table["messages"]]
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.categories = None
        if stratify_field is not None:
            meta = [json.loads(m) for m in self.table["metadata"]]
            if not any(stratify_field in m for m in meta):
                raise ConfigError(f"rounds.stratify_field: {stratify_field!r} is in no row of {src.path}")
            self.categories = [str(m.get(stratify_field)) for m in meta]
        self.fp = file_fingerprint(Path(src.path)) if Path(src.path).exists() else fingerprint(src.path)

    def rows(self, indices: list[int]) -> list[dict[str, Any]]:
        """The picked prompts as rows collect reads back (`messages_field`, `id_field`, the source's fields)."""
        out = []
        for i in indices:
            row = self.table[i]
            meta = json.loads(row["metadata"])
            meta.pop("messages", None)
            out.append({**meta, "prompt_id": row["prompt_id"], "messages": row["messages"],
                        "reference": row["reference"]})
        return out


def collected_ids(cfg: Any, r: int) -> list[str]:
    """Prompt ids every round before r picked (from their finished select stages)."""
    out: list[str] = []
    for q in range(r):
        d = round_layout(cfg, q).root / SELECT
        require_stage(d, "rounds-select")
        out += [json.loads(line)["prompt_id"] for line in (d / "picks.jsonl").read_text().splitlines() if line]
    return out


def candidates(pool: Pool, taken: list[str], n: int | None, seed: int, r: int) -> list[int]:
    """Round r's candidate pool indices: a seeded random subset of the prompts not collected yet."""
    taken_set = set(taken)
    left = [i for i, pid in enumerate(pool.ids) if pid not in taken_set]
    if n is None or n >= len(left):
        return left
    return sorted(random.Random(f"{seed}-candidates-{r}").sample(left, n))


# -- select --------------------------------------------------------------------------------------------------------
def _failed_texts(cfg: Any, rc: RoundsConfig, r: int) -> list[str]:
    """Questions of the benchmark items round r's student failed and the teacher solved (when a teacher is
    evaluated), read from round r's probe eval rows."""
    from distill.evaluate import load_eval_rows

    bench = rc.failure_neighbours.benchmark or cfg.eval.benchmarks[0].name
    layout = round_layout(cfg, r)
    student = load_eval_rows(layout.eval_model(rc.student_model), bench)
    solved = None
    if rc.teacher_model is not None:
        teacher = load_eval_rows(round_layout(cfg, 0).eval_model(rc.teacher_model), bench)
        solved = {row["id"] for row in teacher if row["correct"]}
    wrong: dict[str, bool] = {}
    for row in student:  # an item counts as failed when most of its samples are wrong
        wrong.setdefault(row["id"], True)
        wrong[row["id"]] &= not row["correct"]
    texts = {row["id"]: prompt_text(row["prompt"]) for row in student}
    return [texts[i] for i, w in wrong.items() if w and (solved is None or i in solved)]


def _score(cfg: Any, rc: RoundsConfig, pool: Pool, cand: list[int], r: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each configured function's raw score over the candidates (from round r-1's probe)."""
    import numpy as np

    from distill.rounds import acquire

    scores: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for a in rc.acquisition:
        if a.name == "uncertainty":
            probe = round_layout(cfg, r - 1).root / PROBE
            sampled = {row["prompt_id"]: row["answers"] for row in _read_jsonl(probe / "samples.jsonl")}
            missing = [pool.ids[i] for i in cand if pool.ids[i] not in sampled]
            if missing:
                raise DistillError(f"{probe}/samples.jsonl: no samples for {len(missing)} candidates (e.g. "
                                   f"{missing[0]}); re-run with --force")
            scores["uncertainty"] = acquire.disagreement([sampled[pool.ids[i]] for i in cand])
            info["uncertain_candidates"] = int((scores["uncertainty"] > 0).sum())
        else:
            failed = _failed_texts(cfg, rc, r - 1)
            nb = rc.failure_neighbours
            scores["failure_neighbours"] = acquire.failure_similarity(
                [pool.texts[i] for i in cand], failed, ngram=nb.ngram, num_perm=nb.num_perm) if failed \
                else np.zeros(len(cand))
            info["failure_seeds"] = len(failed)
    return scores, info


def run_select(cfg: Any, rc: RoundsConfig, pool: Pool, r: int, force: bool) -> dict[str, Any]:
    """Round r's picks -> round-r/select/{picks,prompts}.jsonl."""
    from distill.rounds import acquire

    layout = round_layout(cfg, r)
    taken = collected_ids(cfg, r)
    prev = [read_summary(round_layout(cfg, r - 1).root / PROBE) or {}] if r else []
    # what decides the picks (not `rounds`: a run extended by more rounds keeps the rounds it has)
    decides = rc.model_dump(mode="json", exclude={"rounds", "usd_per_round", "steps_per_round", "training"})
    fp = fingerprint("rounds-select", decides, pool.fp, r, [p.get("fingerprint") for p in prev], taken)
    stage = Stage("rounds-select", layout.root / SELECT, fp, rc.model_dump(mode="json"), label=f"round {r} select")
    if (done := stage.fresh(force)) is not None:
        return done
    n = picks_per_round(cfg, rc.first_round or rc.requests_per_round if r == 0 else rc.requests_per_round)
    info: dict[str, Any] = {}
    if r == 0:
        idx = acquire.stratified_sample(len(pool.ids), n, categories=pool.categories, seed=rc.seed)
        picked = acquire.Picked(idx, ["random"] * len(idx))
    else:
        cand = candidates(pool, taken, rc.candidates, rc.seed, r)
        scores, info = _score(cfg, rc, pool, cand, r)
        div = rc.diversity
        diversity = {"threshold": div.threshold, "ngram": div.ngram, "num_perm": div.num_perm} if div.enabled else None
        already = [pool.texts[pool.index[p]] for p in taken if p in pool.index]
        local = acquire.pick(list(range(len(cand))), [pool.texts[i] for i in cand], n, scores,
                             {a.name: a.weight for a in rc.acquisition}, seed=rc.seed * 1000 + r,
                             diversity=diversity, already=already)
        picked = acquire.Picked([cand[i] for i in local.indices], local.picked_by, local.scores,
                                local.skipped_near_dups, local.filled_with_near_dups)
        info["candidates"] = len(cand)
    with stage.build() as b:
        write_jsonl(b.out / "picks.jsonl", ({"prompt_id": pool.ids[i], "picked_by": by,
                                             **{k: v[j] for k, v in picked.scores.items()}}
                                            for j, (i, by) in enumerate(zip(picked.indices, picked.picked_by))))
        write_jsonl(b.out / "prompts.jsonl", pool.rows(picked.indices))
        b.summary.update(round=r, picked=len(picked.indices), picked_by=picked.counts(),
                         skipped_near_dups=picked.skipped_near_dups,
                         filled_with_near_dups=picked.filled_with_near_dups, **info, complete=True)
    return b.summary


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# -- collect, curate, union, train ------------------------------------------------------------------------------------
def run_collect_round(cfg: Any, rc: RoundsConfig, r: int, force: bool) -> dict[str, Any]:
    from distill.collect import run_collect

    layout = round_layout(cfg, r)
    src = PromptSource(path=str(layout.root / SELECT / "prompts.jsonl"), messages_field="messages",
                       id_field="prompt_id", reference_field="reference")
    update: dict[str, Any] = {"prompts": src}
    if rc.usd_per_round is not None:
        update["budget_usd"] = rc.usd_per_round
    summary = run_collect(cfg.collect.model_copy(update=update), layout, force=force)
    if not summary.get("complete"):
        raise DistillError(f"{layout.collect}: round {r}'s collection is incomplete ({summary.get('failed')} failed, "
                           f"{summary.get('not_sent')} not sent); re-run `distill rounds` to resume")
    return summary


def run_union(cfg: Any, r: int, force: bool) -> Path:
    """round-r/union/dataset: every round's curated train and validation splits so far, concatenated."""
    import datasets

    from distill.curate import load_curated

    layout = round_layout(cfg, r)
    parts = [round_layout(cfg, q).curate for q in range(r + 1)]
    stage = Stage("rounds-union", layout.root / UNION, fingerprint("union", [file_fingerprint(p / "dataset")
                                                                             for p in parts]),
                  {"rounds": r + 1}, label=f"round {r} union")
    if stage.fresh(force, say=False) is None:
        loaded = [load_curated(p) for p in parts]
        dd = datasets.DatasetDict({split: datasets.concatenate_datasets([d[split] for d in loaded if split in d])
                                   for split in loaded[0]})
        with stage.build() as b:
            dd.save_to_disk(str(b.out / "dataset"), num_shards={k: 1 for k in dd})
            b.summary.update(rows={k: len(v) for k, v in dd.items()}, complete=True)
    return layout.root / UNION / "dataset"


def run_train_round(cfg: Any, rc: RoundsConfig, r: int, dataset: Path, force: bool) -> dict[str, Any]:
    from distill.train import run_train

    update: dict[str, Any] = {"dataset": dataset}  # the union of every round so far, not this round's curate
    if rc.training == "continue" and r > 0:
        update["student"] = str(round_layout(cfg, r - 1).merged)
    if rc.steps_per_round is not None:
        update["max_steps"] = rc.steps_per_round
    return run_train(cfg.train.model_copy(update=update), round_layout(cfg, r), force=force)


# -- probe: the new student's score, failures and uncertainty ---------------------------------------------------------
def _student_entry(cfg: Any, rc: RoundsConfig, r: int) -> Any:
    m = next(x for x in cfg.eval.models if x.name == rc.student_model)
    return m.model_copy(update={"serve": m.serve.model_copy(update={"model": str(round_layout(cfg, r).merged)})})


def _eval_round(cfg: Any, rc: RoundsConfig, r: int, force: bool) -> dict[str, Any]:
    """`run_eval` of round r's student (and, in round 0, of the teacher) into round-r/eval/."""
    from distill.evaluate import run_eval

    names = [rc.student_model] + ([rc.teacher_model] if r == 0 and rc.teacher_model else [])
    models = [_student_entry(cfg, rc, r) if m.name == rc.student_model else m for m in cfg.eval.models
              if m.name in names]
    ecfg = cfg.eval.model_copy(update={"models": models})
    return run_eval(ecfg, round_layout(cfg, r), pipeline=f"{cfg.name}-round-{r}", force=force, models=names)


def sample_answers(cfg: Any, rc: RoundsConfig, r: int, prompts: list[list[dict[str, Any]]]) -> list[list[str | None]]:
    """k sampled answers of round r's student per prompt, through vLLM and the response cache (keyed by the
    model's files, so a resumed probe asks nothing twice); each read by `distill.answers.read_answer`."""
    from distill.answers import read_answer
    from distill.llm.cache import ResponseCache
    from distill.llm.endpoint import EndpointConfig, SamplingParams
    from distill.llm.request import ChatRequest, RequestModel
    from distill.llm.runner import ChatRunner
    from distill.serve import build_server

    layout, m, u = round_layout(cfg, r), _student_entry(cfg, rc, r), rc.uncertainty
    server = build_server(m.serve, layout.root, served_name=m.name, port=0, host="127.0.0.1",
                          log_path=layout.root / PROBE / f".{m.name}.vllm.log")
    ep = EndpointConfig(name=f"{m.name}-probe", base_url=server.base_url, model=server.request_model,
                        params=SamplingParams(n=u.k, temperature=u.temperature, max_tokens=u.max_tokens),
                        concurrency=m.concurrency, timeout_s=m.timeout_s)
    cache = ResponseCache(layout.cache)
    out: list[list[str | None]] = [[None] * u.k for _ in prompts]
    try:
        runner = ChatRunner(RequestModel(ep, identity="vllm://" + file_fingerprint(layout.merged)), cache)
        keys = [k for msgs in prompts for k in runner.model.sample_keys(msgs, list(range(u.k)))]
        if len(cache.has_many(keys)) < len(keys):
            console.print(f"round {r} probe: starting vLLM for {layout.merged} to sample {u.k} answers x "
                          f"{len(prompts)} prompts ...")
            server.log_path.parent.mkdir(parents=True, exist_ok=True)
            server.start_and_wait()

        def on_result(req: ChatRequest, records: Any, error: str | None, from_cache: bool) -> None:
            for rec in records or []:
                out[req.tag][rec["sample_index"]] = read_answer(rec["completion"], u.answer_kind).extracted

        reqs = [ChatRequest(messages=msgs, samples=list(range(u.k)), tag=i) for i, msgs in enumerate(prompts)]
        asyncio.run(runner.run(reqs, on_result))
    finally:
        server.stop()
        cache.close()
    return out


def run_probe(cfg: Any, rc: RoundsConfig, pool: Pool, r: int, force: bool) -> dict[str, Any]:
    """round-r/probe: the student's eval, and (unless this is the last round) the next round's candidates'
    sampled answers (`samples.jsonl`)."""
    layout = round_layout(cfg, r)
    train = require_stage(layout.train, "train")
    need_samples = r + 1 < rc.rounds and any(a.name == "uncertainty" for a in rc.acquisition)
    taken = collected_ids(cfg, r + 1)
    fp = fingerprint("rounds-probe", train.get("fingerprint"), rc.uncertainty.model_dump(mode="json"), rc.candidates,
                     rc.seed, need_samples, len(taken), cfg.eval.model_dump(mode="json"))
    stage = Stage("rounds-probe", layout.root / PROBE, fp, rc.uncertainty.model_dump(mode="json"),
                  label=f"round {r} probe")
    if (done := stage.fresh(force)) is not None:
        return done
    ev = _eval_round(cfg, rc, r, force)
    rows: list[dict[str, Any]] = []
    if need_samples:
        cand = candidates(pool, taken, rc.candidates, rc.seed, r + 1)
        answers = sample_answers(cfg, rc, r, [pool.table[i]["messages"] for i in cand])
        rows = [{"prompt_id": pool.ids[i], "answers": a} for i, a in zip(cand, answers)]
    with stage.build() as b:
        write_jsonl(b.out / "samples.jsonl", rows)
        b.summary.update(round=r, sampled_prompts=len(rows), student_scores=ev["models"][rc.student_model]["scores"],
                         complete=True)
    return b.summary


# -- the rounds -----------------------------------------------------------------------------------------------------
def _round_row(cfg: Any, rc: RoundsConfig, r: int, sel: dict[str, Any], col: dict[str, Any]) -> dict[str, Any]:
    layout = round_layout(cfg, r)
    ev = read_summary(layout.eval_model(rc.student_model)) or {}
    scores = {b: {"score": v.get("score"), "stderr": v.get("stderr"),
                  "ci95": None if v.get("stderr") is None else [v["score"] - 1.96 * v["stderr"],
                                                                v["score"] + 1.96 * v["stderr"]]}
              for b, v in (ev.get("benchmarks") or {}).items()}
    return {"round": r, "dir": str(layout.root), "teacher_requests": col.get("requests_total"),
            "teacher_requests_sent": col.get("completed"), "from_cache": col.get("from_cache"),
            "cost_usd": col.get("cost_usd"), "records": col.get("records"), "picked": sel.get("picked"),
            "picked_by": sel.get("picked_by"), "picks": str(layout.root / SELECT / "picks.jsonl"),
            "skipped_near_dups": sel.get("skipped_near_dups"), "student": scores}


def run_rounds(cfg: Any, *, force: bool = False) -> dict[str, Any]:
    """Every round in order (each step reused when fresh); returns and writes runs/<name>/rounds/summary.json."""
    from distill.curate import run_curate

    rc = _check(cfg)
    pool = Pool(rc.pool or cfg.collect.prompts, rc.stratify_field)
    console.print(f"rounds: pool of {len(pool.ids):,} prompts ({pool.src.path}), {rc.rounds} rounds of "
                  f"{rc.requests_per_round} teacher requests, {cfg.root}/round-N/")
    rows = []
    for r in range(rc.rounds):
        console.rule(f"[bold]round {r}")
        sel = run_select(cfg, rc, pool, r, force)
        col = run_collect_round(cfg, rc, r, force)
        run_curate(cfg.curate.model_copy(update={"input": None}), round_layout(cfg, r), force=force,
                   pipeline=f"{cfg.name}-round-{r}")
        run_train_round(cfg, rc, r, run_union(cfg, r, force), force)
        run_probe(cfg, rc, pool, r, force)
        rows.append(_round_row(cfg, rc, r, sel, col))
    summary = {"stage": "rounds", "pipeline": cfg.name, "config": rc.model_dump(mode="json"), "rounds": rows,
               "teacher_requests": sum(x["teacher_requests"] or 0 for x in rows),
               "cost_usd": round(sum(x["cost_usd"] or 0.0 for x in rows), 6), "complete": True}
    (cfg.root / "rounds").mkdir(parents=True, exist_ok=True)
    write_json(cfg.root / "rounds" / "summary.json", summary)
    print_rounds(summary)
    return summary


def print_rounds(summary: dict[str, Any]) -> None:
    """The learning curve: per round the teacher requests and $ so far, who picked, the student's score +- 95%."""
    print(f"{'round':>5} {'requests':>9} {'$ so far':>9}  {'picked by':<40} student (95% interval)")
    total, usd = 0, 0.0
    for x in summary["rounds"]:
        total += x["teacher_requests"] or 0
        usd += x["cost_usd"] or 0.0
        score = "; ".join(f"{b} {100 * v['score']:.1f} ± {196 * (v['stderr'] or 0):.1f}"
                          for b, v in x["student"].items() if v["score"] is not None)
        by = ", ".join(f"{k} {v}" for k, v in (x["picked_by"] or {}).items())
        print(f"{x['round']:>5} {total:>9} {usd:>9.4f}  {by:<40} {score}")
