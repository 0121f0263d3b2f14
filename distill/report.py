"""report: the one table — Model | each benchmark | $ per 1M tokens — plus the share of the teacher's lead
recovered.

Scores carry their 95% interval; a model's published scores (`report.published`) stand beside the measured ones
with the difference, so a claim can be checked on one protocol (a footnote states it); the price column says
prompt / completion $ per 1M tokens for an API (from its source: config, OpenRouter's list, the table) and GPU
$/hour over measured throughput for a served model.

"gap recovered" = (student - base) / (teacher - base) per benchmark, with the roles taken from the eval config
(`role: teacher | student | base`); without a base, student / teacher. Teacher and student answered the same
items, so the gap and the gap recovered get paired bootstrap intervals (`distill.stats`). Each column names its
protocol (shots, chat format, generative scoring, max tokens, temperature, grader version), and GSM8K also gets
lm-evaluation-harness's strict-match / flexible-extract scores on the same generations
(`distill.benchmarks.harness`), so a reader can set our number beside published ones.

Reads runs/<name>/eval/ (summaries and per-item rows) only, so it re-renders from stored results without
touching a model. Output: runs/<name>/report/{report.md, report.json, chart.png, summary.json}.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distill.benchmarks import KINDS, mean_stderr
from distill.errors import InputError
from distill.rundir import RunLayout, Stage, fingerprint, read_summary, require_stage, write_json
from distill.report_config import ReportConfig

PRETTY = {"gsm8k": "GSM8K", "mmlu": "MMLU", "humaneval": "HumanEval", "math500": "MATH-500", "aime_2024": "AIME 2024",
          "gpqa_diamond": "GPQA-Diamond"}


def column_label(name: str, info: dict[str, Any]) -> str:
    """'GSM8K (8-shot)', 'MMLU (5-shot)', 'HumanEval (pass@1)', 'arith (0-shot)', 'validation (agreement)'."""
    desc = info.get("benchmark") or {}
    kind = desc.get("kind", name)
    label = PRETTY.get(name, name)
    if kind == "humaneval" or info.get("metric") == "pass@1":
        return f"{label} (pass@1)"
    if kind == "agreement":
        return f"{label} (agreement)"
    return f"{label} ({info.get('k_shot', desc.get('k_shot', 0))}-shot)"


def gap_recovered(student: float | None, base: float | None, teacher: float | None) -> float | None:
    """(student - base) / (teacher - base); None when a score is missing or teacher == base (no gap to recover)."""
    if student is None or base is None or teacher is None or abs(teacher - base) < 1e-12:
        return None
    return (student - base) / (teacher - base)


def _agreed(values: dict[str, Any], fmt: Any = str) -> str:
    """One value when every model used it, else the most common one and the exceptions ('512 (teacher 1024)')."""
    shown = {m: "—" if v is None else fmt(v) for m, v in values.items()}
    if not shown:
        return "—"
    counts = list(shown.values())
    common = max(dict.fromkeys(counts), key=counts.count)  # ties: the first model's value
    others = [f"{m} {v}" for m, v in shown.items() if v != common]
    return common + (f" ({', '.join(others)})" if others else "")


def column_protocol(b: str, models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How a column was measured, as every model ran it: shots, chat format, scoring, sampling, grader."""
    ran = {m: s for m, s in models.items() if b in (s.get("benchmarks") or {})}
    info = {m: s["benchmarks"][b] for m, s in ran.items()}
    first = next(iter(info.values()), {})
    desc = first.get("benchmark") or {}
    kind = desc.get("kind", b)
    shots = {m: v.get("k_shot", (v.get("benchmark") or {}).get("k_shot", 0)) for m, v in info.items()}
    fmt = {m: "chat, zero-shot" if not k else "chat, exemplars as multi-turn user/assistant turns"
           for m, k in shots.items()}
    scoring = desc.get("scoring") or getattr(KINDS.get(kind), "scoring", "generative")
    raw: dict[str, dict[str, Any]] = {
        "shots": shots, "format": fmt,
        "max_tokens": {m: v.get("max_tokens") for m, v in info.items()},
        "temperature": {m: v.get("temperature") for m, v in info.items()},
        "samples": {m: v.get("n", 1) for m, v in info.items()},
        "grader": {m: s.get("grader_version") or "unversioned" for m, s in ran.items()},
        # what else changes a score: how many items (--limit, a cap), the other sampling settings sent (top_p,
        # extra_body, reasoning ...), a system prompt of the model's own
        "items": {m: v.get("items") for m, v in info.items()},
        "sampling": {m: _other_sampling(v) for m, v in info.items()},
        "system_prompt": {m: "yes" if ((s.get("config") or {}).get("system_prompt")) else "none"
                          for m, s in ran.items()},
    }
    out: dict[str, Any] = {k: _agreed(v, (lambda t: f"{t:g}") if k == "temperature" else str) for k, v in raw.items()}
    out["scoring"] = scoring
    out["differs"] = {k: len({str(x) for x in v.values()}) > 1 for k, v in raw.items()}
    return out


