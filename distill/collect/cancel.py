"""`distill collect --cancel-batches`: stop paying for this pipeline's batches that have not finished.

Why it is safe to run at any time (with no collector running: it takes the same run lock): each chunk is marked
`cancelled_at` in its teacher's state file before the cancel is sent, so a re-run knows the batch was stopped
on purpose; it then polls the cancelled batches until the provider ends them, keeps every answer that finished
(into the cache, at the batch price), and submits the requests that never ran as a new batch.
"""

from __future__ import annotations

import json
import time
from typing import Any

from distill.collect.config import CollectConfig
from distill.llm import ResponseCache, request_model
from distill.llm.batch import BatchRunner
from distill.rundir import RunLayout, run_lock


def run_cancel_batches(cfg: CollectConfig, layout: RunLayout) -> list[dict[str, Any]]:
    """Cancel every recorded, unfinished batch of every teacher; returns (and appends to
    collect-batches/cancellations.jsonl) one row per chunk acted on."""
    rows: list[dict[str, Any]] = []
    with run_lock(layout.root, "collect", "`distill collect`"):
        cache = ResponseCache(layout.cache)
        try:
            for ep in cfg.teachers:
                state = layout.collect_batches / f"{ep.name}.json"
                if not state.exists():
                    continue
                kind = BatchRunner
                if ep.provider == "anthropic":
                    from distill.llm.anthropic_batch import AnthropicBatchRunner as kind
                runner = kind(request_model(ep), cache, budget=None, cfg=cfg.batch, state_path=state)
                at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                rows += [{"at": at, "teacher": ep.name, **r} for r in runner.cancel()]
        finally:
            cache.close()
    if rows:
        with (layout.collect_batches / "cancellations.jsonl").open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return rows
