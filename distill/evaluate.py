"""eval: every configured model x every benchmark -> per-item rows + aggregates, through distill.llm.

Teacher APIs and students behind vLLM are queried by the same `ChatRunner` with the pipeline's response cache,
so the comparison is fair and a re-run is free. A model given as `serve: {...}` gets its own vLLM server for the
duration of its benchmarks (not started at all when every answer is already cached).

Output: runs/<name>/eval/<model>/<benchmark>.jsonl (one row per item x sample) and summary.json (scores with
standard errors, per subject, pass@k, tokens, latency, cost per 1M output tokens); runs/<name>/eval/summary.json
indexes the models.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.answers import GRADER_VERSION
from distill.manifest import write_manifest
from distill.benchmarks import Benchmark, Item, get_benchmark, mean_stderr, pass_at_k
from distill.errors import ConfigError, DistillError
from distill.hub import resolve_model
from distill.llm import ChatRequest, ChatRunner, EndpointConfig, request_model, ResponseCache
from distill.llm.budget import Budget
from distill.llm.endpoint import SamplingParams
from distill.progress import console, make_progress
from distill.rundir import (RunLayout, Stage, base_summary, file_fingerprint, fingerprint, is_fresh, read_summary,
                            write_json, write_jsonl)
from distill.eval_config import EvalBenchmark, EvalConfig, EvalModel
from distill.serve import VLLMServer, build_server

@dataclass
class LoadedBenchmark:
    cfg: EvalBenchmark
    bench: Benchmark
    items: list[Item]
    messages: list[list[dict[str, str]]]
    source_fp: str
    source_info: dict[str, Any] = field(default_factory=dict)  # hub name + revision, or file + sha256 (manifest)
    params: SamplingParams | None = None  # exact sampling params to send (a replay); None: from the model config


# -- loading ------------------------------------------------------------------------------------------------------
def load_benchmark(b: EvalBenchmark, run_root: Path, limit: int | None = None) -> LoadedBenchmark:
    """One benchmark's items and the exact messages each is asked with."""
    kind = b.kind or b.name
    bench = get_benchmark(b.name, kind=b.kind, **b.options)
    source = b.source
    if kind == "agreement" and source is None:
        source = str(RunLayout(run_root).dataset)
    items = bench.load(source, split=b.split, limit=b.limit or limit)
    msgs = [bench.messages(it, b.k_shot) for it in items]
    src_fp = file_fingerprint(Path(source)) if source and Path(source).exists() else str(source)
    return LoadedBenchmark(b, bench, items, msgs, src_fp, dict(getattr(bench, "source_info", None) or {}))


def load_benchmarks(ecfg: EvalConfig, run_root: Path) -> list[LoadedBenchmark]:
    return [load_benchmark(b, run_root, ecfg.limit) for b in ecfg.benchmarks]


def _endpoint_for(m: EvalModel, lb: LoadedBenchmark, ecfg: EvalConfig, base_url: str | None,
                  model_id: str | None) -> EndpointConfig:
    """The model's endpoint with the benchmark's completion budget and the eval temperature default (a replay
    sends exactly the recorded params instead)."""
    params = m.params.model_copy()
    if lb.params is not None:
        params = lb.params.model_copy()
    elif lb.cfg.max_tokens is not None:
        params = params.model_copy(update={"max_tokens": lb.cfg.max_tokens, "max_completion_tokens": None})
    elif params.max_output_tokens is None:
        params = params.model_copy(update={"max_tokens": lb.bench.max_tokens})
    if params.temperature is None:
        params = params.model_copy(update={"temperature": ecfg.temperature})
    data = m.model_dump(exclude={"role", "serve", "gpu_usd_per_hour", "params", "model", "base_url", "api_key"})
    return EndpointConfig(**data, params=params, api_key=m.api_key, model=model_id or m.model or m.name,
                          base_url=base_url or m.base_url)


def _served_identity(m: EvalModel, run_root: Path) -> tuple[str, list[Any]]:
    assert m.serve is not None
    model = m.serve.model or str(RunLayout(run_root).merged)
    parts: list[Any] = [model, file_fingerprint(Path(model)) if Path(model).exists()
                        else resolve_model(model, m.serve.revision, field="eval.models[].serve.model").identity]
    if m.serve.adapter:
        parts += [m.serve.adapter, file_fingerprint(Path(m.serve.adapter))]
    return "vllm://" + fingerprint(*parts), parts


