"""collect: prompts -> teacher records, through distill.llm (the same path evaluate uses).

`stage.py` runs the stage (`run_collect`, the dry run's `run_estimate`, `load_records`), `estimate.py` is the dry
run's token counting and pilot, `config.py` the `collect:` section. This face loads `stage` on first use, so
reading a config (`distill.collect.config`) stays light.

Output: runs/<name>/collect/records-NNNNN.parquet (one row per prompt x teacher x sample, loadable with
`datasets.load_dataset("parquet", ...)` or `load_records`), failures.jsonl, summary.json.
"""

from typing import Any

_STAGE = ("RECORD_COLUMNS", "collect_fingerprint", "load_records", "run_collect", "run_estimate")


def __getattr__(name: str) -> Any:
    if name in _STAGE:
        from distill.collect import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'distill.collect' has no attribute {name!r}")


__all__ = list(_STAGE)
