"""The curated dataset: chat `messages`, a train/validation split by prompt id, per-teacher counts, the card."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill.curate.text import hash_strings


def assistant_text(answer: str, reasoning: str | None, mode: str) -> str:
    """What the student learns to say: the answer, or `<think>trace</think>` + answer (mode "think")."""
    if mode == "think" and reasoning:
        return f"<think>\n{reasoning.strip()}\n</think>\n\n{answer}"
    return answer


def with_assistant_turn(messages: pa.ChunkedArray, answers: pa.ChunkedArray, reasoning: pa.ChunkedArray,
                        mode: str) -> pa.Array:
    """Each row's prompt messages + {"role": "assistant", "content": ...}, built in Arrow (no per-row Python).

    mode "field": the trace goes into the assistant message's `reasoning_content` (null on other turns), for
    student chat templates that render that field themselves."""
    prompts = messages.combine_chunks()
    if mode == "field":
        values = prompts.values if prompts.offset == 0 else prompts.flatten()
        if "reasoning_content" not in [f.name for f in values.type]:
            ext = pa.StructArray.from_arrays(
                [values.field(i) for i in range(values.type.num_fields)] + [pa.nulls(len(values), pa.string())],
                fields=[*values.type, pa.field("reasoning_content", pa.string())])
            offsets = prompts.offsets if prompts.offset == 0 else pc.subtract(prompts.offsets, prompts.offsets[0])
            prompts = pa.ListArray.from_arrays(offsets, ext)
    answers = pc.fill_null(answers.combine_chunks().cast(pa.string()), "")
    text = answers
    if mode == "think":
        trace = reasoning.combine_chunks().cast(pa.string())
        has = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(trace)), 0), False)
        joined = pc.binary_join_element_wise("<think>\n", pc.utf8_trim_whitespace(pc.fill_null(trace, "")),
                                             "\n</think>\n\n", answers, "")
        text = pc.if_else(has, joined, answers)
    values = prompts.values if prompts.offset == 0 else prompts.flatten()
    offsets = prompts.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    n = len(prompts)
    fields = []
    for f in values.type:
        if f.name == "role":
            fields.append(pa.array(["assistant"] * n, type=f.type))
        elif f.name == "content":
            fields.append(text.cast(f.type))
        elif f.name == "reasoning_content" and mode == "field":
            trace = pc.utf8_trim_whitespace(reasoning.combine_chunks().cast(pa.string()))
            fields.append(pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(trace), 0), False), trace,
                                     pa.nulls(n, pa.string())).cast(f.type))
        else:
            fields.append(pa.nulls(n, type=f.type))
    turns = pa.StructArray.from_arrays(fields, fields=list(values.type))
    pool = pa.concat_arrays([values.slice(0, int(offsets[-1])), turns])
    lengths = np.diff(offsets) + 1
    new_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_off[1:])
    pos = np.arange(int(new_off[-1])) - np.repeat(new_off[:-1], lengths)  # position within the new row
    row = np.repeat(np.arange(n), lengths)
    last = pos == lengths[row] - 1
    take = np.where(last, offsets[-1] + row, offsets[:-1][row] + pos)
    return pa.ListArray.from_arrays(pa.array(new_off.astype(np.int32)), pool.take(pa.array(take)))


def validation_mask(prompt_ids: pa.Array, fraction: float, seed: int) -> np.ndarray:
    """True for rows of validation prompts: a prompt's rows all land on one side (hash of seed + prompt id)."""
    if fraction <= 0 or len(prompt_ids) == 0:
        return np.zeros(len(prompt_ids), dtype=bool)
    salted = pc.binary_join_element_wise(pa.scalar(f"{seed}:"), pc.cast(prompt_ids, pa.string()), "")
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


SHARD_ROWS = 200_000  # kept rows built and written per piece: the dataset is never whole in memory


def build_piece(prepared: pa.Table, idx: np.ndarray, verification: np.ndarray, cfg: Any,
                columns: dict[str, tuple[np.ndarray, pa.DataType]] | None = None) -> pa.Table:
    """The final rows for kept rows `idx`: pure Arrow (take, append the assistant turn), no per-row Python;
    `columns`: per-row values steps added (index = row position), kept rows' appended."""
    table = prepared.take(pa.array(idx))
    table = table.set_column(table.schema.get_field_index("messages"), "messages",
                             with_assistant_turn(table.column("messages"), table.column("_answer"),
                                                 table.column("reasoning"), cfg.reasoning))
    table = table.drop_columns([c for c in table.column_names if c.startswith("_")])
    # TRL reads a `completion` column as prompt-completion data and would ignore `messages`: keep it under a name
    # SFTTrainer does not claim, so the dataset feeds it unchanged
    table = table.rename_columns(["raw_completion" if c == "completion" else c for c in table.column_names])
    table = table.append_column("verification", pa.array(verification[idx].tolist(), type=pa.string()))
    for name, (values, typ) in (columns or {}).items():  # added by steps (the judge's score and reasoning)
        kept = values[idx]
        table = table.append_column(name, pa.array(kept, type=typ, from_pandas=kept.dtype.kind == "f"))
    return table


