"""curate: a collect run -> a filtered, verified, deduplicated, decontaminated `DatasetDict` ready for SFT.

Order: per-record filters (errors, finish_reason, empty, refusal, length, repetition, language) -> verification
and rejection sampling -> exact dedup -> near-dup (MinHash LSH) -> decontamination -> messages + split by
prompt id. Records stay in Arrow throughout (`datasets.map` with `num_proc`; numpy masks over row indices), so
a million records never become Python lists. Each step's count and up to 3 examples go to summary.json; a step
that would leave nothing is an error naming it.

Output (`<run_dir>/curate/`): `dataset/` (`DatasetDict.save_to_disk`: train, validation), `README.md` (dataset
card), `summary.json`. Load it with `load_curated(stage_dir)`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distill.answers import strip_reasoning
from distill.curate.build import assistant_text, dataset_card, validation_mask, with_assistant_turn
from distill.curate.config import CurateConfig
from distill.curate.dedup import exact_keys, first_occurrence, near_duplicates
from distill.curate.decontam import build_index, find_hits, load_benchmark_texts, matched_text
from distill.curate.filters import record_filters
from distill.curate.verify import CORRECT, INCORRECT, UNVERIFIABLE, rejection_sample, verify_batch
from distill.errors import ConfigError, InputError
from distill.progress import console, make_progress
from distill.rundir import base_summary, file_fingerprint, fingerprint, is_fresh, require_stage, stage_output, write_json

__all__ = ["CurateConfig", "load_curated", "run_curate"]

REQUIRED = ["id", "prompt_id", "messages", "completion"]
OPTIONAL_NULL = ["reasoning", "reasoning_status", "reference", "metadata", "teacher", "model", "finish_reason", "sample_index"]
_HELPERS = ["_answer", "_prompt_text", "_prompt_tokens", "_trace_tokens"]
_EXAMPLES = 3
_BATCH = 50_000


def load_curated(stage_dir: str | Path) -> Any:
    """The curated `DatasetDict` (train, validation) of a finished curate stage."""
    from datasets import load_from_disk

    stage_dir = Path(stage_dir)
    require_stage(stage_dir, "curate")
    return load_from_disk(str(stage_dir / "dataset"))


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    """The prompt as text for dedup/decontam: user (and earlier assistant) turns; the shared system prompt is left
    out so it cannot make unrelated prompts look alike."""
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "system")


class _Counter:
    """Token counts: the student's tokenizer when configured, else a chars/4 estimate (said in summary.json)."""

    def __init__(self, path: str | None):
        self.path = path
        self.tok = None
        if path:
            if not Path(path).is_dir():
                raise ConfigError(f"curate.student_tokenizer: {path!r} is not a local tokenizer directory")
            from transformers import AutoTokenizer

            try:
                self.tok = AutoTokenizer.from_pretrained(path)
            except (OSError, ValueError) as err:
                raise ConfigError(f"curate.student_tokenizer: cannot load a tokenizer from {path!r} ({err})") from None

    @property
    def method(self) -> str:
        return f"student tokenizer ({self.path})" if self.tok is not None else "estimate: ceil(chars / 4)"

    def __call__(self, texts: list[str]) -> list[int]:
        if self.tok is None:
            return [math.ceil(len(t) / 4) for t in texts]
        return [len(ids) for ids in self.tok(texts, add_special_tokens=False)["input_ids"]]


def _prepare(batch: dict[str, list[Any]], filters: list[tuple[str, Any]], counter: _Counter, mode: str) -> dict[str, Any]:
    answers = [strip_reasoning(c) if c is not None else "" for c in batch["completion"]]
    prompts = [_prompt_text(m or []) for m in batch["messages"]]
    out: dict[str, Any] = {"_answer": answers, "_prompt_text": prompts}
    # in field mode the trace sits in its own key, but it is trained on all the same: count and dedup it
    seen = "think" if mode == "field" else mode
    assistant = [assistant_text(a, r, seen) for a, r in zip(answers, batch["reasoning"])]
    out["assistant_tokens"] = counter(assistant)
    if mode != "drop":  # the trace is trained on too, so dedup and decontamination must see it
        out["_assistant"] = assistant
    out["_prompt_tokens"] = counter(prompts)
    out["_trace_tokens"] = counter([r or "" for r in batch["reasoning"]])
    view = {**batch, **out}
    for name, fn in filters:
        out[f"_keep_{name}"] = fn(view).tolist()
    return out


