"""The curated dataset: chat `messages`, a train/validation split by prompt id, and the dataset card."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from distill.curate.text import hash_strings


def assistant_text(answer: str, reasoning: str | None, mode: str) -> str:
    """What the student learns to say: the answer, or `<think>trace</think>` + answer (mode "think")."""
    if mode == "think" and reasoning:
        return f"<think>\n{reasoning.strip()}\n</think>\n\n{answer}"
    return answer


def add_messages(batch: dict[str, list[Any]], mode: str) -> dict[str, list[Any]]:
    msgs = []
    for prompt, ans, reasoning in zip(batch["messages"], batch["_answer"], batch["reasoning"]):
        turns = [{"role": m["role"], "content": m["content"]} for m in prompt]
        turns.append({"role": "assistant", "content": assistant_text(ans, reasoning, mode)})
        msgs.append(turns)
    return {"messages": msgs}


def validation_mask(prompt_ids: pa.Array, fraction: float, seed: int) -> np.ndarray:
    """True for rows of validation prompts: a prompt's rows all land on one side (hash of seed + prompt id)."""
    if fraction <= 0 or len(prompt_ids) == 0:
        return np.zeros(len(prompt_ids), dtype=bool)
    salted = pa.compute.binary_join_element_wise(pa.scalar(f"{seed}:"), pa.compute.cast(prompt_ids, pa.string()), "")
    h = hash_strings(salted)
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    val = u < fraction
    uniq_ids = np.unique(h)
    if len(uniq_ids) >= 2:
        if not val.any():  # keep at least one validation prompt when asked for some
            val = h == h[np.argmin(u)]
        if val.all():
            val = h != h[np.argmax(u)]
    return val


def dataset_card(summary: dict[str, Any], collect_summary: dict[str, Any]) -> str:
    """README.md for the dataset: where it came from, what was removed and why, how to load it."""
    lines = [
        "---",
        "tags: [distillation, synthetic, distill]",
        "---",
        f"# {summary.get('pipeline', 'distill')} — curated distillation dataset",
        "",
        "Teacher outputs collected through an OpenAI-compatible API and curated by `distill curate`.",
        "",
        "## Teachers",
        "",
        "| teacher | model | records in | records kept |",
        "| --- | --- | --- | --- |",
    ]
    per_teacher = summary.get("teachers", {})
    for name, row in per_teacher.items():
        lines.append(f"| {name} | {', '.join(row.get('models', [])) or '?'} | {row.get('in', 0)} | {row.get('kept', 0)} |")
    lines += [
        "",
        "## Splits",
        "",
        "| split | records | prompts |",
        "| --- | --- | --- |",
    ]
    for split, row in summary["splits"].items():
        lines.append(f"| {split} | {row['records']} | {row['prompts']} |")
    lines += [
        "",
        "Split by prompt id: no prompt appears in both splits.",
        "",
        "## Filters (in order)",
        "",
        f"{summary['records_in']} records in, {summary['records_out']} out.",
        "",
        "| filter | removed | notes |",
        "| --- | --- | --- |",
    ]
    for name, f in summary["filters"].items():
        if not f.get("enabled", True):
            lines.append(f"| {name} | — | disabled |")
            continue
        note = f.get("note", "")
        lines.append(f"| {name} | {f['removed']} | {note} |")
    dc = summary["filters"].get("decontam", {})
    if dc.get("enabled") and dc.get("per_benchmark"):
        lines += ["", "## Decontamination", "",
                  f"Records sharing a {dc.get('ngram')}-word n-gram (case and punctuation ignored) with a benchmark "
                  "item were removed:", "", "| benchmark | items checked | records removed |", "| --- | --- | --- |"]
        for b, row in dc["per_benchmark"].items():
            lines.append(f"| {b} | {row['items']} | {row['removed']} |")
    lines += [
        "",
        "## Columns",
        "",
        "`messages` is the full conversation (prompt turns + the teacher's assistant turn). Provenance is kept: "
        "`id`, `prompt_id`, `sample_index`, `teacher`, `model`, `raw_completion` (the teacher's text as returned), `reasoning`, `finish_reason`, token "
        "counts, `cost_usd`, `reference`, `metadata`, `verification` (correct | unverifiable), "
        "`assistant_tokens` (" + summary.get("token_count_method", "") + ").",
        "",
        "## Load",
        "",
        "```python",
        "from datasets import load_from_disk",
        "ds = load_from_disk('dataset')  # DatasetDict: train, validation",
        "```",
        "",
        "Config this dataset was built with:",
        "",
        "```json",
        json.dumps(summary.get("config", {}), indent=2),
        "```",
        "",
    ]
    if collect_summary.get("cost_usd") is not None:
        lines.insert(8, f"Collection cost: ${collect_summary['cost_usd']:.4f} over {collect_summary.get('records', '?')} records.\n")
    return "\n".join(lines)
