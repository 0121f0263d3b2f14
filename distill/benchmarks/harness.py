"""lm-evaluation-harness's own GSM8K scores, computed on distill's generations, to set beside published numbers.

Published GSM8K figures mostly come from lm-evaluation-harness, whose scores are regex extractions of the
generation ("strict-match" and "flexible-extract"). Our grader reads answers more carefully, so our number and
theirs differ on the same text. To let a reader compare like with like, we score the *same* generations with
lm-eval's own filter classes (`RegexFilter`, `TakeFirstFilter`) and its `exact_match` metric, configured from the
task YAML installed with lm-eval — nothing copied. The task is `gsm8k_cot` (`lm_eval/tasks/gsm8k/gsm8k-cot.yaml`):
the 8-shot chain-of-thought protocol whose exemplars (Wei et al.) end with "The answer is N.", as ours do.

lm-eval is optional (`pip install 'lm-eval>=0.4.13,<0.5'`, in the `eval` extra); without it the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TASK = "gsm8k_cot"
TASK_FILE = "tasks/gsm8k/gsm8k-cot.yaml"  # inside the installed lm_eval package
INSTALL_HINT = "pip install 'lm-eval>=0.4.13,<0.5' (in distill's `eval` extra)"


def task_config() -> dict[str, Any]:
    """The installed lm-eval's gsm8k_cot task YAML (filters, metric options, version)."""
    from importlib.resources import files

    import yaml

    return yaml.safe_load((files("lm_eval") / TASK_FILE).read_text(encoding="utf-8"))


def _apply_filters(steps: list[dict[str, Any]], outputs: Sequence[str | None]) -> list[str]:
    import lm_eval.filters  # noqa: F401 - registers the filter classes by name
    from lm_eval.api.registry import get_filter

    resps: Any = [[o or ""] for o in outputs]  # lm-eval's shape: one list of responses per document
    for step in steps:
        kwargs = {k: v for k, v in step.items() if k != "function"}
        resps = get_filter(step["function"])(**kwargs).apply(resps, [{} for _ in outputs])
    return [r[0] if isinstance(r, list) else r for r in resps]


def harness_gsm8k(outputs: Sequence[str | None], references: Sequence[str]) -> dict[str, Any]:
    """Per-item 0/1 and the mean for each of the task's filters ("strict-match", "flexible-extract").

    `references` are the gold numbers; lm-eval's own target is the text after '####', which equals ours once
    its `regexes_to_ignore` (commas, `$`, a trailing '.') are applied, as its metric does.
    """
    try:
        import lm_eval
        from lm_eval.api.metrics import exact_match_hf_evaluate
    except ImportError:
        return {"available": False, "note": f"lm-eval is not installed: {INSTALL_HINT}"}
    cfg = task_config()
    metric = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    opts = {k: v for k, v in metric.items() if k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation",
                                                       "ignore_numbers")}
    scores: dict[str, Any] = {}
    for f in cfg["filter_list"]:
        preds = _apply_filters(f["filter"], outputs)
        per_item = [float(exact_match_hf_evaluate([p], [str(r)], **opts)["exact_match"])
                    for p, r in zip(preds, references, strict=True)]
        scores[f["name"]] = {"per_item": per_item, "extracted": preds,
                             "score": sum(per_item) / len(per_item) if per_item else None}
    return {"available": True, "lm_eval_version": getattr(lm_eval, "__version__", "unknown"), "task": cfg["task"],
            "task_version": (cfg.get("metadata") or {}).get("version"), "config": f"lm_eval/{TASK_FILE}",
            "regexes": {f["name"]: [s.get("regex_pattern") for s in f["filter"] if s["function"] == "regex"]
                        for f in cfg["filter_list"]},
            "scores": scores}
