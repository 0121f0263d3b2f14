"""The collect stage: prompts -> teacher records, through distill.llm (the same path evaluate uses).

Output: runs/<name>/collect/records-NNNNN.parquet (one row per prompt x teacher x sample, loadable with
`datasets.load_dataset("parquet", ...)` or `load_records`), failures.jsonl, summary.json.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import InputError
from distill.collect.config import CollectConfig
from distill.collect.estimate import estimate_teacher, print_estimate
from distill.llm import (ChatRequest, ChatRunner, EndpointConfig, OnResult, ResponseCache, Runner, RunStats,
                         request_model)
from distill.llm.batch import BatchRunner
from distill.llm.budget import Budget
from distill.llm.errors import RunStopped
from distill.progress import console, make_progress
from distill.prompts import load_prompts
from distill.rundir import RunLayout, Stage, file_fingerprint, fingerprint, run_lock, write_json, write_jsonl

RECORD_COLUMNS = [
    "id", "prompt_id", "sample_index", "teacher", "model", "requested_model", "base_url", "messages", "completion",
    "reasoning", "reasoning_status", "finish_reason", "prompt_tokens", "completion_tokens", "reasoning_tokens",
    "cost_usd", "latency_s", "created_at", "response_id", "attempts", "params", "reference", "metadata",
    "length_retry", "raw", "batch_id", "structured",
    "cache_read_tokens", "cache_write_tokens",  # prompt tokens read from / written to the provider's prompt cache
]


def _requests(ds: Any, n: int) -> Any:
    for start in range(0, len(ds), 1024):
        batch = ds[start : start + 1024]
        for j, msgs in enumerate(batch["messages"]):
            yield ChatRequest(messages=msgs, samples=list(range(n)), tag=start + j)


def _stats_text(stats: RunStats, t0: float) -> str:
    dt = max(time.monotonic() - t0, 1e-6)
    errs = " ".join(f"{k}={v}" for k, v in sorted(stats.errors.items()))
    return (
        f"{stats.completed / dt:6.1f} req/s {(stats.prompt_tokens + stats.completion_tokens) / dt:8.0f} tok/s "
        f"${stats.cost_usd:.4f} cached={stats.from_cache} failed={stats.failed}" + (f" [red]{errs}" if errs else "")
    )


def _failure(ds: Any, teacher: str, req: ChatRequest, error: str) -> dict[str, Any]:
    """One line of failures.jsonl."""
    return {"prompt_id": ds[req.tag]["prompt_id"], "teacher": teacher, "sample_indices": req.samples, "error": error}


def _longer(ep: EndpointConfig, factor: float) -> EndpointConfig:
    """The same endpoint asking for a larger max_tokens: a different request, so a different cache entry."""
    params = ep.params.model_copy()
    if params.max_completion_tokens:
        params.max_completion_tokens = int(params.max_completion_tokens * factor)
    if params.max_tokens:
        params.max_tokens = int(params.max_tokens * factor)
    return ep.model_copy(update={"params": params})


def _make_runner(cfg: CollectConfig, ep: EndpointConfig, cache: ResponseCache, budget: Budget, state_dir: Path,
                 ds: Any, progress: Any) -> Runner:
    """The executor of one teacher's requests for `collect.mode`: the one place a mode plugs in."""
    model = request_model(ep)
    if cfg.mode == "online":
        return ChatRunner(model, cache, budget=budget)
    task = progress.add_task(f"batch {ep.name}", total=None, stats="")
    kind = BatchRunner
    if ep.provider == "anthropic":
        from distill.llm.anthropic_batch import AnthropicBatchRunner as kind  # the SDK is imported only when used
    return kind(
        model, cache, budget=budget, cfg=cfg.batch, state_path=state_dir / f"{ep.name}.json",
        describe=lambda req: repr(ds[req.tag]["prompt_id"]),
        on_poll=lambda st: progress.update(task, total=st["total"], completed=st["done"], stats=st["statuses"]))


async def _until_stopped(run: Any) -> RunStopped | None:
    """A run's fatal stop comes back as a value (the other teachers go on); any other error propagates."""
    try:
        await run
    except RunStopped as err:
        return err
    return None


