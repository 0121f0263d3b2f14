"""`distill eval --dry-run`: what an eval will send and cost, per model x benchmark, before any paid request but
a small pilot.

The same machinery as `collect --dry-run` (`collect.estimate`: TokenCounter, pilot spacing, and the one interval
rule, `total_interval`), on eval's own requests: the runners `evaluate.make_runners` builds, so the pilot's answers
are the real run's cache hits and its spend goes to eval's ledger and `budget_usd`. low/high bound the *total* the
run will spend: a prediction interval for the sum of the remaining answers (the pilot mean's uncertainty plus the
spread of the answers themselves).

Prompt tokens: exact where a tokenizer is known (tiktoken for OpenAI models, a served model's own files, or
`eval.estimate.tokenizers`), else chars/4; either way the pilot's `usage.prompt_tokens` (the provider's own count)
corrects the count by the ratio it shows, and the true upper bound the spend cap reserves (UTF-8 bytes + template
overhead, `llm.budget.prompt_token_bound`) caps the high end. A model eval serves itself costs GPU time: its $ is
GPU $/hour x the hours its answers take at the throughput its last run measured (none measured: unknown).
Output: runs/<name>/eval-estimate.json, and a table on the terminal.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from pathlib import Path
from typing import Any

from distill.collect.estimate import pilot_indices, t975, total_interval
from distill.tokens import TokenCounter
from distill.eval_config import EvalConfig, EvalModel
from distill.llm import ChatRequest, ChatRunner, ResponseCache
from distill.llm.budget import Budget, prompt_token_bound
from distill.progress import console
from distill.rundir import RunLayout, read_summary, write_json

def _tokenizer_for(m: EvalModel, ecfg: EvalConfig, run_root: Path) -> str | None:
    if m.name in ecfg.estimate.tokenizers:
        return ecfg.estimate.tokenizers[m.name]
    if m.serve is not None:  # the served model's own files count its prompts exactly, chat template included
        model = m.serve.model or str(RunLayout(run_root).merged)
        return model if (Path(model) / "tokenizer_config.json").is_file() else None
    return None


def _pilot(runner: ChatRunner, lb: Any, rows: list[int], counted: dict[int, int]) -> dict[str, Any]:
    """Send the pilot requests (normal runner: cached, budgeted); per request the provider's prompt count over
    ours, per sample the completion tokens, and the latencies."""
    n = runner.ep.params.n
    got: dict[int, list[dict[str, Any]]] = {}
    reqs = [ChatRequest(lb.messages[i], list(range(n)), i) for i in rows]
    stats = asyncio.run(runner.run(reqs, lambda req, recs, err, cached: got.setdefault(req.tag, []).extend(recs or [])))
    ratios = [recs[0]["prompt_tokens"] / counted[i] for i, recs in got.items() if recs and counted[i]]
    return {"completion": [float(r["completion_tokens"]) for recs in got.values() for r in recs],
            "ratios": ratios, "prompt": sum(recs[0]["prompt_tokens"] for recs in got.values() if recs),
            "answered": {i for i, recs in got.items() if recs},
            "cost": stats.cost_usd, "latencies": list(stats.latencies),
            "errors": dict(stats.errors) | ({"not sent": stats.not_sent, "stopped": stats.stopped}
                                            if stats.not_sent else {})}


def _cached_observations(runner: ChatRunner, lb: Any, counter: TokenCounter, items: list[int]) -> dict[str, Any]:
    """What answers already in the cache (an earlier pilot or run) say, for free: completion tokens per sample
    and the provider's prompt count over ours."""
    model, n = runner.model, runner.ep.params.n
    keys = {i: model.sample_keys(lb.messages[i], list(range(n))) for i in items}
    recs = runner.cache.get_many([k for ks in keys.values() for k in ks]) if items else {}
    comp: list[float] = []
    ratios: list[float] = []
    latencies: list[float] = []
    for i, ks in keys.items():
        got = [recs[k] for k in ks if k in recs]
        if not got:
            continue
        comp += [float(r.get("completion_tokens") or 0) for r in got]
        if got[0].get("latency_s") is not None:  # one request carried all its samples: one latency
            latencies.append(float(got[0]["latency_s"]))
        mine = counter.count(model.full_messages(lb.messages[i]))
        if mine and got[0].get("prompt_tokens"):
            ratios.append(got[0]["prompt_tokens"] / mine)
    return {"completion": comp, "ratios": ratios, "latencies": latencies}


