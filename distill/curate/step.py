"""The contract every curate step keeps: one `Step` row, called as `run(rows, alive, section) -> Outcome`.

A step looks at the records still alive and answers keep or drop for each; it carries its own stats (`Outcome.info`:
counts, a note, its settings) and what an example of a removal should show (`Outcome.extra`: `duplicate_of`,
`benchmark`, ...). The runner (`pipeline.py`) does the rest the same way for every step: it counts the removals,
keeps up to 3 examples, refuses a step that would leave nothing, and writes the step under its name in
summary.json, in table order (which is also the dataset card's filter list).

A per-record filter is a step too (`record_filter`): its `keep(batch, section)` is evaluated for every row in the
one batched `datasets.map` pass (Arrow, `num_proc`), and its step reads that column back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Batch = dict[str, list[Any]]
EXAMPLES = 3  # examples of each step's removals kept in summary.json
TEXT_BATCH = 50_000  # rows per Arrow slice handed to dedup and decontamination


def snippet(text: Any, n: int = 240) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[:n] + "…"


@dataclass
class Outcome:
    """A step's answer: `keep` over all rows (only rows still alive matter), its stats, its examples' extras."""

    keep: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    extra: dict[int, dict[str, Any]] = field(default_factory=dict)


class Rows:
    """The prepared records (a `datasets.Dataset` over Arrow) and what steps share while they run."""

    def __init__(self, ds: Any, *, num_proc: int | None = None, progress: bool = True,
                 token_count_method: str = "", verification: np.ndarray | None = None, executor: Any = None):
        from distill.curate.executor import LocalExecutor

        self.ds = ds
        self.executor = executor or LocalExecutor()  # where map_texts / band_pairs run (executor.py)
        self.num_proc = num_proc
        self.progress = progress
        self.token_count_method = token_count_method
        self.verification = verification  # per row: correct | incorrect | unverifiable (set by the verify step)
        self.columns: dict[str, tuple[np.ndarray, pa.DataType]] = {}  # per-row columns steps add to the dataset
        self.layout: Any = None  # the run's RunLayout, for steps that ask a model (cache, spend ledger)

    def __len__(self) -> int:
        return len(self.ds)

    def column(self, name: str) -> np.ndarray:
        return self.ds.data.column(name).to_numpy(zero_copy_only=False)

    def texts(self, on: str, rows: np.ndarray) -> Iterator[pa.Array]:
        """Arrow texts (prompt, answer, or both) of `rows`, in slices of TEXT_BATCH; the answer is the trained
        assistant text (with the trace unless reasoning: drop)."""
        table = self.ds.data
        answer = "_assistant" if "_assistant" in table.column_names else "_answer"
        for s in range(0, len(rows), TEXT_BATCH):
            take = pa.array(rows[s : s + TEXT_BATCH])
            if on == "prompt":
                yield table.column("_prompt_text").take(take).combine_chunks()
            elif on == "completion":
                yield table.column(answer).take(take).combine_chunks()
            else:
                p = table.column("_prompt_text").take(take).combine_chunks()
                a = table.column(answer).take(take).combine_chunks()
                yield pc.binary_join_element_wise(p, a, "\n")

    def map_texts(self, on: str, rows: np.ndarray, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """`fn(*args, texts)` over the texts of `rows` batch by batch, on this run's executor; results in order."""
        return self.executor.map_texts(self.texts(on, rows), fn, *args)

    def duplicates_of(self, idx: np.ndarray, keep_local: np.ndarray, rep: np.ndarray) -> dict[int, dict[str, Any]]:
        """`duplicate_of` for the first removed rows of a dedup over `idx` (rep: local index of the kept copy)."""
        ids = self.ds.data.column("id")
        return {int(idx[i]): {"duplicate_of": ids[int(idx[rep[i]])].as_py()}
                for i in np.flatnonzero(~keep_local)[:EXAMPLES]}

    def examples(self, removed: np.ndarray, extra: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in removed[:EXAMPLES].tolist():
            row = self.ds[int(r)]
            ex = {"id": row["id"], "prompt_id": row["prompt_id"], "teacher": row.get("teacher"),
                  "prompt": snippet(row["_prompt_text"]), "answer": snippet(row["_answer"])}
            if row.get("finish_reason") is not None:
                ex["finish_reason"] = row["finish_reason"]
            ex.update(extra.get(int(r), {}))
            out.append(ex)
        return out


StepFn = Callable[[Rows, np.ndarray, Any], Outcome]
KeepFn = Callable[[Batch, Any], np.ndarray]


def _switched_on(section: Any) -> bool:
    return bool(section.enabled)


@dataclass(frozen=True)
class Step:
    """One row of the curate table (`pipeline.STEPS`)."""

    name: str  # its key in summary.json's `filters` and on the dataset card
    run: StepFn
    section: str | None = None  # its `curate:` config section when not `name`
    needs: tuple[str, ...] = ()  # record columns it reads beyond the required ones
    active: Callable[[Any], bool] = _switched_on  # on, given its section
    timer: str | None = None  # the summary's timings_s key its time adds to
    per_record: KeepFn | None = None  # a per-record filter's keep(batch, section), run in the batched pass

    def config(self, cfg: Any) -> Any:
        return getattr(cfg, self.section or self.name)


def keep_column(name: str) -> str:
    """The column the batched pass writes a per-record filter's keep mask to."""
    return f"_keep_{name}"


def record_filter(name: str, keep: KeepFn, *, stats: Callable[[Rows, np.ndarray, Any], dict[str, Any]] | None = None,
                  needs: tuple[str, ...] = ()) -> Step:
    """A per-record filter as a step: `keep(batch, section) -> bool mask`; `stats(rows, removed_mask, section)`
    adds its own summary keys."""

    def run(rows: Rows, alive: np.ndarray, section: Any) -> Outcome:
        mask = rows.column(keep_column(name)).astype(bool)
        return Outcome(mask, stats(rows, alive & ~mask, section) if stats else {})

    return Step(name, run, needs=needs, per_record=keep)