async def _collect(cfg: CollectConfig, ds: Any, cache: ResponseCache, state_dir: Path, budget: Budget
                   ) -> tuple[list[Runner], dict[str, ChatRunner], list[dict[str, Any]], RunStopped | None]:
    """Every teacher's requests; a fatal stop comes back (not raised) so the stage still writes what it has."""
    failures: list[dict[str, Any]] = []
    truncated: dict[str, list[ChatRequest]] = {t.name: [] for t in cfg.teachers}
    t0 = time.monotonic()
    with make_progress(cfg.progress) as progress:
        runners = [_make_runner(cfg, t, cache, budget, state_dir, ds, progress) for t in cfg.teachers]
        tasks = {} if cfg.mode == "batch" else {
            r.ep.name: progress.add_task(f"collect {r.ep.name}", total=len(ds) * r.ep.params.n, stats="") for r in runners}

        def on_result_for(runner: Runner) -> OnResult:
            def on_result(req: ChatRequest, records: Any, error: str | None, from_cache: bool) -> None:
                if error is not None:
                    failures.append(_failure(ds, runner.ep.name, req, error))
                elif cfg.on_truncated == "retry" and cfg.mode == "online" and records:
                    cut = [r["sample_index"] for r in records if r.get("finish_reason") == "length"]
                    if cut and runner.ep.name in truncated:
                        truncated[runner.ep.name].append(ChatRequest(req.messages, cut, req.tag))
            return on_result

        async def refresh() -> None:
            while True:
                for r in runners:
                    s = r.stats
                    progress.update(tasks[r.ep.name], completed=s.completed + s.from_cache + s.failed + s.not_sent,
                                    stats=_stats_text(s, t0))
                await asyncio.sleep(0.25)

        ticker = asyncio.create_task(refresh()) if tasks else None
        try:
            stops = await asyncio.gather(
                *(_until_stopped(r.run(_requests(ds, r.ep.params.n), on_result_for(r))) for r in runners))
        finally:
            if ticker is not None:
                ticker.cancel()
        for r in runners:
            if r.ep.name in tasks:
                progress.update(tasks[r.ep.name], completed=r.stats.requests_total, stats=_stats_text(r.stats, t0))
        stopped = next((s for s in stops if s is not None), None)
        retries: dict[str, ChatRunner] = {}
        for r in runners:
            todo = truncated[r.ep.name]
            if todo and r.ep.params.max_output_tokens and stopped is None:
                retry = ChatRunner(request_model(_longer(r.ep, cfg.truncated_retry_factor)), cache, budget=budget)
                task = progress.add_task(f"retry truncated {r.ep.name}", total=sum(len(q.samples) for q in todo), stats="")
                stopped = await _until_stopped(retry.run(todo, on_result_for(retry)))
                progress.update(task, completed=retry.stats.requests_total, stats=_stats_text(retry.stats, t0))
                retries[r.ep.name] = retry
    return runners, retries, failures, stopped