def estimate_benchmark(m: EvalModel, lb: Any, runner: ChatRunner, counter: TokenCounter, cache: ResponseCache,
                       pilot_k: int, previous: dict[str, Any] | None) -> dict[str, Any]:
    """One model x benchmark: items, requests, samples, prompt/completion tokens and $ (low/expected/high)."""
    model, n = runner.model, runner.ep.params.n
    max_out = model.output_bound
    uncached: list[int] = []
    answered: list[int] = []  # every sample already in the cache: free observations, a pilot already paid
    cached = 0
    for i, msgs in enumerate(lb.messages):
        keys = model.sample_keys(msgs, list(range(n)))
        hit = len(cache.has_many(keys))
        cached += hit
        (answered if hit == n else uncached).append(i)
    counted = {i: counter.count(model.full_messages(lb.messages[i])) for i in uncached}
    bound = {i: prompt_token_bound(model.full_messages(lb.messages[i])) for i in uncached}
    seen = _cached_observations(runner, lb, counter, [answered[j] for j in pilot_indices(len(answered), 200)])
    served = m.serve is not None
    k_new = 0 if served else max(pilot_k - len(seen["ratios"]), 0)
    rows = [uncached[j] for j in pilot_indices(len(uncached), k_new)]
    pilot = _pilot(runner, lb, rows, counted) if rows else {"completion": [], "ratios": [], "prompt": 0,
                                                            "cost": 0.0, "latencies": [], "errors": {},
                                                            "answered": set()}
    pilot_obs = {"completion": pilot["completion"] + seen["completion"], "ratios": pilot["ratios"] + seen["ratios"]}
    piloted = pilot["answered"]  # a pilot request that failed or the cap held back is still to be paid for
    rest = [i for i in uncached if i not in piloted]
    p_rem, b_rem, s_rem = sum(counted[i] for i in rest), sum(bound[i] for i in rest), len(rest) * n
    out: dict[str, Any] = {"items": len(lb.items), "samples_per_item": n, "requests": len(uncached),
                           "samples": len(uncached) * n, "samples_cached": cached, "max_tokens": max_out,
                           "token_count_method": counter.method, "pilot_requests": len(rows),
                           "cached_answers_used": len(seen["completion"]),
                           "pilot_cost_usd": round(pilot["cost"], 6), "pilot_errors": pilot["errors"]}
    r = pilot_obs["ratios"]
    if r:  # the provider's own count corrects ours; its spread widens the range
        mean_r = statistics.fmean(r)
        # the total's ratio is the remaining items' average ratio: the uncertainty of the pilot's mean plus the
        # spread of an average over len(rest) items (one item's spread applied to the total was far too wide)
        half_r = t975(len(r) - 1) * (statistics.stdev(r) if len(r) > 1 else 0.0) * math.sqrt(
            1 / len(r) + 1 / max(len(rest), 1))
        prompt = {"low": p_rem * (mean_r - half_r), "expected": p_rem * mean_r, "high": p_rem * (mean_r + half_r)}
        out["prompt_tokens_source"] = (f"{counter.method} x {mean_r:.3f} (the provider's count over ours in the "
                                       f"pilot, range {min(r):.3f}-{max(r):.3f})")
    else:
        exact = not counter.method.startswith("chars/4")
        prompt = {"low": float(p_rem), "expected": float(p_rem), "high": float(p_rem if exact else b_rem)}
        out["prompt_tokens_source"] = counter.method + ("" if exact else " (low / expected: that estimate, not a "
                                                                   "bound; high: the byte bound, a true bound)")
    prompt = {k: min(max(v, 0.0), float(b_rem)) for k, v in prompt.items()}
    c = pilot_obs["completion"]
    prev = ((previous or {}).get("benchmarks") or {}).get(lb.cfg.name) or {}
    if c:
        comp = total_interval(c, s_rem, max_out)
        out["completion_tokens_source"] = (f"{len(pilot['completion'])} pilot + {len(seen['completion'])} cached "
                                           f"answers (mean {statistics.fmean(c):.1f})")
    elif prev.get("mean_completion_tokens") is not None:
        mean = float(prev["mean_completion_tokens"])
        comp = {"low": 0.0, "expected": s_rem * mean, "high": float(s_rem * (max_out or mean))}
        out["completion_tokens_source"] = f"the last run's mean ({mean:.1f}); high: max_tokens"
    else:
        cap = float(s_rem * max_out) if max_out is not None else None
        comp = {"low": 0.0, "expected": cap, "high": cap}  # type: ignore[dict-item]
        out["completion_tokens_source"] = "max_tokens (no pilot: expected = worst case)"
    done_c = sum(pilot["completion"])
    out["prompt_tokens"] = {k: round(v) + pilot["prompt"] for k, v in prompt.items()}  # the pilot's: as billed
    out["prompt_tokens_upper_bound"] = b_rem + sum(bound[i] for i in piloted)
    out["completion_tokens"] = {k: None if v is None else round(v + done_c) for k, v in comp.items()}
    out["_remaining"] = {"prompt": prompt, "completion": comp, "bound": b_rem, "samples": s_rem, "requests": len(rest)}
    lat = pilot["latencies"] + seen["latencies"]  # a second dry run times the run from the cached answers
    out["_latency"] = statistics.fmean(lat) if lat else None
    return out