# -- one model ----------------------------------------------------------------------------------------------------
def _model_config_json(m: EvalModel) -> dict[str, Any]:
    return m.model_dump(mode="json", exclude={"api_key"})


def _run_requests(runners: list[tuple[LoadedBenchmark, ChatRunner]], progress_on: bool, model_name: str
                  ) -> tuple[dict[tuple[str, int], list[dict[str, Any]]], dict[tuple[str, int], str], float]:
    """Send every benchmark's prompts (benchmarks one after another, so rate limits hold); returns records by
    (benchmark, item index), errors, and the seconds spent generating uncached answers."""
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    errors: dict[tuple[str, int], str] = {}
    gen_seconds = 0.0

    async def go() -> None:
        nonlocal gen_seconds
        with make_progress(progress_on) as progress:
            for lb, runner in runners:
                n = runner.ep.params.n
                task = progress.add_task(f"eval {model_name} {lb.cfg.name}", total=len(lb.items) * n, stats="")

                def on_result(req: ChatRequest, records: Any, error: str | None, from_cache: bool,
                              lb: LoadedBenchmark = lb, task: Any = task) -> None:
                    key = (lb.cfg.name, req.tag)
                    if error is not None:
                        errors[key] = error
                    else:
                        results.setdefault(key, []).extend(records)
                    progress.advance(task, len(req.samples))

                reqs = [ChatRequest(messages=msgs, samples=list(range(n)), tag=i) for i, msgs in enumerate(lb.messages)]
                before = runner.stats.completed
                t0 = time.monotonic()
                await runner.run(reqs, on_result)
                if runner.stats.completed > before:
                    gen_seconds += time.monotonic() - t0

    asyncio.run(go())
    return results, errors, gen_seconds


def _score_all(lb: LoadedBenchmark, results: dict[tuple[str, int], list[dict[str, Any]]],
               errors: dict[tuple[str, int], str], workers: int) -> list[dict[str, Any]]:
    """Per-item x sample rows, scored in a thread pool (HumanEval runs each in the sandbox)."""
    jobs: list[tuple[int, dict[str, Any] | None]] = []
    for i in range(len(lb.items)):
        recs = sorted(results.get((lb.cfg.name, i), []), key=lambda r: r["sample_index"])
        jobs += [(i, r) for r in recs] if recs else [(i, None)]

    def one(job: tuple[int, dict[str, Any] | None]) -> dict[str, Any]:
        i, rec = job
        item = lb.items[i]
        row: dict[str, Any] = {
            "id": item.id, "benchmark": lb.cfg.name, "subject": item.subject,
            "sample_index": rec["sample_index"] if rec else 0, "prompt": lb.messages[i],
            "output": rec["completion"] if rec else None, "reasoning": rec.get("reasoning") if rec else None,
            "reference": item.reference, "extracted": None, "correct": False, "detail": None,
            "prompt_tokens": rec["prompt_tokens"] if rec else 0,
            "completion_tokens": rec["completion_tokens"] if rec else 0,
            "latency_s": rec["latency_s"] if rec else None, "finish_reason": rec.get("finish_reason") if rec else None,
            "cost_usd": rec.get("cost_usd", 0.0) if rec else 0.0, "error": None,
            "cost_source": rec.get("cost_source", "price") if rec else None,  # "provider": its usage.cost
            # provenance for the manifest: the model id the API answered with, and when
            "response_model": rec.get("model") if rec else None, "answered_at": rec.get("created_at") if rec else None,
        }
        if rec is None:
            row["error"] = errors.get((lb.cfg.name, i), "no answer (run stopped before this item)")
            return row
        # a trace in a field is already apart; an inline <think> block is the grader's to cut (an unclosed one is
        # graded `unclosed_think`, not read as an answer)
        s = lb.bench.score(item, rec["completion"] or "", finish_reason=rec.get("finish_reason"))
        row.update(extracted=s.extracted, correct=bool(s.correct), detail=s.detail)
        return row

    with ThreadPoolExecutor(max_workers=workers or (os.cpu_count() or 2)) as pool:
        return list(pool.map(one, jobs))