_PROTOCOL_KEYS = ("max_tokens", "max_completion_tokens", "temperature", "n")


def _other_sampling(v: dict[str, Any]) -> str:
    """The sampling settings sent besides max tokens, temperature and n ('default' when none)."""
    import json

    rest = {k: x for k, x in (v.get("sampling") or {}).items() if k not in _PROTOCOL_KEYS}
    return json.dumps(rest, sort_keys=True, separators=(",", ":")) if rest else "default"


def _item_scores(eval_dir: Path, model: str, b: str) -> dict[str, float] | None:
    """Per item, the share of its samples scored correct (failed items count as wrong); None without rows."""
    from distill.evaluate import load_eval_rows

    f = eval_dir / model / f"{b}.jsonl"
    if not f.is_file():
        return None
    by_item: dict[str, list[bool]] = {}
    for r in load_eval_rows(eval_dir / model, b):
        by_item.setdefault(r["id"], []).append(bool(r["correct"]))
    return {i: sum(v) / len(v) for i, v in by_item.items()}


def paired_stats(eval_dir: Path, roles: dict[str, str | None], benches: list[str]) -> dict[str, Any]:
    """Per benchmark: the paired bootstrap interval of teacher - student and of the gap recovered."""
    from distill.stats import paired_comparison

    out: dict[str, Any] = {}
    if not (roles["teacher"] and roles["student"]):
        return out
    for b in benches:
        per = {r: _item_scores(eval_dir, roles[r], b) if roles[r] else None for r in ("teacher", "student", "base")}
        if per["teacher"] is None or per["student"] is None:
            continue
        ids = set(per["teacher"]) & set(per["student"]) & (set(per["base"]) if per["base"] is not None else set(
            per["teacher"]))
        if not ids:
            continue
        ids_sorted = sorted(ids)
        vec = {r: [p[i] for i in ids_sorted] if p is not None else None for r, p in per.items()}
        out[b] = {"items": len(ids_sorted), **paired_comparison(vec["teacher"], vec["student"], vec["base"])}
    return out


def harness_scores(eval_dir: Path, models: list[str], b: str) -> dict[str, Any]:
    """lm-eval's strict-match / flexible-extract scores of each model's GSM8K generations (first sample)."""
    from distill.benchmarks.harness import harness_gsm8k
    from distill.evaluate import load_eval_rows

    meta: dict[str, Any] = {}
    per_model: dict[str, Any] = {}
    for m in models:
        if not (eval_dir / m / f"{b}.jsonl").is_file():
            continue
        rows = [r for r in load_eval_rows(eval_dir / m, b) if r.get("sample_index", 0) == 0]
        res = harness_gsm8k([r["output"] for r in rows], [r["reference"] for r in rows])
        meta = {k: v for k, v in res.items() if k != "scores"}
        if not res["available"]:
            break
        per_model[m] = {}
        for name, sc in res["scores"].items():
            mean, se = mean_stderr(sc["per_item"])
            per_model[m][name] = {"score": mean, "stderr": se, "items": len(sc["per_item"])}
    return {**meta, "models": per_model}