def _price_benchmark(row: dict[str, Any], runner: ChatRunner, m: EvalModel, tph: float | None) -> None:
    """$ low/expected/high (pilot spend included) and the worst case the cap would reserve; GPU time for a served
    model."""
    rem = row.pop("_remaining")
    comp = rem["completion"]
    if m.serve is not None:
        usd = m.gpu_usd_per_hour
        hours = {k: (v / tph if tph and v is not None else None) for k, v in comp.items()}
        row["cost_usd"] = {k: (round(usd * h, 6) if usd is not None and h is not None else None)
                           for k, h in hours.items()}
        row["cost_usd_worst_case"] = row["cost_usd"]["high"]
        row["wall_s"] = round(hours["expected"] * 3600, 1) if hours["expected"] is not None else None
        if row["cost_usd"]["expected"] is None:
            row["cost_note"] = ("GPU $/hour over output tokens/hour: no throughput measured yet (a first run "
                                "measures it)" if usd is not None else "no gpu_usd_per_hour set")
        return
    price = runner.price
    pilot = row["pilot_cost_usd"]
    row["cost_usd"] = {k: None if comp[k] is None else round(pilot + price.cost(rem["prompt"][k], comp[k]), 6)
                       for k in ("low", "expected", "high")}
    out_bound = runner.model.max_output * rem["samples"]
    row["cost_usd_worst_case"] = round(pilot + price.cost(rem["bound"], out_bound), 6)
    lat = row.pop("_latency", None)
    conc = runner.ep.concurrency
    waves = math.ceil(rem["requests"] / conc) if rem["requests"] else 0
    wall = waves * lat if lat is not None else None
    if runner.ep.rpm:
        wall = max(wall or 0.0, rem["requests"] / runner.ep.rpm * 60)
    row["wall_s"] = round(wall, 1) if wall is not None else None
    if not price.known:
        row["cost_note"] = "price unknown: counted as $0 (set `price:`)"


