"""Benchmarks: load (hub or local file), k-shot chat prompt, score — shared by evaluate and curate's decontamination.

    bench = get_benchmark("gsm8k")
    items = bench.load("data/gsm8k_test.jsonl", limit=50)
    msgs = bench.messages(items[0])            # 8-shot CoT chat
    bench.score(items[0], "... The answer is 18.")  # Score(extracted="18", correct=True)

Built-ins: `gsm8k`, `mmlu`, `humaneval`, `math500`, `aime_2024` (LaTeX answers, math-verify), `gpqa_diamond`
(choice, options shuffled by a fixed seed per item); kind `local` for a user's own JSONL/CSV/Parquet (numeric or
choice); kind `agreement` for student-vs-teacher agreement on curate's validation split.
"""

from __future__ import annotations

from typing import Any

from distill.benchmarks.agreement import Agreement
from distill.benchmarks.base import Benchmark, Item, Score
from distill.benchmarks.gpqa import GPQADiamond
from distill.benchmarks.gsm8k import GSM8K
from distill.benchmarks.humaneval import HumanEval
from distill.benchmarks.local import LocalBenchmark
from distill.benchmarks.math import AIME2024, Math500
from distill.benchmarks.metrics import mean_stderr, pass_at_k
from distill.benchmarks.mmlu import MMLU
from distill.errors import InputError

KINDS: dict[str, type[Benchmark]] = {
    "gsm8k": GSM8K, "mmlu": MMLU, "humaneval": HumanEval, "math500": Math500, "aime_2024": AIME2024,
    "gpqa_diamond": GPQADiamond, "local": LocalBenchmark, "agreement": Agreement,
}
BUILTINS = [k for k in KINDS if k not in ("local", "agreement")]


def register(kind: str, cls: type[Benchmark]) -> None:
    """Add a benchmark kind (a `Benchmark` subclass) to the registry."""
    KINDS[kind] = cls


def get_benchmark(name: str, kind: str | None = None, **options: Any) -> Benchmark:
    """The benchmark `name` (a built-in), or one of `kind` labelled `name` (e.g. a local numeric set 'arith')."""
    kind = kind or name
    if kind not in KINDS:
        raise InputError(f"unknown benchmark {name!r}; built-ins: {', '.join(BUILTINS)}; for your own file set "
                         "`kind: local` (numeric or choice answers); for teacher agreement on the curated "
                         "validation split set `kind: agreement`")
    cls = KINDS[kind]
    try:
        bench = cls(name=name, **options) if kind in ("local", "agreement") else cls(**options)
    except TypeError as e:
        raise InputError(f"benchmark {name}: bad option for kind {kind!r} ({e})") from None
    if kind not in ("local", "agreement"):
        bench.name = name
    return bench


__all__ = ["KINDS", "Benchmark", "Item", "Score", "get_benchmark", "mean_stderr", "pass_at_k", "register"]