def _export(cfg: CollectConfig, ds: Any, cache: ResponseCache, runners: list[Runner],
            retries: dict[str, ChatRunner], out: Path, failures: list[dict[str, Any]],
            later: dict[str, list[dict[str, Any]]] | None = None) -> tuple[int, int, dict[str, int], int]:
    """Write cached records in prompt order as shards; returns (written, dropped as truncated, reasoning statuses,
    records the parser failed: each also appended to `failures`).

    A truncated answer is replaced by its longer retry when there is one (`length_retry` true), or dropped when
    `on_truncated: drop`. With `collect.parser`, its columns are added to each record (every row of a shard has
    every column, None where a record's parser returned no such key). `later`: multi-turn records of turns 2..N
    per teacher (conversation.py), written after that teacher's first turns, with `turn` and `user_source`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.collect.parser import RecordParser

    parser = RecordParser(cfg.parser, RECORD_COLUMNS) if cfg.parser else None
    rows: list[dict[str, Any]] = []
    shard = 0
    written = 0
    parse_failed = 0
    statuses: Counter[str] = Counter()
    tally: Counter[str] = Counter()  # truncated answers dropped (`on_truncated: drop`)

    def flush() -> None:
        nonlocal shard, rows
        if not rows:
            return
        if parser is not None:
            rows = [{**r, **{c: r.get(c) for c in parser.columns}} for r in rows]
        if cfg.output_format == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), out / f"records-{shard:05d}.parquet")
        else:
            write_jsonl(out / f"records-{shard:05d}.jsonl", rows)
        shard += 1
        rows = []

    def emit(row: dict[str, Any]) -> None:
        nonlocal parse_failed, written
        statuses[row["reasoning_status"] or "absent"] += 1
        if parser is not None and not parser.apply(row, failures):
            parse_failed += 1
            return
        rows.append(row)
        written += 1
        if len(rows) >= cfg.shard_size:
            flush()

    for runner in runners:
        for row in _first_turn_rows(cfg, ds, cache, runner, retries.get(runner.ep.name), later is not None, tally):
            emit(row)
        if later:
            from distill.collect.conversation import turn_rows

            for row in turn_rows(later.get(runner.ep.name, []), ds, runner, RECORD_COLUMNS):
                emit(row)
    flush()
    return written, tally["dropped"], dict(statuses), parse_failed


def _first_turn_rows(cfg: CollectConfig, ds: Any, cache: ResponseCache, runner: Runner, retry: ChatRunner | None,
                     multi: bool, tally: Counter[str]) -> Iterator[dict[str, Any]]:
    """One teacher's cached records in prompt order, each truncated answer replaced by its longer retry when there
    is one, or dropped (counted in `tally["dropped"]`) under `on_truncated: drop`."""
    n = runner.ep.params.n
    for start in range(0, len(ds), 1000):
        batch = ds[start : start + 1000]
        keys = [runner.model.sample_keys(m, list(range(n))) for m in batch["messages"]]
        rkeys = [retry.model.sample_keys(m, list(range(n))) for m in batch["messages"]] if retry else keys
        found = cache.get_many([k for ks in keys for k in ks] + ([k for ks in rkeys for k in ks] if retry else []))
        for j, ks in enumerate(keys):
            for k, rk in zip(ks, rkeys[j], strict=True):
                rec = found.get(k)
                if rec is None:
                    continue
                length_retry = False
                if rec.get("finish_reason") == "length":
                    if retry is not None and rk in found:
                        rec, length_retry = found[rk], True
                    elif cfg.on_truncated == "drop":
                        tally["dropped"] += 1
                        continue
                row = {c: rec.get(c) for c in RECORD_COLUMNS}
                row["length_retry"] = length_retry
                row.update(prompt_id=batch["prompt_id"][j], teacher=runner.ep.name,
                           messages=runner.model.full_messages(batch["messages"][j]),
                           reference=batch["reference"][j], metadata=batch["metadata"][j])
                if multi:
                    row.update(turn=1, user_source=None, user_response_id=None)
                yield row


def code_hashes(cfg: CollectConfig) -> dict[str, str]:
    """The source hashes of the user's code this config names (prompt builder or Jinja template, parser, pydantic
    response formats): in the fingerprint and the summary, so an edit re-runs the stage."""
    from distill.prompt_builders import code_fingerprint
    from distill.userfn import load

    out = code_fingerprint(cfg.prompts)
    if cfg.parser:
        out["parser"] = load(cfg.parser, "collect.parser").source_sha
    if cfg.conversation.turns > 1 and cfg.conversation.user_function:
        out["user_function"] = load(cfg.conversation.user_function, "collect.conversation.user_function").source_sha
    for i, t in enumerate(cfg.teachers):
        rf, key = t.params.response_format, f"collect.teachers.{i}.params.response_format"
        if rf is not None:
            from distill.llm.structured import structured_output

            structured_output(rf, key)  # checked here, before any request, under its full config key
        if isinstance(rf, str):
            out[f"teachers.{t.name}.response_format"] = load(rf, key, callable_=False).source_sha
    return out


def collect_fingerprint(cfg: CollectConfig, code: dict[str, str] | None = None) -> str:
    """What decides whether collect/ is up to date: the config, the prompt file and the user's code."""
    src = Path(cfg.prompts.path)
    code = code_hashes(cfg) if code is None else code
    return fingerprint(cfg.model_dump(mode="json"), file_fingerprint(src) if src.exists() else cfg.prompts.path,
                       *([code] if code else []))


def _priced(cfg: CollectConfig, layout: RunLayout) -> CollectConfig:
    """The teachers with the prices they are billed at (config, else OpenRouter's list, else the table), recorded
    with their source and date in runs/<name>/prices.json."""
    from distill.llm.provider_prices import price_endpoints, record_prices

    teachers, records = price_endpoints(cfg.teachers, "collect.teachers")
    record_prices(layout.prices, "collect", records)
    return cfg.model_copy(update={"teachers": teachers})