def _load_models(eval_dir: Path) -> dict[str, dict[str, Any]]:
    index = require_stage(eval_dir, "eval")
    out: dict[str, dict[str, Any]] = {}
    names = list((index.get("models") or {}).keys())
    names += sorted(p.name for p in eval_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and p.name not in names and (p / "summary.json").is_file())
    for name in names:
        s = read_summary(eval_dir / name)
        if s is None:
            raise InputError(f"{eval_dir / name}: missing summary.json (re-run `distill eval`)")
        out[name] = s
    if not out:
        raise InputError(f"{eval_dir}: no evaluated models (run `distill eval` first)")
    return out


def _by_role(models: dict[str, dict[str, Any]], role: str) -> str | None:
    found = [n for n, s in models.items() if s.get("role") == role]
    return found[0] if found else None


def _pct(v: float | None, se: float | None = None) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f} ± {100 * se:.1f}" if se else f"{100 * v:.1f}"


def _usd(v: float | None) -> str:
    if v is None:
        return "—"
    return f"${v:.4f}" if v < 0.1 else f"${v:.2f}"


def build_table(models: dict[str, dict[str, Any]], rcfg: ReportConfig, eval_dir: Path | None = None,
                eval_models: list[str] | None = None) -> dict[str, Any]:
    """The report as data: rows (one per model), columns (benchmarks, each with its protocol), gaps, the
    primary-benchmark ratios; with `eval_dir` (per-item rows) also paired intervals and lm-eval's GSM8K scores.

    `eval_models`: the eval config's model names; a published entry for one of them not evaluated yet (a partial
    eval, `--model`) is left out and said so, one for a name eval does not have at all is an error (a typo)."""
    if rcfg.models:
        unknown = [m for m in rcfg.models if m not in models]
        if unknown:
            raise InputError(f"report.models: {', '.join(unknown)} not evaluated (have: {', '.join(models)})")
        models = {m: models[m] for m in rcfg.models}
    unknown = [m for m in rcfg.published if m not in models and (eval_models is None or m not in eval_models)]
    if unknown:
        raise InputError(f"report.published: {', '.join(unknown)} not evaluated (have: {', '.join(models)})")
    published_skipped = [m for m in rcfg.published if m not in models]
    benches: list[str] = []
    for s in models.values():
        benches += [b for b in s.get("benchmarks", {}) if b not in benches]
    if rcfg.benchmarks:
        unknown = [b for b in rcfg.benchmarks if b not in benches]
        if unknown:
            raise InputError(f"report.benchmarks: {', '.join(unknown)} not evaluated (have: {', '.join(benches)})")
        benches = list(rcfg.benchmarks)
    info = {b: next(s["benchmarks"][b] for s in models.values() if b in s.get("benchmarks", {})) for b in benches}
    columns = [{"benchmark": b, "label": column_label(b, info[b]), "metric": info[b].get("metric"),
                "kind": (info[b].get("benchmark") or {}).get("kind", b), "protocol": column_protocol(b, models)}
               for b in benches]
    rows = []
    for name, s in models.items():
        cost = s.get("cost") or {}
        scores = {}
        for b in benches:
            v = (s.get("benchmarks") or {}).get(b)
            scores[b] = None if v is None else {"score": v.get("score"), "stderr": v.get("stderr"),
                                                "items": v.get("items"), "failed": v.get("failed", 0),
                                                "samples": v.get("samples", v.get("items"))}
        blended = cost.get("usd_per_1m_tokens")
        rows.append({"model": name, "role": s.get("role", "other"), "scores": scores,
                     # over prompt + completion tokens (an older summary has only the per-output figure)
                     "usd_per_1m_tokens": blended if blended is not None else cost.get("usd_per_1m_output_tokens"),
                     "usd_per_1m_basis": "all tokens" if blended is not None else "output tokens",
                     "usd_per_1m_output_tokens": cost.get("usd_per_1m_output_tokens"), "cost_basis": cost.get("basis"),
                     "usd_per_1m_prompt_tokens": cost.get("usd_per_1m_prompt_tokens"), "price": cost.get("price"),
                     "output_tokens_per_hour": cost.get("output_tokens_per_hour"),
                     "tokens_per_hour": cost.get("tokens_per_hour"),
                     "charged": cost.get("charged"), "eval_cost_usd": s.get("eval_cost_usd"),
                     "complete": s.get("complete", True), "published": _published(rcfg, name, scores)})
    roles = {r: _by_role(models, r) for r in ("teacher", "student", "base")}

    def score(model: str | None, b: str) -> float | None:
        if model is None:
            return None
        v = next(r for r in rows if r["model"] == model)["scores"].get(b)
        return v["score"] if v else None

    gaps = {b: gap_recovered(score(roles["student"], b), score(roles["base"], b), score(roles["teacher"], b))
            for b in benches}
    ratio = {}
    for b in benches:
        t, st = score(roles["teacher"], b), score(roles["student"], b)
        ratio[b] = (st / t) if t and st is not None else None
    primary = rcfg.primary or (benches[0] if benches else None)
    if primary is not None and primary not in benches:
        raise InputError(f"report.primary: {primary} not evaluated (have: {', '.join(benches)})")
    paired = paired_stats(eval_dir, roles, benches) if eval_dir is not None else {}
    harness = ({c["benchmark"]: harness_scores(eval_dir, list(models), c["benchmark"]) for c in columns
                if c["kind"] == "gsm8k"} if eval_dir is not None else {})
    return {"columns": columns, "rows": rows, "roles": roles, "gap_recovered": gaps, "student_over_teacher": ratio,
            "primary": primary, "paired": paired, "harness": harness, "published_skipped": published_skipped}


