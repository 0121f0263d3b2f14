"""`distill collect --dry-run`: what a collect run will cost, before it sends anything but a small pilot.

Prompt tokens are counted with tiktoken for OpenAI models, else with a local tokenizer (`estimate.tokenizer`,
e.g. the student's), else chars/4 — the summary says which and why. Completion tokens come from a pilot of K real
requests (they go through the normal runner and cache, so the real run reuses them) or, without a pilot, only
the worst case `max_tokens`. Prompts already in the cache are free and counted apart.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from typing import Any

from distill.errors import DistillError
from distill.llm import ChatRequest, ChatRunner, EndpointConfig, request_model, ResponseCache
from distill.llm.budget import Budget
from distill.llm.pricing import Price
from distill.progress import console
from distill.collect.config import EstimateConfig
from distill.tokens import TokenCounter


# two-sided 95% Student t quantiles by degrees of freedom (a pilot of 5 has 4); 1.96 past 30
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t: a pilot of a few answers estimates their spread loosely, so the
    interval widens accordingly (1.96 would cover far less than 95% at k = 2)."""
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def total_interval(samples: list[float], remaining: int, cap: float | None) -> dict[str, float]:
    """low / expected / high of the sum of `remaining` more values like `samples`: remaining x mean, +- t x sd x
    sqrt(remaining + remaining^2 / k) (the spread of the values plus the uncertainty of their mean), within
    [0, remaining x cap]."""
    k = len(samples)
    mean = statistics.fmean(samples)
    sd = statistics.stdev(samples) if k > 1 else mean  # one value says nothing of the spread: assume it is large
    half = t975(k - 1 if k > 1 else 1) * sd * math.sqrt(remaining + remaining * remaining / k)
    top = remaining * cap if cap is not None else math.inf
    return {"low": max(remaining * mean - half, 0.0), "expected": min(remaining * mean, top),
            "high": min(remaining * mean + half, top)}


def pilot_indices(n_uncached: int, k: int) -> list[int]:
    """k positions spread evenly over n (first and last included): a pilot that sees the whole range of items."""
    if k <= 0 or n_uncached == 0:
        return []
    k = min(k, n_uncached)
    return sorted({round(i * (n_uncached - 1) / max(k - 1, 1)) for i in range(k)})