def write_dataset(prepared: pa.Table, idx: np.ndarray, verification: np.ndarray, cfg: Any, out: Path,
                  columns: dict[str, tuple[np.ndarray, pa.DataType]] | None = None) -> Any:
    """Build the kept rows `SHARD_ROWS` at a time into Arrow files under `out/pieces`, then save them as a
    `DatasetDict` (train/validation) at `out/dataset` from the memory-mapped pieces; returns it (memory-mapped)."""
    import shutil

    from datasets import Dataset, DatasetDict, concatenate_datasets

    # the split is decided over all kept prompt ids at once (a prompt's rows all land on one side)
    val = validation_mask(prepared.column("prompt_id").take(pa.array(idx)).combine_chunks(),
                          cfg.validation_fraction, cfg.seed)
    pieces_dir = out / "pieces"
    pieces_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {"train": [], "validation": []}
    schema = None
    for i, s in enumerate(range(0, max(len(idx), 1), SHARD_ROWS)):
        table = build_piece(prepared, idx[s : s + SHARD_ROWS], verification, cfg, columns)
        schema = schema or table.schema
        part_val = val[s : s + SHARD_ROWS]
        for split, mask in (("train", ~part_val), ("validation", part_val)):
            path = pieces_dir / f"{split}-{i:05d}.arrow"
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as w:
                w.write_table(table.filter(pa.array(mask)).cast(schema))
            files[split].append(path)
    parts = {k: concatenate_datasets([Dataset.from_file(str(f)) for f in fs]) for k, fs in files.items()}
    # an empty split saved with 0 shards cannot be loaded back (datasets 5.2): give every split a shard
    DatasetDict(parts).save_to_disk(str(out / "dataset"),
                                    num_shards={k: 1 for k, v in parts.items() if len(v) == 0} or None)
    del parts
    shutil.rmtree(pieces_dir)
    from datasets import load_from_disk

    return load_from_disk(str(out / "dataset"))


def split_counts(dd: Any) -> dict[str, dict[str, int]]:
    """Records and distinct prompts per split."""
    return {k: {"records": len(v), "prompts": pc.count_distinct(v.data.column("prompt_id")).as_py()}
            for k, v in dd.items()}


def teacher_table(records: pa.Table, final: pa.Table) -> dict[str, dict[str, Any]]:
    """Per teacher: records in, records kept (`final`: the kept rows, at least their `teacher` column), the models
    it answered with."""

    def counts(t: pa.Table) -> dict[str, int]:
        vc = pc.value_counts(pc.fill_null(t.column("teacher").combine_chunks().cast(pa.string()), "?"))
        return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}

    cin, cout = counts(records), counts(final)
    models: dict[str, list[str]] = {}
    for row in records.select(["teacher", "model"]).group_by(["teacher", "model"]).aggregate([]).to_pylist():
        models.setdefault(str(row["teacher"] or "?"), []).append(str(row["model"]))
    return {t: {"in": n, "kept": cout.get(t, 0), "models": sorted(models.get(t, []))} for t, n in cin.items()}


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
        *_card_counts(summary),
        *_card_filters(summary),
        *_card_usage(summary),
    ]
    if collect_summary.get("cost_usd") is not None:
        lines.insert(8, f"Collection cost: ${collect_summary['cost_usd']:.4f} over {collect_summary.get('records', '?')} records.\n")
    return "\n".join(lines)


def _card_counts(summary: dict[str, Any]) -> list[str]:
    lines = ["## Teachers", "", "| teacher | model | records in | records kept |", "| --- | --- | --- | --- |"]
    for name, row in summary.get("teachers", {}).items():
        lines.append(f"| {name} | {', '.join(row.get('models', [])) or '?'} | {row.get('in', 0)} | {row.get('kept', 0)} |")
    lines += ["", "## Splits", "", "| split | records | prompts |", "| --- | --- | --- |"]
    for split, row in summary["splits"].items():
        lines.append(f"| {split} | {row['records']} | {row['prompts']} |")
    return lines + ["", "Split by prompt id: no prompt appears in both splits."]


def _card_filters(summary: dict[str, Any]) -> list[str]:
    """Every step in run order (summary.json's `filters` follows the curate table), then decontamination."""
    lines = ["", "## Filters (in order)", "", f"{summary['records_in']} records in, {summary['records_out']} out.", "",
             "| filter | removed | notes |", "| --- | --- | --- |"]
    for name, f in summary["filters"].items():
        if not f.get("enabled", True):
            lines.append(f"| {name} | — | disabled |")
            continue
        lines.append(f"| {name} | {f['removed']} | {f.get('note', '')} |")
    dc = summary["filters"].get("decontam", {})
    if dc.get("enabled") and dc.get("per_benchmark"):
        lines += ["", "## Decontamination", "",
                  f"Records sharing a {dc.get('ngram')}-word n-gram (case and punctuation ignored) with a benchmark "
                  "item were removed:", "", "| benchmark | items checked | records removed |", "| --- | --- | --- |"]
        for b, row in dc["per_benchmark"].items():
            lines.append(f"| {b} | {row['items']} | {row['removed']} |")
    return lines


def _card_usage(summary: dict[str, Any]) -> list[str]:
    return [
        "",
        "## Columns",
        "",
        "`messages` is the full conversation (prompt turns + the teacher's assistant turn). Provenance is kept: "
        "`id`, `prompt_id`, `sample_index`, `teacher`, `model`, `raw_completion` (the teacher's text as returned), `reasoning`, `finish_reason`, token "
        "counts, `cost_usd`, `reference`, `metadata`, `verification` (correct | unverifiable), "
        + ("`judge_score` and `judge_reasoning` (the judge's verdict), "
           if (summary.get("filters") or {}).get("judge", {}).get("enabled") else "") +
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