def estimate_model(m: EvalModel, loaded: list[Any], ecfg: EvalConfig, layout: RunLayout, cache: ResponseCache,
                   budget: Budget, priced_as: tuple[EvalModel, dict[str, Any]]) -> dict[str, Any]:
    """One model (priced up front by `evaluate.price_models`): its price and where it came from, and every
    benchmark's estimate."""
    from distill.evaluate import _served_identity, make_runners

    priced, price_rec = priced_as
    identity = _served_identity(m, layout.root)[0] if m.serve is not None else None
    runners = make_runners(priced, loaded, ecfg, cache, budget, model_id=m.name if m.serve else None,
                           identity=identity)
    field = (f"eval.estimate.tokenizers.{m.name}" if m.name in ecfg.estimate.tokenizers
             else f"eval.models.{m.name}.serve.model")
    counter = TokenCounter(m.model or m.name, _tokenizer_for(m, ecfg, layout.root), field=field)
    previous = read_summary(layout.eval_model(m.name))
    tph = ((previous or {}).get("cost") or {}).get("output_tokens_per_hour")
    benches = {}
    for lb, runner in runners:
        row = estimate_benchmark(m, lb, runner, counter, cache, ecfg.estimate.pilot, previous)
        _price_benchmark(row, runner, m, tph)
        benches[lb.cfg.name] = row
    return {"model": m.name, "role": m.role, "endpoint_model": m.model, "served": m.serve is not None,
            "price": price_rec, "benchmarks": benches}


