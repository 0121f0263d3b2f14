"""report: the one table — Model | each benchmark | $/1M tokens — plus the share of the teacher's lead recovered.

"gap recovered" = (student - base) / (teacher - base) per benchmark, with the roles taken from the eval config
(`role: teacher | student | base`). Reads runs/<name>/eval/*/summary.json only, so it re-renders from stored
results without touching a model. Output: runs/<name>/report/{report.md, report.json, chart.png, summary.json}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from distill.errors import InputError
from distill.progress import console
from distill.rundir import base_summary, fingerprint, is_fresh, read_summary, require_stage, stage_output, write_json
from distill.schema import Section

PRETTY = {"gsm8k": "GSM8K", "mmlu": "MMLU", "humaneval": "HumanEval"}


class ReportConfig(Section):
    title: str | None = Field(default=None, description="report heading; default: 'distill report: <name>'")
    benchmarks: list[str] | None = Field(default=None, description="columns, in order; default: all evaluated")
    models: list[str] | None = Field(default=None, description="rows, in order; default: all evaluated")
    primary: str | None = Field(default=None, description="benchmark behind summary's teacher_accuracy / "
                                "student_accuracy / student_over_teacher; default: the first column")


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


def build_table(models: dict[str, dict[str, Any]], rcfg: ReportConfig) -> dict[str, Any]:
    """The report as data: rows (one per model), columns (benchmarks), gaps, and the primary-benchmark ratios."""
    if rcfg.models:
        unknown = [m for m in rcfg.models if m not in models]
        if unknown:
            raise InputError(f"report.models: {', '.join(unknown)} not evaluated (have: {', '.join(models)})")
        models = {m: models[m] for m in rcfg.models}
    benches: list[str] = []
    for s in models.values():
        benches += [b for b in s.get("benchmarks", {}) if b not in benches]
    if rcfg.benchmarks:
        unknown = [b for b in rcfg.benchmarks if b not in benches]
        if unknown:
            raise InputError(f"report.benchmarks: {', '.join(unknown)} not evaluated (have: {', '.join(benches)})")
        benches = list(rcfg.benchmarks)
    info = {b: next(s["benchmarks"][b] for s in models.values() if b in s.get("benchmarks", {})) for b in benches}
    columns = [{"benchmark": b, "label": column_label(b, info[b]), "metric": info[b].get("metric")} for b in benches]
    rows = []
    for name, s in models.items():
        cost = s.get("cost") or {}
        scores = {}
        for b in benches:
            v = (s.get("benchmarks") or {}).get(b)
            scores[b] = None if v is None else {"score": v.get("score"), "stderr": v.get("stderr"),
                                                "items": v.get("items"), "failed": v.get("failed", 0)}
        rows.append({"model": name, "role": s.get("role", "other"), "scores": scores,
                     "usd_per_1m_tokens": cost.get("usd_per_1m_output_tokens"), "cost_basis": cost.get("basis"),
                     "output_tokens_per_hour": cost.get("output_tokens_per_hour"),
                     "complete": s.get("complete", True)})
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
    return {"columns": columns, "rows": rows, "roles": roles, "gap_recovered": gaps, "student_over_teacher": ratio,
            "primary": primary}


def render_markdown(table: dict[str, Any], title: str) -> str:
    cols = table["columns"]
    head = ["Model", *[c["label"] for c in cols], "$/1M tokens"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        label = r["model"] + (f" ({r['role']})" if r["role"] != "other" else "")
        cells = [_pct(*(lambda v: (v["score"], v["stderr"]) if v else (None, None))(r["scores"][c["benchmark"]]))
                 for c in cols]
        lines.append("| " + " | ".join([label, *cells, _usd(r["usd_per_1m_tokens"])]) + " |")
    roles = table["roles"]
    if roles["student"] and roles["teacher"]:
        gap_cells = [("—" if table["gap_recovered"][c["benchmark"]] is None
                      else f"{100 * table['gap_recovered'][c['benchmark']]:.0f}%") for c in cols]
        lines.append("| **gap recovered** | " + " | ".join(gap_cells) + " | |")
    lines += ["", "Scores in % ± one standard error over items."]
    if roles["student"] and roles["teacher"]:
        if roles["base"]:
            lines.append(f"Gap recovered = ({roles['student']} − {roles['base']}) / ({roles['teacher']} − "
                         f"{roles['base']}): the share of the teacher's lead over the undistilled student that "
                         "distillation won back.")
        else:
            lines.append("Gap recovered needs a model with `role: base` (the student before distillation).")
    for r in table["rows"]:
        if r["cost_basis"] == "gpu" and r["output_tokens_per_hour"]:
            lines.append(f"{r['model']}: $/1M = GPU $/hour ÷ {r['output_tokens_per_hour']:,.0f} output tokens/hour "
                         "measured during eval.")
        elif r["cost_basis"] == "price table":
            lines.append(f"{r['model']}: $/1M output tokens from the price table.")
        if not r["complete"]:
            lines.append(f"{r['model']}: **incomplete** — some requests failed; failed items count as wrong.")
    return "\n".join(lines) + "\n"


def render_chart(table: dict[str, Any], path: Path, title: str) -> None:
    """Grouped bars: one group per benchmark, one bar per model, error bars = 1 standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols, rows = table["columns"], table["rows"]
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(cols) + 2), 4.5))
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(cols))]
        vals = [100 * (r["scores"][c["benchmark"]] or {}).get("score", 0) if r["scores"][c["benchmark"]] and
                r["scores"][c["benchmark"]]["score"] is not None else 0.0 for c in cols]
        errs = [100 * ((r["scores"][c["benchmark"]] or {}).get("stderr") or 0) for c in cols]
        bars = ax.bar(xs, vals, width, yerr=errs, capsize=3, label=f"{r['model']} ({r['role']})")
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    ax.set_xticks(range(len(cols)), [c["label"] for c in cols], rotation=0)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_report(cfg: Any, run_root: Path, *, force: bool = False) -> dict[str, Any]:
    """Render the table (Markdown + JSON) and the chart from stored eval results; returns report summary."""
    t0 = time.monotonic()
    rcfg: ReportConfig = getattr(cfg, "report", None) or ReportConfig()
    run_root = Path(run_root)
    models = _load_models(run_root / "eval")
    ecfg = getattr(cfg, "eval", None)
    if rcfg.models is None and ecfg is not None:
        # rows: the models the eval config names (in its order), not stale dirs of models since removed
        named = [m.name for m in ecfg.models if m.name in models]
        models = {n: models[n] for n in named} or models
    fp = fingerprint(rcfg.model_dump(mode="json"), list(models), {n: s.get("fingerprint") for n, s in models.items()},
                     {n: s.get("finished_at") for n, s in models.items()})
    stage_dir = run_root / "report"
    if not force and is_fresh(stage_dir, fp):
        console.print(f"report: up to date in {stage_dir} (use --force to re-run)")
        return json.loads((stage_dir / "summary.json").read_text())
    table = build_table(models, rcfg)
    title = rcfg.title or f"distill report: {getattr(cfg, 'name', run_root.name)}"
    md = render_markdown(table, title)
    with stage_output(stage_dir) as out:
        (out / "report.md").write_text(md, encoding="utf-8")
        write_json(out / "report.json", {"title": title, **table})
        render_chart(table, out / "chart.png", title)
        p = table["primary"]
        roles = table["roles"]

        def primary_score(role: str) -> float | None:
            if p is None or roles[role] is None:
                return None
            v = next(r for r in table["rows"] if r["model"] == roles[role])["scores"].get(p)
            return v["score"] if v else None

        summary = base_summary("report", fp, rcfg.model_dump(mode="json"))
        summary.update(
            models=list(models), benchmarks=[c["benchmark"] for c in table["columns"]], roles=roles, primary=p,
            teacher_accuracy=primary_score("teacher"), student_accuracy=primary_score("student"),
            base_accuracy=primary_score("base"),
            # every model's score on the primary benchmark (e.g. the demo's answer-only student too)
            accuracies={r["model"]: (r["scores"].get(p) or {}).get("score") for r in table["rows"]} if p else {},
            student_over_teacher=table["student_over_teacher"].get(p) if p else None,
            gap_recovered=table["gap_recovered"], files=["report.md", "report.json", "chart.png"],
            wall_time_s=round(time.monotonic() - t0, 3),
        )
        write_json(out / "summary.json", summary)
    return summary


def eval_rows_frame(run_root: Path) -> Any:
    """Every per-item row of every evaluated model as one pandas DataFrame (columns: model, role, benchmark, id,
    subject, correct, completion_tokens, output, reference, extracted, question, ...) — what the notebook explores."""
    import pandas as pd

    eval_dir = Path(run_root) / "eval"
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
