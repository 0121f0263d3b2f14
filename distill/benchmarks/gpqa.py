"""GPQA-Diamond: 198 graduate-level science questions, four options, zero-shot, graded as a choice letter.

The hub rows (`Idavidrein/gpqa`, config `gpqa_diamond`, split `train`; gated: accept its terms on the hub and set
HF_TOKEN) give the correct answer and three incorrect ones as separate fields, so the option order is ours to
make. It is shuffled per item with a seed derived from the item (sha256 of seed + record id), never from
Python's `hash()` or a global RNG: every run, machine and `--limit` shows the same order, and the correct
letter is spread over A-D instead of always A.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from distill.benchmarks.base import Benchmark, Item, Score, graded, stable_id
from distill.errors import InputError

LETTERS = "ABCD"


def option_order(key: str, seed: int) -> list[int]:
    """A permutation of the 4 options (0 = the correct answer) fixed by the item's key and the seed."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    order = [0, 1, 2, 3]
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


class GPQADiamond(Benchmark):
    name = "gpqa_diamond"
    kind = "gpqa_diamond"
    k_shot = 0
    max_tokens = 2048
    metric = "accuracy"
    default_split = "train"  # the hub dataset's only split
    scoring = ("generative: the option letter read from the reply (not log-likelihood); options shuffled with a "
               "fixed seed per item")
    hub = ("Idavidrein/gpqa", "gpqa_diamond")

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        repo, subset = (source, self.hub[1]) if source else self.hub
        return self._hub_items(repo, subset, split)

    def _item(self, row: dict[str, Any]) -> Item:
        question = str(row["Question"]).strip()
        options = [str(row["Correct Answer"]).strip()] + [str(row[f"Incorrect Answer {i}"]).strip()
                                                           for i in (1, 2, 3)]
        record = str(row.get("Record ID") or "") or None
        key = record or question
        order = option_order(key, self.seed)
        choices = [options[i] for i in order]
        if len(set(choices)) < 4:
            raise InputError(f"{self.name}: question {question[:60]!r} has repeated options")
        subject = str(row["High-level domain"]) if row.get("High-level domain") else None
        return Item(id=f"gpqa-{record}" if record else stable_id("gpqa", question), question=question,
                    reference=LETTERS[order.index(0)], subject=subject, choices=choices,
                    metadata={"record_id": record, "option_order": order, "seed": self.seed,
                              "subdomain": row.get("Subdomain")})

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        if k_shot:
            raise InputError(f"{self.name} is zero-shot; set k_shot: 0 (or leave it unset)")
        assert item.choices is not None
        opts = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(item.choices))
        return [{"role": "user", "content": f"{item.question}\n\n{opts}\n\nThink step by step, then give your final "
                                            "answer as 'Answer: X', where X is one of A, B, C or D."}]

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        return graded(output, item.reference, "choice", finish_reason, letters=LETTERS)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "option_seed": self.seed}