def estimate_teacher(ep: EndpointConfig, ds: Any, cache: ResponseCache, est: EstimateConfig,
                     budget: Budget | None = None) -> dict[str, Any]:
    """One teacher's estimate; the pilot's spend goes to `budget` (the collect stage's ledger and cap)."""
    runner = ChatRunner(model := request_model(ep), cache, budget=budget)
    if not runner.price.known:
        raise DistillError(
            f"no price for model {ep.model!r} (teacher '{ep.name}'): set `price: {{prompt: X, completion: Y}}` "
            f"($ per 1M tokens) under that teacher in collect.teachers"
        )
    counter = TokenCounter(ep.model, est.tokenizer, field="collect.estimate.tokenizer")
    n = ep.params.n
    uncached_rows: list[int] = []
    prompt_tokens = 0
    cached_samples = 0
    for start in range(0, len(ds), 1000):
        batch = ds[start : start + 1000]["messages"]
        keys = [model.sample_keys(m, list(range(n))) for m in batch]
        hit = cache.has_many([k for ks in keys for k in ks])
        for j, (msgs, ks) in enumerate(zip(batch, keys, strict=True)):
            done = sum(k in hit for k in ks)
            cached_samples += done
            if done < n:
                uncached_rows.append(start + j)
                prompt_tokens += counter.count(model.full_messages(msgs))  # one request carries all its samples
    to_send = len(uncached_rows) * n  # samples (a prompt with some samples cached re-asks only the rest: upper bound)

    pilot_rows = [uncached_rows[i] for i in pilot_indices(len(uncached_rows), est.pilot)]
    pilot_tokens: list[float] = []
    pilot_cost = 0.0
    if pilot_rows:
        console.print(f"estimate: pilot of {len(pilot_rows)} real requests to '{ep.name}'")
        reqs = [ChatRequest(ds[i]["messages"], list(range(n)), i) for i in pilot_rows]
        got: list[dict[str, Any]] = []
        stats = asyncio.run(runner.run(reqs, lambda req, recs, err, cached: got.extend(recs or [])))
        pilot_tokens = [float(r["completion_tokens"]) for r in got]
        pilot_cost = stats.cost_usd
        if not pilot_tokens:
            raise DistillError(f"estimate: every pilot request to '{ep.name}' failed ({dict(stats.errors)})")
    max_out = ep.params.max_output_tokens
    remaining = max(to_send - len(pilot_tokens), 0)
    pilot_prompts = len(pilot_rows)
    # prompt tokens still to pay for (the pilot's are already paid)
    rem_prompt = prompt_tokens * (1 - pilot_prompts / len(uncached_rows)) if uncached_rows else 0
    out: dict[str, Any] = {
        "teacher": ep.name, "model": ep.model, "token_count_method": counter.method,
        "prompts": len(ds), "samples_cached": cached_samples, "samples_to_send": to_send,
        "prompt_tokens": prompt_tokens, "pilot_requests": pilot_prompts, "pilot_cost_usd": round(pilot_cost, 6),
    }
    price: Price = runner.price
    if pilot_tokens:
        # a prediction interval for the total of the remaining answers (as eval's dry run states it), not for
        # their mean: mean +- 1.96 sd/sqrt(k) was far too narrow for what the run then pays
        mean = statistics.fmean(pilot_tokens)
        tot = total_interval(pilot_tokens, remaining, max_out)
        per = {k: (v / remaining if remaining else 0.0) for k, v in tot.items()}
        out["completion_tokens_source"] = (f"pilot of {len(pilot_tokens)} samples (mean {mean:.1f}; range: 95% "
                                           "prediction interval for the total)")
    elif max_out is not None:
        per = {"low": 0.0, "expected": float(max_out), "high": float(max_out)}
        out["completion_tokens_source"] = "max_tokens (no pilot: expected = worst case)"
    else:
        raise DistillError(f"estimate for '{ep.name}': set params.max_tokens or estimate.pilot > 0 to bound answer length")
    out["completion_tokens"] = {k: round(v * remaining + sum(pilot_tokens)) for k, v in per.items()}
    for mode, factor in (("online", 1.0), ("batch", price.batch_discount)):
        out[f"cost_usd_{mode}"] = {
            k: round(pilot_cost + factor * price.cost(int(rem_prompt), int(v * remaining)), 6) for k, v in per.items()
        }
    if max_out is not None:
        out["cost_usd_worst_case"] = round(pilot_cost + price.cost(int(rem_prompt), max_out * remaining), 6)
    return out


def print_estimate(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title="collect --dry-run: estimate before sending", show_lines=False)
    for col in ("teacher", "requests", "prompt tok", "completion tok (low / exp / high)", "$ online (low / exp / high)",
                "$ batch (low / exp / high)"):
        t.add_column(col)
    for r in rows:
        c, on, ba = r["completion_tokens"], r["cost_usd_online"], r["cost_usd_batch"]
        t.add_row(r["teacher"], f"{r['samples_to_send']} (+{r['samples_cached']} cached)", f"{r['prompt_tokens']:,}",
                  f"{c['low']:,} / {c['expected']:,} / {c['high']:,}",
                  f"{on['low']:.4f} / {on['expected']:.4f} / {on['high']:.4f}",
                  f"{ba['low']:.4f} / {ba['expected']:.4f} / {ba['high']:.4f}")
    console.print(t)
    for r in rows:
        console.print(f"  {r['teacher']}: prompt tokens by {r['token_count_method']}; completion tokens from "
                      f"{r['completion_tokens_source']}" + (f"; pilot spent ${r['pilot_cost_usd']:.4f}" if r["pilot_requests"] else ""))