Z95 = 1.96


def score_interval(v: dict[str, Any] | None) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a score over its items.

    Why Wilson, not ± 1.96 standard errors: at 0% or 100% the standard error is 0 and that interval vanishes
    (a published 95% would look "outside" a measured 100% of 20 items); Wilson stays honest near the ends and
    inside [0, 1]. Items with several samples enter with their share correct (an approximation)."""
    if not v or v.get("score") is None or not v.get("items"):
        return None
    p, n, z2 = float(v["score"]), int(v["items"]), Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)) ** 0.5
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _published(rcfg: ReportConfig, model: str, scores: dict[str, Any]) -> dict[str, Any]:
    """A model's published scores per column: the number (as a share), measured - published, and whether the
    published number lies inside the measured 95% interval."""
    pub = rcfg.published.get(model)
    if pub is None:
        return {}
    unknown = [b for b in pub.scores if b not in scores]
    if unknown:
        raise InputError(f"report.published.{model}.scores: {', '.join(unknown)} is not a column of the report "
                         f"(columns: {', '.join(scores)})")
    out: dict[str, Any] = {}
    for b, pct in pub.scores.items():
        v = scores[b]
        measured = v.get("score") if v else None
        iv = score_interval(v)
        out[b] = {"score": pct / 100, "diff": None if measured is None else measured - pct / 100,
                  "inside_interval": None if iv is None else iv[0] <= pct / 100 <= iv[1],
                  "source": pub.source, "note": pub.note}
    return out


def _score_cell(v: dict[str, Any] | None, pub: dict[str, Any] | None) -> str:
    """'85.3 [83.0, 87.6]', then 'pub. 88.7, Δ -3.4' (Δ in bold when the published score lies outside)."""
    if not v or v.get("score") is None:
        text = "—"
    else:
        iv = score_interval(v)
        text = f"{100 * v['score']:.1f}" + (f" [{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]" if iv else "")
        if v.get("failed"):  # unanswered (failed, or held by the cap) counts as wrong: the cell says how many
            total = v.get("samples") or v.get("items") or 0
            text += f" † {total - v['failed']}/{total} answered"
    if pub:
        d = "—" if pub["diff"] is None else f"{100 * pub['diff']:+.1f}"
        if pub["inside_interval"] is False:
            d = f"**{d}**"
        text += f" · pub. {100 * pub['score']:.1f}, Δ {d}"
    return text


def _price_cell(r: dict[str, Any]) -> str:
    """'$3.10 ($2.50 in / $10.00 out)' for an API: $ per 1M tokens over prompt + completion at the eval's own mix,
    then the list prices; '$0.05 (GPU)' for a served model: GPU $/hour over tokens processed per hour. An older
    summary without the blended figure shows what it has ('$2.50 in / $10.00 out', '$0.12 out (GPU)')."""
    usd = r["usd_per_1m_tokens"]
    if usd is None:
        return "—"
    blended = r.get("usd_per_1m_basis") == "all tokens"
    if r["cost_basis"] == "gpu":
        return f"{_usd(usd)} (GPU)" if blended else f"{_usd(usd)} out (GPU)"
    inp, out = r.get("usd_per_1m_prompt_tokens"), r.get("usd_per_1m_output_tokens")
    if inp is None or out is None:
        return _usd(usd)
    return f"{_usd(usd)} ({_usd(inp)} in / {_usd(out)} out)" if blended else f"{_usd(inp)} in / {_usd(out)} out"


def _interval(d: dict[str, Any] | None, scale: float, signed: bool, unit: str) -> str:
    """'+20.0 [+5.0, +35.0]' or '67% [30%, 100%]'; '—' when undefined."""
    if not d or d.get("estimate") is None:
        return "—"
    f = (lambda v: f"{scale * v:+.1f}{unit}") if signed else (lambda v: f"{scale * v:.0f}{unit}")
    if d.get("low") is None:
        return f(d["estimate"])
    return f"{f(d['estimate'])} [{f(d['low'])}, {f(d['high'])}]"


def _paired_rows(table: dict[str, Any]) -> list[str]:
    """The gap and gap-recovered rows under the model rows (paired intervals when per-item rows exist)."""
    cols, roles, paired = table["columns"], table["roles"], table.get("paired") or {}
    if not (roles["student"] and roles["teacher"]):
        return []
    gap = [_interval((paired.get(c["benchmark"]) or {}).get("gap"), 100, True, "") for c in cols]
    rec = []
    for c in cols:
        p = (paired.get(c["benchmark"]) or {}).get("recovered")
        point = table["gap_recovered"][c["benchmark"]] if roles["base"] else table["student_over_teacher"][
            c["benchmark"]]
        rec.append(_interval(p, 100, False, "%") if p else _interval({"estimate": point}, 100, False, "%"))
    name = "gap recovered" if roles["base"] else "student / teacher"
    return [f"| **gap ({roles['teacher']} − {roles['student']}, points)** | " + " | ".join(gap) + " | |",
            f"| **{name}** | " + " | ".join(rec) + " | |"]


def _protocol_lines(table: dict[str, Any]) -> list[str]:
    head = ["Benchmark", "shots", "format", "scoring", "max tokens", "temperature", "samples", "grader"]
    lines = ["", "## How each column was measured", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in table["columns"]:
        p = c["protocol"]
        lines.append("| " + " | ".join([c["label"], p["shots"], p["format"], p["scoring"], p["max_tokens"],
                                        p["temperature"], p["samples"], p["grader"]]) + " |")
    lines.append("")
    lines.append("All generative: the model writes a reply through the chat API and the answer is read from its "
                 "text (never log-likelihood scoring of the options).")
    return lines


def _harness_lines(table: dict[str, Any]) -> list[str]:
    """GSM8K beside lm-evaluation-harness: its own filters on our generations."""
    lines: list[str] = []
    for b, h in (table.get("harness") or {}).items():
        label = next(c["label"] for c in table["columns"] if c["benchmark"] == b)
        lines += ["", f"## {label} beside lm-evaluation-harness (same generations)", ""]
        if not h.get("available"):
            lines.append(h.get("note") or "lm-eval scores unavailable")
            continue
        lines += ["| Model | distill grader | lm-eval strict-match | lm-eval flexible-extract |", "|---|---|---|---|"]
        for r in table["rows"]:
            hm = h["models"].get(r["model"])
            ours = r["scores"].get(b)
            if hm is None or ours is None:
                continue
            lines.append(f"| {r['model']} | {_pct(ours['score'], ours['stderr'])} | "
                         f"{_pct(hm['strict-match']['score'], hm['strict-match']['stderr'])} | "
                         f"{_pct(hm['flexible-extract']['score'], hm['flexible-extract']['stderr'])} |")
        rx = h.get("regexes") or {}
        lines.append("")
        lines.append(f"lm-eval {h.get('lm_eval_version')}, task `{h.get('task')}` (version {h.get('task_version')}), "
                     f"filters read from its installed `{h.get('config')}`: strict-match "
                     f"`{' '.join(rx.get('strict-match') or [])}`, flexible-extract "
                     f"`{' '.join(rx.get('flexible-extract') or [])}` (last match); exact match after removing "
                     "`,`, `$` and a trailing `.`, as its metric does. Our prompt is chat (exemplars as turns, "
                     "\"Question: ... Answer: Let's think step by step.\"); lm-eval's gsm8k_cot is plain-text "
                     "\"Q: ... A:\" unless run with `--apply_chat_template --fewshot_as_multiturn`.")
    return lines


def _price_lines(table: dict[str, Any]) -> list[str]:
    """Where each row's $ per 1M tokens comes from."""
    lines = []
    if any(r.get("usd_per_1m_basis") == "all tokens" for r in table["rows"]):
        lines.append("$ per 1M tokens: over every token the eval processed, prompt + completion, at the row's own "
                     "mix (an API row: its prompt and completion prices weighted by its token counts, list prices "
                     "in brackets; a GPU row: GPU $/hour ÷ tokens processed per hour, prefill and decode, measured "
                     "during eval), so API and self-hosted rows compare on one basis.")
    for r in table["rows"]:
        p = r.get("price") or {}
        if r["cost_basis"] == "gpu" and (r.get("tokens_per_hour") or r["output_tokens_per_hour"]):
            what = (f"{r['tokens_per_hour']:,.0f} tokens/hour (prompt + completion)" if r.get("tokens_per_hour")
                    else f"{r['output_tokens_per_hour']:,.0f} output tokens/hour")
            lines.append(f"{r['model']}: GPU $/hour ÷ {what} measured during eval.")
        elif r["cost_basis"] in ("per token", "price table"):
            src = {"openrouter": f"OpenRouter's model list ({p.get('url')}, read {p.get('fetched_at')})",
                   "config": "the config's `price:`", "table": "the built-in price table"}.get(
                p.get("source"), "the price table")
            charged = r.get("charged")
            lines.append(f"{r['model']}: $ per 1M prompt / completion tokens from {src}"
                         + (f"; the eval's spend counted {charged}" if charged and charged != "tokens x price" else "")
                         + ".")
        if not r["complete"]:
            lines.append(f"{r['model']}: **incomplete** — some requests failed or were held by the cap (†: answered "
                         "of asked); unanswered items count as wrong.")
    return lines