def _verify_map(batch: dict[str, list[Any]], cfg: Any) -> dict[str, list[str]]:
    return {"_v": verify_batch(batch, cfg)}


def _snippet(text: Any, n: int = 240) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[:n] + "…"


def _examples(ds: Any, rows: np.ndarray, extra: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    out = []
    for r in rows[:_EXAMPLES].tolist():
        row = ds[int(r)]
        ex = {"id": row["id"], "prompt_id": row["prompt_id"], "teacher": row.get("teacher"),
              "prompt": _snippet(row["_prompt_text"]), "answer": _snippet(row["_answer"])}
        if row.get("finish_reason") is not None:
            ex["finish_reason"] = row["finish_reason"]
        ex.update((extra or {}).get(int(r), {}))
        out.append(ex)
    return out


class _Pipeline:
    """Keeps the `alive` mask over the prepared dataset and accounts for every removal."""

    def __init__(self, ds: Any):
        self.ds = ds
        self.alive = np.ones(len(ds), dtype=bool)
        self.filters: dict[str, dict[str, Any]] = {}

    def disabled(self, name: str) -> None:
        self.filters[name] = {"enabled": False, "removed": 0}

    def apply(self, name: str, keep_rows: np.ndarray, *, extra: dict[int, dict[str, Any]] | None = None,
              **info: Any) -> None:
        """`keep_rows`: mask over all rows (only alive rows matter)."""
        removed = np.flatnonzero(self.alive & ~keep_rows)
        before = int(self.alive.sum())
        self.filters[name] = {"enabled": True, "removed": int(len(removed)), **info,
                              "examples": _examples(self.ds, removed, extra)}
        if len(removed) == before and before > 0:
            raise InputError(f"curate: filter `{name}` removed all {before} remaining records "
                             f"({len(self.alive)} in); nothing would be left to train on — check curate.{name} "
                             f"settings (or switch it off with `enabled: false`) and the collect output")
        self.alive &= keep_rows
        console.print(f"curate: {name}: removed {len(removed)}, {before - len(removed)} left")

    @property
    def idx(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    def texts(self, on: str, rows: np.ndarray) -> Any:
        """Arrow texts (prompt, answer, or both) of `rows`, in slices of _BATCH; the answer is the trained
        assistant text (with the trace when reasoning: think)."""
        table = self.ds.data
        answer = "_assistant" if "_assistant" in table.column_names else "_answer"
        for s in range(0, len(rows), _BATCH):
            take = pa.array(rows[s : s + _BATCH])
            if on == "prompt":
                yield table.column("_prompt_text").take(take).combine_chunks()
            elif on == "completion":
                yield table.column(answer).take(take).combine_chunks()
            else:
                p = table.column("_prompt_text").take(take).combine_chunks()
                a = table.column(answer).take(take).combine_chunks()
                yield pc.binary_join_element_wise(p, a, "\n")


def _check_columns(ds: Any, in_dir: Path, cfg: CurateConfig) -> Any:
    cols = set(ds.column_names)
    need = list(REQUIRED)
    if cfg.finish_reason.enabled:
        need.append("finish_reason")
    if cfg.verify.enabled:
        need.append("reference")
    missing = [c for c in need if c not in cols]
    if missing:
        raise InputError(f"{in_dir}: records lack column(s) {', '.join(missing)} needed by curate "
                         f"(found: {', '.join(sorted(cols))})")
    for c in OPTIONAL_NULL:
        if c not in cols:
            ds = ds.add_column(c, [None] * len(ds))
    return ds


def _refuse_partial_traces(records: Any, in_dir: Path, cfg: CurateConfig) -> None:
    """Reasoning-SFT data from summarized or redacted traces teaches the student a summary (or nothing) as if it
    were the reasoning: refused unless the config says so."""
    if cfg.reasoning == "drop" or cfg.allow_partial_traces:
        return
    status = records.data.column("reasoning_status")
    partial = {s: int(pc.sum(pc.equal(status, s)).as_py() or 0) for s in ("summarized", "redacted")}
    if any(partial.values()):
        what = ", ".join(f"{n} {s}" for s, n in partial.items() if n)
        raise InputError(
            f"{in_dir}: {what} reasoning traces (reasoning_status); curate.reasoning: {cfg.reasoning} would train the "
            "student on them as if they were the teacher's reasoning. Set curate.reasoning: drop (answer-only), or "
            "curate.allow_partial_traces: true to use them anyway")


def _fingerprint(cfg: CurateConfig, in_dir: Path, collect_summary: dict[str, Any]) -> str:
    parts: list[Any] = [cfg.model_dump(mode="json"), collect_summary.get("fingerprint"), file_fingerprint(in_dir)]
    if cfg.decontam.enabled:
        for ref in cfg.decontam.benchmarks:
            if ref.source and Path(ref.source).exists():
                parts.append(file_fingerprint(Path(ref.source)))
    if cfg.student_tokenizer and Path(cfg.student_tokenizer).exists():
        parts.append(file_fingerprint(Path(cfg.student_tokenizer)))
    return fingerprint(*parts)


def run_curate(cfg: CurateConfig, in_dir: str | Path, stage_dir: str | Path, *, force: bool = False,
               pipeline: str = "distill") -> dict[str, Any]:
    """Run the curate stage on a collect run dir; returns its summary (also in stage_dir/summary.json)."""
    from datasets import Dataset, DatasetDict
    from datasets.table import InMemoryTable

    from distill.collect import load_records

    t_start = time.monotonic()
    in_dir, stage_dir = Path(in_dir), Path(stage_dir)
    collect_summary = require_stage(in_dir, "collect")
    fp = _fingerprint(cfg, in_dir, collect_summary)
    if not force and is_fresh(stage_dir, fp):
        console.print(f"curate: up to date in {stage_dir} (use --force to re-run)")
        return json.loads((stage_dir / "summary.json").read_text())
    timings: dict[str, float] = {}
    records = _check_columns(load_records(in_dir), in_dir, cfg)
    n_in = len(records)
    if n_in == 0:
        raise InputError(f"{in_dir}: the collect run has no records to curate")
    _refuse_partial_traces(records, in_dir, cfg)
    num_proc = cfg.num_proc if (cfg.num_proc > 1 and n_in >= 20_000) else None
    counter = _Counter(cfg.student_tokenizer)
    filters = record_filters(cfg)

    t = time.monotonic()
    console.print(f"curate: {n_in} records from {in_dir}")
    ds = records.map(_prepare, batched=True, batch_size=1000, num_proc=num_proc,
                     fn_kwargs={"filters": filters, "counter": counter, "mode": cfg.reasoning},
                     desc="curate: per-record filters")
    timings["record_filters_s"] = time.monotonic() - t
    pipe = _Pipeline(ds)
    enabled = {name for name, _ in filters}
    for name in ("errors", "finish_reason", "trace", "empty", "refusal", "length", "repetition", "language"):
        if name not in enabled:
            pipe.disabled(name)
            continue
        keep = ds.data.column(f"_keep_{name}").to_numpy(zero_copy_only=False).astype(bool)
        info: dict[str, Any] = {}
        if name == "finish_reason":
            removed = pipe.alive & ~keep
            vals = ds.data.column("finish_reason").take(pa.array(np.flatnonzero(removed))).to_pylist()
            info["by_reason"] = {str(k): vals.count(k) for k in sorted(set(vals), key=str)}
        if name == "length":
            info["token_count_method"] = counter.method
        pipe.apply(name, keep, **info)

    # verification + rejection sampling
    if cfg.verify.enabled:
        t = time.monotonic()
        idx = pipe.idx
        sub = ds.select(idx)
        status_ds = sub.map(_verify_map, batched=True, batch_size=256, num_proc=num_proc,
                            fn_kwargs={"cfg": cfg.verify}, remove_columns=sub.column_names,
                            desc="curate: verify answers")
        status = np.full(len(ds), UNVERIFIABLE, dtype=object)
        status[idx] = np.asarray(status_ds.data.column("_v").to_pylist(), dtype=object)
        verification = status
        counts = {k: int((status[idx] == k).sum()) for k in (CORRECT, INCORRECT, UNVERIFIABLE)}
        codes = np.asarray(pc.dictionary_encode(ds.data.column("prompt_id").combine_chunks()).indices)
        lengths = np.asarray(pc.utf8_length(ds.data.column("_answer").combine_chunks()).to_numpy(zero_copy_only=False))
        keep_correct = status != INCORRECT
        pipe.apply("verify", keep_correct | ~pipe.alive, counts=counts,
                   note=f"{counts[CORRECT]} correct, {counts[INCORRECT]} incorrect, {counts[UNVERIFIABLE]} unverifiable",
                   extra={int(r): {"reference": _snippet(ds[int(r)]["reference"], 80)} for r in
                          np.flatnonzero(pipe.alive & (status == INCORRECT))[:_EXAMPLES]})
        alive_status = np.where(pipe.alive, status, "dead")
        keep_rs = rejection_sample(codes, alive_status, lengths, cfg.verify.keep, cfg.verify.drop_unverifiable)
        pipe.apply("rejection_sampling", keep_rs, policy=cfg.verify.keep,
                   note=f"keep {cfg.verify.keep} correct per prompt" + (
                       "; unverifiable dropped" if cfg.verify.drop_unverifiable else ""))
        timings["verify_s"] = time.monotonic() - t
    else:
        verification = np.full(len(ds), UNVERIFIABLE, dtype=object)
        pipe.disabled("verify")
        pipe.disabled("rejection_sampling")

    # exact dedup
    if cfg.exact_dedup.enabled:
        t = time.monotonic()
        idx = pipe.idx
        keys = np.concatenate([exact_keys(a) for a in pipe.texts(cfg.exact_dedup.on, idx)]) if len(idx) else np.zeros(0, np.uint64)
        keep_local, rep = first_occurrence(keys)
        keep = np.ones(len(ds), dtype=bool)
        keep[idx] = keep_local
        ids_col = ds.data.column("id")
        extra = {int(idx[i]): {"duplicate_of": ids_col[int(idx[rep[i]])].as_py()} for i in np.flatnonzero(~keep_local)[:_EXAMPLES]}
        pipe.apply("exact_dedup", keep, extra=extra, on=cfg.exact_dedup.on)
        timings["exact_dedup_s"] = time.monotonic() - t
    else:
        pipe.disabled("exact_dedup")

    # near-duplicates
    if cfg.near_dedup.enabled:
        t = time.monotonic()
        nd = cfg.near_dedup
        idx = pipe.idx
        with make_progress(cfg.progress) as progress:
            task = progress.add_task("curate: near-dup sign + index", total=len(idx), stats="")
            res = near_duplicates(lambda: pipe.texts(nd.on, idx), len(idx), ngram=nd.ngram, num_perm=nd.num_perm,
                                  threshold=nd.threshold, bands=nd.bands, rows=nd.rows, seed=nd.seed,
                                  on_progress=lambda k: progress.advance(task, k))
        keep = np.ones(len(ds), dtype=bool)
        keep[idx] = res.keep
        ids_col = ds.data.column("id")
        extra = {int(idx[i]): {"duplicate_of": ids_col[int(idx[res.rep[i]])].as_py()}
                 for i in np.flatnonzero(~res.keep)[:_EXAMPLES]}
        pipe.apply("near_dedup", keep, extra=extra, on=nd.on, bands=res.bands, rows=res.rows,
                   threshold=nd.threshold, ngram=nd.ngram, candidate_pairs=res.candidate_pairs,
                   verified_pairs=res.verified_pairs, note=f"MinHash LSH {res.bands}x{res.rows}, Jaccard >= {nd.threshold}")
        timings["near_dedup_s"] = time.monotonic() - t
    else:
        pipe.disabled("near_dedup")

    # decontamination
    if cfg.decontam.enabled and cfg.decontam.benchmarks:
        t = time.monotonic()
        dc = cfg.decontam
        index = build_index(load_benchmark_texts(dc), dc.ngram, dc.min_words)
        idx = pipe.idx
        bench = np.full(len(ds), -1, dtype=np.int32)
        pos = np.full(len(ds), -1, dtype=np.int64)
        glen = np.zeros(len(ds), dtype=np.int32)
        start = 0
        texts_of = {}
        for arr in pipe.texts(dc.on, idx):
            b, p, g = find_hits(index, arr)
            rows = idx[start : start + len(arr)]
            bench[rows], pos[rows], glen[rows] = b, p, g
            for j in np.flatnonzero(b >= 0)[: max(0, _EXAMPLES - len(texts_of))]:
                texts_of[int(rows[j])] = arr[int(j)].as_py()
            start += len(arr)
        hit_rows = np.flatnonzero(bench >= 0)
        per = {name: {"items": index.texts[name], "too_short_to_check": index.too_short[name],
                      "removed": int((bench[hit_rows] == i).sum())} for i, name in enumerate(index.names)}
        extra = {r: {"benchmark": index.names[bench[r]], "matched": matched_text(txt, int(pos[r]), int(glen[r]))}
                 for r, txt in texts_of.items()}
        pipe.apply("decontam", bench < 0, extra=extra, ngram=dc.ngram, on=dc.on, per_benchmark=per,
                   note="; ".join(f"{k}: {v['removed']}" for k, v in per.items()))
        timings["decontam_s"] = time.monotonic() - t
    else:
        pipe.disabled("decontam")

    # build: pure Arrow (take, append the assistant turn, filter), no per-row Python and no index mappings
    t = time.monotonic()
    idx = pipe.idx
    table = ds.data.table.take(pa.array(idx))
    table = table.set_column(table.schema.get_field_index("messages"), "messages",
                             with_assistant_turn(table.column("messages"), table.column("_answer"),
                                                 table.column("reasoning"), cfg.reasoning))
    table = table.drop_columns([c for c in table.column_names if c.startswith("_")])
    # TRL reads a `completion` column as prompt-completion data and would ignore `messages`: keep it under a name
    # SFTTrainer does not claim, so the dataset feeds it unchanged
    table = table.rename_columns(["raw_completion" if c == "completion" else c for c in table.column_names])
    table = table.append_column("verification", pa.array(verification[idx].tolist(), type=pa.string()))
    val = validation_mask(table.column("prompt_id").combine_chunks(), cfg.validation_fraction, cfg.seed)
    parts = {"train": table.filter(pa.array(~val)), "validation": table.filter(pa.array(val))}
    dd = DatasetDict({k: Dataset(InMemoryTable(v)) for k, v in parts.items()})
    teachers = _teacher_table(records.data.table, table)
    splits = {k: {"records": v.num_rows, "prompts": pc.count_distinct(v.column("prompt_id")).as_py()}
              for k, v in parts.items()}
    config_json = cfg.model_dump(mode="json")
    with stage_output(stage_dir) as out:
        # an empty split saved with 0 shards cannot be loaded back (datasets 5.2): give every split a shard
        dd.save_to_disk(str(out / "dataset"), num_shards={k: 1 for k, v in dd.items() if len(v) == 0} or None)
        timings["build_s"] = time.monotonic() - t
        summary = base_summary("curate", fp, config_json)
        summary.update(
            pipeline=pipeline,
            input=str(in_dir),
            records_in=n_in,
            records_out=table.num_rows,
            splits=splits,
            teachers=teachers,
            token_count_method=counter.method,
            filters=pipe.filters,
            timings_s={k: round(v, 3) for k, v in timings.items()},
            wall_time_s=round(time.monotonic() - t_start, 3),
        )
        (out / "README.md").write_text(dataset_card(summary, collect_summary))
        write_json(out / "summary.json", summary)
    if cfg.push_to_hub is not None:
        _push(dd, stage_dir / "README.md", cfg)
    return summary


def _teacher_table(records: pa.Table, final: pa.Table) -> dict[str, dict[str, Any]]:
    def counts(t: pa.Table) -> dict[str, int]:
        vc = pc.value_counts(pc.fill_null(t.column("teacher").combine_chunks().cast(pa.string()), "?"))
        return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}

    cin, cout = counts(records), counts(final)
    models: dict[str, list[str]] = {}
    for row in records.select(["teacher", "model"]).group_by(["teacher", "model"]).aggregate([]).to_pylist():
        models.setdefault(str(row["teacher"] or "?"), []).append(str(row["model"]))
    return {t: {"in": n, "kept": cout.get(t, 0), "models": sorted(models.get(t, []))} for t, n in cin.items()}


def _push(dd: Any, card: Path, cfg: CurateConfig) -> None:
    from distill.errors import DistillError

    hub = cfg.push_to_hub
    assert hub is not None
    try:
        dd.push_to_hub(hub.repo_id, private=hub.private, token=hub.token)
        from huggingface_hub import HfApi

        HfApi(token=hub.token).upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=hub.repo_id,
                                            repo_type="dataset")
    except Exception as err:  # network/auth problems are the user's to fix; say so in one line
        raise DistillError(f"curate.push_to_hub: could not push to {hub.repo_id!r} ({type(err).__name__}: {err}); "
                           "the dataset is saved locally") from None
    console.print(f"curate: pushed to https://huggingface.co/datasets/{hub.repo_id}")