def aggregate(rows: list[dict[str, Any]], n_samples: int, metric: str) -> dict[str, Any]:
    """Score (mean over items of each item's share of correct samples) +- standard error, per subject, pass@k."""
    by_item: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_item.setdefault(r["id"], []).append(r)
    per_item = [sum(r["correct"] for r in rs) / max(len(rs), 1) for rs in by_item.values()]
    score, se = mean_stderr(per_item)
    out: dict[str, Any] = {
        "metric": metric, "score": score, "stderr": se, "items": len(by_item), "samples": len(rows),
        "correct": sum(r["correct"] for r in rows),
        "failed": sum(r["error"] is not None for r in rows),
        "truncated": sum(r.get("finish_reason") == "length" for r in rows),  # cut off by max_tokens: graded wrong
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "mean_completion_tokens": (sum(r["completion_tokens"] for r in rows) / len(rows)) if rows else None,
        "cost_usd": round(sum(r["cost_usd"] or 0.0 for r in rows), 6),
        "cost_from_provider": sum(r.get("cost_source") == "provider" for r in rows),
    }
    lat = sorted(r["latency_s"] for r in rows if r["latency_s"] is not None)
    out["latency_mean_s"] = round(sum(lat) / len(lat), 4) if lat else None
    out["latency_p50_s"] = lat[len(lat) // 2] if lat else None
    details = [r["detail"] for r in rows if r["detail"]]
    if details:
        out["details"] = {d: details.count(d) for d in sorted(set(details))}
    if n_samples > 1:
        ks = [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= n_samples]
        out["pass_at_k"] = {}
        for k in ks:
            vals = [pass_at_k(len(rs), sum(r["correct"] for r in rs), k) for rs in by_item.values() if len(rs) >= k]
            m, s = mean_stderr(vals)
            out["pass_at_k"][f"pass@{k}"] = {"score": m, "stderr": s, "items": len(vals)}
    subjects = sorted({r["subject"] for r in rows if r["subject"]})
    if subjects:
        per_subject = {}
        for subj in subjects:
            vals = [sum(r["correct"] for r in rs) / len(rs) for rs in by_item.values() if rs[0]["subject"] == subj]
            m, s = mean_stderr(vals)
            per_subject[subj] = {"score": m, "stderr": s, "items": len(vals)}
        out["per_subject"] = per_subject
        macro = [v["score"] for v in per_subject.values() if v["score"] is not None]
        out["macro"] = sum(macro) / len(macro) if macro else None
        out["micro"] = score
    return out


def _blended(prompt: int, completion: int, usd_prompt: float | None, usd_completion: float | None) -> float | None:
    """$ per 1M tokens over every token the eval processed (prompt + completion) at this model's own mix: the one
    figure comparable between an API (billed per token, in and out) and a served model (billed per GPU hour)."""
    if usd_prompt is None or usd_completion is None or prompt + completion <= 0:
        return None
    return round((prompt * usd_prompt + completion * usd_completion) / (prompt + completion), 6)


def _cost(m: EvalModel, runners: list[tuple[LoadedBenchmark, ChatRunner]], gen_seconds: float,
          previous: dict[str, Any] | None, mix: tuple[int, int]) -> dict[str, Any]:
    """$ per 1M tokens: the provider's price for an API; for a served model, GPU $/hour over the throughput
    measured while eval generated. `mix`: (prompt, completion) tokens of the whole eval of this model.

    `usd_per_1m_tokens` is over prompt + completion tokens for every row (a served model's generation time is
    prefill + decode, so its $ is per token processed, not per token written: MMLU's ~650 prompt tokens per
    ~5 written would inflate a per-output figure ~100x); `usd_per_1m_output_tokens` stays for reference."""
    new_prompt = sum(r.stats.prompt_tokens for _, r in runners)
    new_tokens = sum(r.stats.completion_tokens for _, r in runners)
    cost: dict[str, Any] = {"new_prompt_tokens": new_prompt, "new_completion_tokens": new_tokens,
                            "generation_seconds": round(gen_seconds, 3)}
    measured = bool(new_tokens and gen_seconds > 0)
    tph = new_tokens / gen_seconds * 3600 if measured else None
    all_tph = (new_prompt + new_tokens) / gen_seconds * 3600 if measured else None
    source = "measured"
    if tph is None and previous:  # every answer was cached: keep the last measurement of this model
        prev = previous.get("cost") or {}
        tph, all_tph = prev.get("output_tokens_per_hour"), prev.get("tokens_per_hour")
        source = "previous run" if tph else "none"
    cost["output_tokens_per_hour"] = round(tph, 1) if tph else None
    cost["tokens_per_hour"] = round(all_tph, 1) if all_tph else None
    if m.gpu_usd_per_hour is not None:
        usd = m.gpu_usd_per_hour
        cost.update(basis="gpu", gpu_usd_per_hour=usd, throughput_source=source,
                    usd_per_1m_output_tokens=(usd / tph * 1e6) if tph else None,
                    usd_per_1m_tokens=round(usd / all_tph * 1e6, 6) if all_tph else None)
        if not tph:
            cost["note"] = "no uncached answers were generated, so throughput could not be measured (use --force " \
                           "with a fresh cache)"
        return cost
    price = runners[0][1].price if runners else None
    if price is not None and price.known:  # config, the provider's list or the built-in table: cost.price says
        cost.update(basis="per token", usd_per_1m_output_tokens=price.completion,
                    usd_per_1m_prompt_tokens=price.prompt,
                    usd_per_1m_tokens=_blended(mix[0], mix[1], price.prompt, price.completion))
    else:
        cost.update(basis="unknown", usd_per_1m_output_tokens=None, usd_per_1m_tokens=None,
                    note="no price known and no gpu_usd_per_hour set")
    return cost


def choose_models(ecfg: EvalConfig, models: list[str] | None) -> list[EvalModel]:
    """The eval models named (all when none), or one error naming the unknown ones."""
    if not models:
        return list(ecfg.models)
    unknown = sorted(set(models) - {m.name for m in ecfg.models})
    if unknown:
        raise ConfigError(f"eval.models: no model named {', '.join(unknown)} (have: "
                          f"{', '.join(m.name for m in ecfg.models)})")
    return [m for m in ecfg.models if m.name in models]


def priced_model(m: EvalModel) -> tuple[EvalModel, dict[str, Any]]:
    """The model with the price it is billed at (config, else the provider's list, else the table) and where that
    price came from; a model eval serves itself is priced by GPU time instead."""
    if m.serve is not None:
        return m, {"source": "gpu", "gpu_usd_per_hour": m.gpu_usd_per_hour}
    from distill.llm.provider_prices import resolve_price

    return resolve_price(m, field="eval.models")


def price_models(models: list[EvalModel], run_root: Path) -> dict[str, tuple[EvalModel, dict[str, Any]]]:
    """Every model priced and every served model's weights found, all before the first request: a typo in the
    last model's id, or a student path that does not exist, is one error before anything is paid (checked model
    by model inside the loop, it came after the earlier models had been sent)."""
    out = {}
    for m in models:
        if m.serve is not None:
            _served_identity(m, run_root)  # the weights exist (a local dir, or a hub id that resolves)
        out[m.name] = priced_model(m)
    return out


def make_runners(m: EvalModel, loaded: list[LoadedBenchmark], ecfg: EvalConfig, cache: ResponseCache,
                 budget: Budget | None, *, base_url: str | None = None, model_id: str | None = None,
                 identity: str | None = None) -> list[tuple[LoadedBenchmark, ChatRunner]]:
    """One runner per benchmark for one (priced) model: what eval sends, and what its dry run pilots through,
    so that the pilot's answers are the run's cache hits."""
    out = []
    for lb in loaded:
        ep = _endpoint_for(m, lb, ecfg, base_url, model_id)
        # a model served here: keyed by its files, not its random port, and not paid per token
        r = ChatRunner(request_model(ep, identity=identity), cache, budget=None if identity else budget)
        out.append((lb, r))
    return out


def eval_model(m: EvalModel, loaded: list[LoadedBenchmark], ecfg: EvalConfig, run_root: Path, cache: ResponseCache,
               budget: Budget, stage_dir: Path, fp: str, previous: dict[str, Any] | None,
               priced: tuple[EvalModel, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Ask one model every loaded benchmark (serving it first if it is local), score, write stage_dir.

    `priced`: the model with its price and the price's record, as `price_models` found them up front."""
    t_start = time.monotonic()
    server: VLLMServer | None = None
    identity = None
    config_json = _model_config_json(m)  # as configured (the price looked up below is not part of it)
    m, price_record = priced or priced_model(m)
    if m.serve is not None:
        identity, _ = _served_identity(m, run_root)
        server = build_server(m.serve, run_root, served_name=m.name, port=0, host="127.0.0.1",
                              log_path=RunLayout(run_root).eval / f".{m.name}.vllm.log")

    def runners_at(base_url: str | None, model_id: str | None) -> list[tuple[LoadedBenchmark, ChatRunner]]:
        return make_runners(m, loaded, ecfg, cache, budget, base_url=base_url, model_id=model_id, identity=identity)

    served_info: dict[str, Any] | None = None
    if server is not None:
        runners = runners_at(server.base_url, server.request_model)
        keys = [k for lb, r in runners for msgs in lb.messages for k in r.model.sample_keys(msgs, list(range(r.ep.params.n)))]
        missing = len(keys) - len(cache.has_many(keys))
        served_info = {"model": server.model, "adapter": m.serve.adapter if m.serve else None,
                       "resolved": server.resolved,
                       "started": missing > 0, "base_url": server.base_url if missing else None}
        if missing:
            console.print(f"eval {m.name}: starting vLLM for {server.model} ({missing} answers not cached) ...")
            t0 = time.monotonic()
            server.start_and_wait()
            served_info["startup_s"] = round(time.monotonic() - t0, 1)
    else:
        runners = runners_at(None, None)
    try:
        results, errors, gen_seconds = _run_requests(runners, ecfg.progress, m.name)
    finally:
        if server is not None:
            server.stop()
    benches: dict[str, Any] = {}
    with Stage("eval", stage_dir, fp, config_json).build() as b:
        for lb, runner in runners:
            rows = _score_all(lb, results, errors, ecfg.scoring_workers)
            write_jsonl(b.out / f"{lb.cfg.name}.jsonl", rows)
            agg = aggregate(rows, runner.ep.params.n, lb.bench.metric)
            agg.update(benchmark=lb.bench.describe(), k_shot=lb.cfg.k_shot if lb.cfg.k_shot is not None
                       else lb.bench.k_shot, max_tokens=runner.ep.params.max_output_tokens,
                       temperature=runner.ep.params.temperature, n=runner.ep.params.n,
                       sampling={**runner.ep.params.request_kwargs(), "n": runner.ep.params.n},
                       requests=runner.stats.summary())
            benches[lb.cfg.name] = agg
        mix = (sum(v["prompt_tokens"] for v in benches.values()), sum(v["completion_tokens"] for v in benches.values()))
        by_provider = sum(v["cost_from_provider"] for v in benches.values())
        answered = sum(v["samples"] - v["failed"] for v in benches.values())
        b.summary.update(
            model=m.name, role=m.role, endpoint_model=runners[0][1].ep.model if runners else m.model,
            served=served_info, benchmarks=benches, grader_version=GRADER_VERSION,
            cost={**_cost(m, runners, gen_seconds, previous, mix), "price": price_record,
                  # what eval_cost_usd (and the cap) counted: the provider's own charge (OpenRouter's usage.cost)
                  # for these answers, tokens x price for the rest
                  "charged": ("provider usage.cost" if by_provider and by_provider == answered else
                              f"provider usage.cost for {by_provider} of {answered} answers, else tokens x price"
                              if by_provider else "tokens x price")},
            eval_cost_usd=round(sum(r.stats.cost_usd for _, r in runners), 6),
            from_cache=sum(r.stats.from_cache for _, r in runners),
            completed=sum(r.stats.completed for _, r in runners),
            failed=sum(r.stats.failed + r.stats.not_sent for _, r in runners),
            complete=all(r.stats.failed == 0 and r.stats.not_sent == 0 for _, r in runners),
            wall_time_s=round(time.monotonic() - t_start, 3),
        )
    return b.summary


# -- the stage ----------------------------------------------------------------------------------------------------
def model_fingerprint(ecfg: EvalConfig, m: EvalModel, loaded: list[LoadedBenchmark], run_root: Path) -> str:
    """What decides whether eval/<model>/ is up to date: the model, the benchmarks, their files, served weights."""
    served_fp = _served_identity(m, run_root)[1] if m.serve is not None else None
    return fingerprint(_model_config_json(m), [b.model_dump(mode="json") for b in ecfg.benchmarks], ecfg.limit,
                       ecfg.temperature, [lb.source_fp for lb in loaded], served_fp)


def eval_is_fresh(ecfg: EvalConfig, layout: RunLayout, model: str, *, limit: int | None = None) -> bool:
    """True when `run_eval` would skip this model (e.g. to know whether a teacher server must be started)."""
    if limit is not None:
        ecfg = ecfg.model_copy(update={"limit": limit})
    m = next((x for x in ecfg.models if x.name == model), None)
    if m is None:
        raise ConfigError(f"eval.models: no model named {model}")
    fp = model_fingerprint(ecfg, m, load_benchmarks(ecfg, layout.root), layout.root)
    return is_fresh(layout.eval_model(model), fp)


def run_eval(ecfg: EvalConfig, layout: RunLayout, *, pipeline: str | None = None, force: bool = False,
             models: list[str] | None = None, limit: int | None = None) -> dict[str, Any]:
    """Score every model (or those named in `models`) on every benchmark; returns the stage index summary.

    `limit` overrides `eval.limit`; `pipeline` names the run in the manifest (default: the run dir's name).
    """
    if limit is not None:
        ecfg = ecfg.model_copy(update={"limit": limit})
    run_root = layout.root
    chosen = choose_models(ecfg, models)
    t_start = time.monotonic()
    loaded = load_benchmarks(ecfg, run_root)
    # everything that can fail on a config mistake, for every model, before the first request is sent
    stages = {m.name: Stage("eval", layout.eval_model(m.name), model_fingerprint(ecfg, m, loaded, run_root),
                            _model_config_json(m), label=f"eval {m.name}") for m in chosen}
    to_run = [m for m in chosen if force or not is_fresh(stages[m.name].dir, stages[m.name].fp)]
    priced = price_models(to_run, run_root)
    bench_cfg = [b.model_dump(mode="json") for b in ecfg.benchmarks]
    eval_dir = layout.eval
    budget = Budget.open(run_root, "eval", ecfg.budget_usd)  # the run dir's ledger: the cap counts every run
    index: dict[str, Any] = {}
    prices: dict[str, Any] = {}
    cache = ResponseCache(layout.cache)
    try:
        for m in chosen:
            stage = stages[m.name]
            previous = read_summary(stage.dir)
            summary = stage.fresh(force)
            if summary is None:
                summary = eval_model(m, loaded, ecfg, run_root, cache, budget, stage.dir, stage.fp, previous,
                                     priced.get(m.name))
            if (summary.get("cost") or {}).get("price") is not None:
                prices[m.name] = summary["cost"]["price"]
            index[m.name] = {"role": summary["role"], "dir": str(stage.dir), "complete": summary.get("complete"),
                             "scores": {b: v["score"] for b, v in summary["benchmarks"].items()},
                             "usd_per_1m_output_tokens": (summary.get("cost") or {}).get("usd_per_1m_output_tokens"),
                             "usd_per_1m_tokens": (summary.get("cost") or {}).get("usd_per_1m_tokens")}
    finally:
        budget.close()
        cache.close()
    all_index = {**((read_summary(eval_dir) or {}).get("models") or {}), **index}
    top = base_summary("eval", fingerprint(sorted(all_index)), {"benchmarks": bench_cfg, "limit": ecfg.limit})
    top.update(models=all_index, complete=all(v.get("complete") for v in all_index.values()), spend=budget.summary(),
               wall_time_s=round(time.monotonic() - t_start, 3))
    eval_dir.mkdir(parents=True, exist_ok=True)
    if prices:
        from distill.llm.provider_prices import record_prices

        record_prices(layout.prices, "eval", prices, unchanged=set(prices) - set(priced))
    write_json(eval_dir / "summary.json", top)
    write_manifest(eval_dir, loaded, pipeline or run_root.name)
    return top


def load_eval_rows(model_dir: Path, benchmark: str) -> list[dict[str, Any]]:
    """The per-item rows one model wrote for one benchmark."""
    f = Path(model_dir) / f"{benchmark}.jsonl"
    if not f.is_file():
        raise DistillError(f"{f}: no eval rows (run `distill eval` first)")
    return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