def _published_lines(table: dict[str, Any]) -> list[str]:
    rows = [r for r in table["rows"] if r.get("published")]
    skipped = table.get("published_skipped") or []
    if not rows:
        return [f"Published scores not shown for {', '.join(skipped)}: not evaluated yet."] if skipped else []
    lines = ["pub.: the score the model's makers published (`report.published`); Δ = measured − published, in "
             "**bold** when the published score lies outside the measured 95% interval. A published number may "
             "come from another protocol (prompt format, shots, chain of thought, sampling); ours is in the "
             "protocol note above."]
    for r in rows:
        first = next(iter(r["published"].values()))
        said = "; ".join(x for x in (first.get("source"), first.get("note")) if x)
        if said:
            lines.append(f"{r['model']}: {said}.")
    if skipped:
        lines.append(f"Published scores not shown for {', '.join(skipped)}: not evaluated yet.")
    return lines


def _protocol_footnote(table: dict[str, Any]) -> str:
    """One line: how every column was measured, the same for every row (an exception names its model)."""
    parts = []
    for c in table["columns"]:
        p = c["protocol"]
        text = (f"{c['label']}: {p.get('items', '—')} items, {p['shots']} shots, {p['format']}, max {p['max_tokens']} "
                f"tokens, temperature {p['temperature']}, {p['samples']} sample(s)")
        if p.get("sampling", "default") != "default":
            text += f", other sampling {p['sampling']}"
        if p.get("system_prompt", "none") != "none":
            text += f", own system prompt: {p['system_prompt']}"
        parts.append(text)
    keys = ("shots", "max_tokens", "temperature", "samples", "grader", "items", "sampling", "system_prompt")
    same = all(not c["protocol"].get("differs", {}).get(k) for c in table["columns"] for k in keys)
    return ("Protocol" + (", the same for every row: " if same else " (a model in parentheses ran differently): ")
            + "; ".join(parts) + ". Generative scoring (details below).")