def run_collect(cfg: CollectConfig, layout: RunLayout, *, force: bool = False,
                shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """Run the collect stage; returns its summary (also written to collect/summary.json).

    One collector per run dir (a second one is refused, naming the holder's PID). A run stopped by a fatal error
    still writes its records, summary.json (with `stopped`) and failures.jsonl, then raises `RunStopped`.
    `shard=(i, n)`: only the prompts of shard i of n (`collect/shard.py` runs those, in the shard's own run dir)."""
    with run_lock(layout.root, "collect", "`distill collect`"):
        summary, stopped = _run_collect_locked(cfg, layout, force, shard)
    if stopped is not None:
        raise stopped
    return summary


def _run_collect_locked(cfg: CollectConfig, layout: RunLayout, force: bool, shard: tuple[int, int] | None = None
                        ) -> tuple[dict[str, Any], RunStopped | None]:
    t_start = time.monotonic()
    ds, prompt_stats = load_prompts(cfg.prompts)
    code = code_hashes(cfg)
    fp = collect_fingerprint(cfg, code)
    if shard is not None:
        from distill.collect.shard import shard_of

        ds = ds.select([j for j, pid in enumerate(ds["prompt_id"]) if shard_of(pid, shard[1]) == shard[0]])
        fp = fingerprint(fp, f"shard:{shard[0]}/{shard[1]}")
    stage = Stage("collect", layout.collect, fp, cfg.model_dump(mode="json"))
    if (done := stage.fresh(force)) is not None:
        return done, None
    if prompt_stats["duplicates"]:
        console.print(f"[yellow]collect: {prompt_stats['duplicates']} duplicate prompts (same id and text) skipped")
    cfg = _priced(cfg, layout)  # after the fingerprint: the price looked up is not part of the config
    cache = ResponseCache(layout.cache)
    budget = Budget.open(layout.root, "collect", cfg.budget_usd)
    try:
        runners, retries, failures, stopped = asyncio.run(_collect(cfg, ds, cache, layout.collect_batches, budget))
        later, turn_stats, per_turn = None, [], {}
        if cfg.conversation.turns > 1 and stopped is None:
            from distill.collect.conversation import continue_conversations

            try:
                later, turn_stats, per_turn = asyncio.run(
                    continue_conversations(cfg, ds, cache, budget, runners, failures))
            except RunStopped as err:
                stopped = err
        total = RunStats()
        for r in [*runners, *retries.values()]:
            total.merge(r.stats)
        for st in turn_stats:
            total.merge(st)
        # a failed length-retry is not a lost prompt: its truncated answer is still exported
        for r in retries.values():
            total.requests_total -= r.stats.requests_total
            total.failed -= r.stats.failed
            total.not_sent -= r.stats.not_sent
        if stopped is not None:
            total.stopped = str(stopped)
        with stage.build() as b:
            written, dropped, statuses, parse_failed = _export(cfg, ds, cache, runners, retries, b.out, failures,
                                                               later)
            write_jsonl(b.out / "failures.jsonl", failures)
            b.summary.update(total.summary())
            b.summary.update(
                complete=total.failed == 0 and total.not_sent == 0 and stopped is None and not parse_failed,
                prompts=len(ds),
                shard=None if shard is None else f"{shard[0]}/{shard[1]}",
                duplicate_prompts=prompt_stats["duplicates"],
                skipped_prompts=prompt_stats["skipped"],
                parser_failed=parse_failed,
                code=code,
                **({"conversations": {"turns": cfg.conversation.turns, "per_teacher_per_turn": per_turn}}
                   if cfg.conversation.turns > 1 else {}),
                records=written,
                dropped_truncated=dropped,
                reasoning_status=statuses,
                length_retries={name: r.stats.summary() for name, r in retries.items()},
                cache_path=str(layout.cache),
                spend=budget.summary(),
                per_teacher={r.ep.name: {**r.stats.summary(), "price_known": r.price.known} for r in runners},
                wall_time_s=round(time.monotonic() - t_start, 3),
            )
    finally:
        budget.close()
        cache.close()
    for r in runners:
        if not r.price.known:
            console.print(f"[yellow]collect: no price known for model {r.ep.model!r} ({r.ep.name}); cost counted as $0 "
                          "(set `price: {prompt: X, completion: Y}` in $/1M tokens)")
    if statuses.get("unknown"):
        console.print(f"[yellow]collect: {statuses['unknown']} answers carried a reasoning trace in a shape distill "
                      "does not read; each message is kept whole in the `raw` column (reasoning_status=unknown)")
    if total.stopped and stopped is None:
        console.print(f"[yellow]collect stopped early: {total.stopped}")
    return b.summary, stopped


def run_estimate(cfg: CollectConfig, layout: RunLayout) -> list[dict[str, Any]]:
    """The dry run: print and save the estimate (estimate.json); sends only the pilot requests (paid, so counted
    in the ledger and held to budget_usd like any collect spend)."""
    ds, _ = load_prompts(cfg.prompts)
    cfg = _priced(cfg, layout)
    with run_lock(layout.root, "collect", "`distill collect`"):
        cache = ResponseCache(layout.cache)
        budget = Budget.open(layout.root, "collect", cfg.budget_usd)
        try:
            rows = [estimate_teacher(t, ds, cache, cfg.estimate, budget) for t in cfg.teachers]
        finally:
            budget.close()
            cache.close()
    print_estimate(rows)
    write_json(layout.estimate, {"stage": "estimate", "teachers": rows})
    return rows


def load_records(stage_dir: str | Path) -> Any:
    """The collect output as a `datasets.Dataset` (Arrow, memory-mapped)."""
    import datasets

    stage_dir = Path(stage_dir)
    files = sorted(stage_dir.glob("records-*.parquet"))
    if files:
        return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    files = sorted(stage_dir.glob("records-*.jsonl"))
    if files:
        return datasets.load_dataset("json", data_files=[str(f) for f in files], split="train")
    raise InputError(f"{stage_dir}: no records-*.parquet or records-*.jsonl shards")