def _totals(models: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [b for m in models for b in m["benchmarks"].values()]

    def add(key: str, sub: str) -> float | None:
        """The sum over what is known (a served model's $ before its throughput was ever measured is not)."""
        vals = [r[key][sub] for r in rows if r[key][sub] is not None]
        return round(sum(vals), 6) if vals else None

    out = {"requests": sum(r["requests"] for r in rows), "samples": sum(r["samples"] for r in rows),
           "pilot_cost_usd": round(sum(r["pilot_cost_usd"] for r in rows), 6),
           "prompt_tokens": {k: add("prompt_tokens", k) for k in ("low", "expected", "high")},
           "completion_tokens": {k: add("completion_tokens", k) for k in ("low", "expected", "high")},
           "cost_usd": {k: add("cost_usd", k) for k in ("low", "expected", "high")},
           "cost_usd_worst_case": round(sum(r["cost_usd_worst_case"] or 0.0 for r in rows), 6)}
    # API models run one after another; each model's benchmarks run one after another
    walls = [r["wall_s"] for r in rows if r["wall_s"] is not None]
    out["wall_s"] = round(sum(walls), 1) if walls else None
    out["cost_unknown"] = sorted({m["model"] for m in models for r in m["benchmarks"].values()
                                  if r["cost_usd"]["expected"] is None})  # not in the $ totals
    out["paid_cost_usd"] = {k: round(sum((r["cost_usd"][k] or 0.0) for m in models if not m["served"]
                                         for r in m["benchmarks"].values()), 6) for k in ("low", "expected", "high")}
    return out


def run_eval_estimate(ecfg: EvalConfig, layout: RunLayout, *, models: list[str] | None = None,
                      limit: int | None = None) -> dict[str, Any]:
    """The dry run: sends only the pilot (paid, in the eval ledger, held to budget_usd); prints and saves the
    estimate."""
    from distill.evaluate import choose_models, load_benchmarks, price_models

    if limit is not None:
        ecfg = ecfg.model_copy(update={"limit": limit})
    chosen = choose_models(ecfg, models)
    loaded = load_benchmarks(ecfg, layout.root)
    priced = price_models(chosen, layout.root)  # every model's price and weights, before the first pilot request
    cache = ResponseCache(layout.cache)
    budget = Budget.open(layout.root, "eval", ecfg.budget_usd)
    try:
        rows = [estimate_model(m, loaded, ecfg, layout, cache, budget, priced[m.name]) for m in chosen]
        spend = budget.summary()
    finally:
        budget.close()
        cache.close()
    totals = _totals(rows)
    result: dict[str, Any] = {"stage": "eval-estimate", "limit": ecfg.limit, "pilot_per_benchmark": ecfg.estimate.pilot,
                              "models": rows, "totals": totals, "budget": spend}
    if ecfg.budget_usd is not None:
        left = ecfg.budget_usd - spend["spent_usd"]
        high, exp = totals["paid_cost_usd"]["high"] - totals["pilot_cost_usd"], \
            totals["paid_cost_usd"]["expected"] - totals["pilot_cost_usd"]
        result["budget"]["verdict"] = ("fits" if high <= left else "may stop at the cap" if exp <= left
                                       else "expected to stop at the cap")
    write_json(layout.eval_estimate, result)
    print_eval_estimate(result)
    return result


def _range(d: dict[str, Any], money: bool = False) -> str:
    if any(d.get(k) is None for k in ("low", "expected", "high")):
        return "—"
    f = (lambda v: f"{v:.4f}" if v < 1 else f"{v:,.2f}") if money else (lambda v: f"{v:,.0f}")
    return f"{f(d['low'])} / {f(d['expected'])} / {f(d['high'])}"


def _money(v: float | None) -> str:
    """$2.50, not $2.5; sub-cent prices keep their digits ($0.0375)."""
    if v is None:
        return "$—"
    return f"${v:.2f}" if v >= 0.1 or v == 0 else f"${v:.4g}"


def print_eval_estimate(result: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="eval --dry-run: before any paid request but the pilot")
    for col in ("model", "benchmark", "items", "requests x n", "prompt tok (low / exp / high)",
                "completion tok (low / exp / high)", "$ (low / exp / high)", "time"):
        t.add_column(col)
    for m in result["models"]:
        for b, r in m["benchmarks"].items():
            t.add_row(m["model"], b, str(r["items"]), f"{r['requests']} x {r['samples_per_item']}"
                      + (f" (+{r['samples_cached']} cached)" if r["samples_cached"] else ""),
                      _range(r["prompt_tokens"]), _range(r["completion_tokens"]), _range(r["cost_usd"], True),
                      "—" if r.get("wall_s") is None else f"{r['wall_s'] / 60:.1f} min")
    tot = result["totals"]
    t.add_row("total", "", "", str(tot["requests"]), _range(tot["prompt_tokens"]), _range(tot["completion_tokens"]),
              _range(tot["cost_usd"], True), "—" if tot["wall_s"] is None else f"{tot['wall_s'] / 60:.1f} min")
    console.print(t)
    for m in result["models"]:
        p = m["price"]
        src = p.get("source")
        what = (f"GPU {_money(p.get('gpu_usd_per_hour'))}/hour" if src == "gpu" else
                f"{_money(p.get('usd_per_1m_prompt'))} / {_money(p.get('usd_per_1m_completion'))} per 1M prompt / "
                f"completion "
                f"tokens ({src}{', read ' + p['fetched_at'] if p.get('fetched_at') else ''})")
        first = next(iter(m["benchmarks"].values()), {})
        for b, r in m["benchmarks"].items():
            if r["pilot_errors"]:
                console.print(f"  {m['model']} {b}: pilot requests unanswered: {r['pilot_errors']}")
        console.print(f"  {m['model']}: {what}; prompt tokens by {first.get('prompt_tokens_source', '—')}"
                      + "".join(f"; {r['cost_note']}" for r in m["benchmarks"].values() if r.get("cost_note"))[:300])
    b = result["budget"]
    cap = "no budget_usd (no cap)" if b.get("cap_usd") is None else (
        f"budget_usd ${b['cap_usd']:.2f}: spent ${b['spent_usd']:.4f} so far (pilot included), "
        f"{b.get('verdict')}")
    if tot["cost_unknown"]:
        console.print(f"  not in the $ totals (no cost known yet): {', '.join(tot['cost_unknown'])}")
    worst = tot["cost_usd_worst_case"]
    console.print(f"  paid $ (API models): {_range(tot['paid_cost_usd'], True)}; worst case (every answer at "
                  f"max_tokens): {'—' if worst is None else f'${worst:.4f}'}; {cap}")