def render_markdown(table: dict[str, Any], title: str) -> str:
    cols = table["columns"]
    head = ["Model", *[c["label"] for c in cols], "$ per 1M tokens"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        label = r["model"] + (f" ({r['role']})" if r["role"] != "other" else "")
        pub = r.get("published") or {}
        cells = [_score_cell(r["scores"][c["benchmark"]], pub.get(c["benchmark"])) for c in cols]
        lines.append("| " + " | ".join([label, *cells, _price_cell(r)]) + " |")
    lines += _paired_rows(table)
    roles = table["roles"]
    notes = ["Scores in % with their 95% interval (Wilson score interval over items).", _protocol_footnote(table),
             *_published_lines(table)]
    if roles["student"] and roles["teacher"]:
        some = next(iter((table.get("paired") or {}).values()), None)
        if some:
            g = some["gap"]
            notes.append(f"Gap rows, [low, high]: {100 * g['level']:.0f}% paired bootstrap interval over the items "
                         f"both models answered ({g['resamples']:,} resamples, seed {g['seed']}).")
        if roles["base"]:
            notes.append(f"Gap recovered = ({roles['student']} − {roles['base']}) / ({roles['teacher']} − "
                         f"{roles['base']}): the share of the teacher's lead over the undistilled student that "
                         "distillation won back.")
        else:
            notes.append(f"Without a model with `role: base` (the student before distillation) the last row is "
                         f"{roles['student']} / {roles['teacher']}.")
    notes += _price_lines(table)
    for note in notes:  # one paragraph each
        lines += ["", note]
    lines += _protocol_lines(table) + _harness_lines(table)
    return "\n".join(lines) + "\n"


def _chart_labels(table: dict[str, Any]) -> list[str]:
    """x labels: the column, and under it the gap recovered with its interval (when there is a student)."""
    roles, paired = table["roles"], table.get("paired") or {}
    name = "gap recovered" if roles["base"] else "student/teacher"
    out = []
    for c in table["columns"]:
        b = c["benchmark"]
        p = (paired.get(b) or {}).get("recovered")
        point = table["gap_recovered"][b] if roles["base"] else table["student_over_teacher"].get(b)
        text = c["label"]
        if roles["teacher"] and roles["student"]:
            text += f"\n{name}: " + (_interval(p, 100, False, "%") if p else _interval({"estimate": point}, 100,
                                                                                       False, "%"))
        out.append(text)
    return out


def render_chart(table: dict[str, Any], path: Path, title: str) -> dict[str, Any]:
    """Grouped bars: one group per benchmark, one bar per model (labelled to one decimal), error bars = 1 standard
    error; a missing score is a gap marked n/a, never a 0 bar; $/1M tokens in the legend, gap recovered under
    each group. Returns what was drawn (bar labels per model, legend, x labels) for the summary and tests."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, rows = table["columns"], table["rows"]
    width = 0.8 / max(len(rows), 1)
    drawn: dict[str, Any] = {"bars": {}, "missing": {}, "legend": []}
    fig, ax = plt.subplots(figsize=(max(6.5, 2.2 * len(cols) + 2.5), 5.0))
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(cols))]
        cells = [r["scores"][c["benchmark"]] for c in cols]
        have = [k for k, v in enumerate(cells) if v and v.get("score") is not None]
        usd = r["usd_per_1m_tokens"]
        label = f"{r['model']} ({r['role']}) · " + (f"{_usd(usd)}/1M tokens" if usd is not None else "$ n/a")
        bars = ax.bar([xs[k] for k in have], [100 * cells[k]["score"] for k in have], width,
                      yerr=[100 * (cells[k].get("stderr") or 0) for k in have], capsize=3, label=label)
        texts = [f"{100 * cells[k]['score']:.1f}" for k in have]
        for t in ax.bar_label(bars, labels=texts, fontsize=7, padding=2):
            t.set_bbox({"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
        color = bars.patches[0].get_facecolor() if bars.patches else None
        missing = [k for k in range(len(cols)) if k not in have]
        for k in missing:
            ax.text(xs[k], 1, "n/a", ha="center", va="bottom", fontsize=8, rotation=90, color=color,
                    fontweight="bold")
        drawn["bars"][r["model"]] = {cols[k]["benchmark"]: t for k, t in zip(have, texts, strict=True)}
        drawn["missing"][r["model"]] = [cols[k]["benchmark"] for k in missing]
        drawn["legend"].append(label)
    drawn["xlabels"] = _chart_labels(table)
    ax.set_xticks(range(len(cols)), drawn["xlabels"], fontsize=8)
    ax.set_xlim(-0.5, len(cols) - 0.5)  # a missing last bar still has its place
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 110)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(rows), 3), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def run_report(rcfg: ReportConfig | None, layout: RunLayout, *, pipeline: str | None = None,
               eval_models: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    """Render the table (Markdown + JSON) and the chart from stored eval results; returns report summary.

    `eval_models`: the eval config's model names, in order (the default rows); `pipeline` names the title."""
    t0 = time.monotonic()
    rcfg = rcfg or ReportConfig()
    models = _load_models(layout.eval)
    if rcfg.models is None and eval_models is not None:
        # rows: the models the eval config names (in its order), not stale dirs of models since removed
        named = [n for n in eval_models if n in models]
        models = {n: models[n] for n in named} or models
    fp = fingerprint(rcfg.model_dump(mode="json"), list(models), {n: s.get("fingerprint") for n, s in models.items()},
                     {n: s.get("finished_at") for n, s in models.items()})
    stage = Stage("report", layout.report, fp, rcfg.model_dump(mode="json"))
    if (done := stage.fresh(force)) is not None:
        return done
    table = build_table(models, rcfg, layout.eval, eval_models)
    title = rcfg.title or f"distill report: {pipeline or layout.root.name}"
    md = render_markdown(table, title)
    with stage.build() as b:
        (b.out / "report.md").write_text(md, encoding="utf-8")
        write_json(b.out / "report.json", {"title": title, **table})
        chart = render_chart(table, b.out / "chart.png", title)
        p = table["primary"]
        roles = table["roles"]

        def primary_score(role: str) -> float | None:
            if p is None or roles[role] is None:
                return None
            v = next(r for r in table["rows"] if r["model"] == roles[role])["scores"].get(p)
            return v["score"] if v else None

        b.summary.update(
            models=list(models), benchmarks=[c["benchmark"] for c in table["columns"]], roles=roles, primary=p,
            teacher_accuracy=primary_score("teacher"), student_accuracy=primary_score("student"),
            base_accuracy=primary_score("base"),
            # every model's score on the primary benchmark (e.g. the demo's answer-only student too)
            accuracies={r["model"]: (r["scores"].get(p) or {}).get("score") for r in table["rows"]} if p else {},
            student_over_teacher=table["student_over_teacher"].get(p) if p else None,
            gap_recovered=table["gap_recovered"], paired=table["paired"],
            protocol={c["benchmark"]: c["protocol"] for c in table["columns"]},
            lm_eval={name: dict(h) for name, h in table["harness"].items()},
            chart=chart, files=["report.md", "report.json", "chart.png"],
            wall_time_s=round(time.monotonic() - t0, 3),
        )
    return b.summary


def eval_rows_frame(run_root: Path) -> Any:
    """Every per-item row of every evaluated model as one pandas DataFrame (columns: model, role, benchmark, id,
    subject, correct, completion_tokens, output, reference, extracted, question, ...) — what the notebook explores."""
    import pandas as pd

    eval_dir = RunLayout(run_root).eval
    models = _load_models(eval_dir)
    frames = []
    for name, s in models.items():
        for b in s.get("benchmarks", {}):
            f = eval_dir / name / f"{b}.jsonl"
            if not f.is_file():
                continue
            df = pd.read_json(f, lines=True, dtype=False)
            if df.empty:
                continue
            df["model"], df["role"] = name, s.get("role", "other")
            df["question"] = [next((m["content"] for m in reversed(p) if m.get("role") == "user"), "")
                              if isinstance(p, list) else "" for p in df["prompt"]]
            frames.append(df)
    if not frames:
        raise InputError(f"{eval_dir}: no per-item rows (*.jsonl) to explore")
    return pd.concat(frames, ignore_index=True)
