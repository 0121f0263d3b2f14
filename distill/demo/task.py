"""The demo's synthetic reasoning task: templated word problems that add two multi-digit numbers.

The answer is written as short single-digit steps, ones column first, each `a+b+carry=sum`, then
"The answer is N." — text a tiny model can learn, while the bare answer (no steps) is hard for it. That gap is what
the demo shows: a student trained on the teacher's steps learns the task; one trained on final answers does not.

Problems are split by a hash of the operand pair into disjoint pools (teacher training, collection prompts,
held-out evaluation), so the teacher never saw the prompts it is asked, and nobody saw the evaluation problems.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Pool = Literal["teacher", "collect", "eval"]

DIGITS = 3
NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kim", "Lea"]
ITEMS = ["apples", "coins", "stamps", "marbles", "books", "shells", "cards", "beads"]
TEMPLATES = [
    "{name} has {a} {item} and gets {b} more. How many {item} now?",
    "One box has {a} {item}, another has {b}. How many {item} in all?",
    "{name} counted {a} {item}, then {b} more. What is the total?",
    "What is {a} plus {b}?",
    "A shop has {a} {item} and buys {b} more. How many {item} now?",
    "{name} saved {a} {item} and found {b}. How many {item} does {name} have?",
]
SYSTEM = None  # the prompts carry everything; no system message keeps sequences short for tiny models


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    a: int
    b: int

    @property
    def answer(self) -> int:
        return self.a + self.b


def pool_of(a: int, b: int) -> Pool:
    """Deterministic, disjoint split of operand pairs: 80% teacher training, 10% collection, 10% evaluation."""
    h = int(hashlib.sha256(f"{a}+{b}".encode()).hexdigest()[:8], 16) % 10
    return "teacher" if h < 8 else ("collect" if h == 8 else "eval")


def solution(a: int, b: int) -> str:
    """Per-digit steps, ones column first, then the final answer: `7+6+0=13 4+8+1=13 3+5+1=9 The answer is 933.`"""
    sa, sb = str(a)[::-1], str(b)[::-1]
    carry, steps = 0, []
    for i in range(max(len(sa), len(sb))):
        x = int(sa[i]) if i < len(sa) else 0
        y = int(sb[i]) if i < len(sb) else 0
        s = x + y + carry
        steps.append(f"{x}+{y}+{carry}={s}")
        carry = s // 10
    return " ".join(steps) + f" The answer is {a + b}."


def answer_only(a: int, b: int) -> str:
    return f"The answer is {a + b}."


def problems(pool: Pool, n: int, seed: int) -> list[Problem]:
    """`n` distinct problems from one pool, reproducible from `seed`."""
    rng = random.Random(f"{pool}-{seed}")
    lo, hi = 10 ** (DIGITS - 1), 10**DIGITS - 1
    seen: set[tuple[int, int]] = set()
    out: list[Problem] = []
    while len(out) < n:
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        if (a, b) in seen or pool_of(a, b) != pool:
            continue
        seen.add((a, b))
        q = rng.choice(TEMPLATES).format(name=rng.choice(NAMES), item=rng.choice(ITEMS), a=a, b=b)
        out.append(Problem(id=f"{pool}-{seed}-{len(out):05d}", question=q, a=a, b=b))
    return out


def carries(a: int, b: int) -> int:
    """Carries written in the solution (the task's difficulty: each carry is a step a weak student gets wrong)."""
    c = n = 0
    while a or b:
        c = (a % 10 + b % 10 + c) // 10
        n += c
        a, b = a // 10, b // 10
    return n


def mixed_pool(pool: Pool, n: int, seed: int, mix: dict[int, float]) -> list[Problem]:
    """`n` distinct problems from one pool with the given share per number of carries (a pool skewed towards
    easy items, as real prompt pools are: the student's weak spots are rare in it)."""
    want = {c: round(n * w) for c, w in mix.items()}
    want[max(want, key=lambda c: want[c])] += n - sum(want.values())
    got: dict[int, list[Problem]] = {c: [] for c in want}
    for p in problems(pool, 5 * n, seed):
        c = carries(p.a, p.b)
        if c in got and len(got[c]) < want[c]:
            got[c].append(p)
        if all(len(got[c]) >= want[c] for c in want):
            break
    if any(len(got[c]) < want[c] for c in want):
        raise ValueError(f"mixed_pool: could not draw {want} from the {pool} pool")
    out = [p for c in sorted(got) for p in got[c]]
    random.Random(f"mix-{seed}").shuffle(out)
    return out


def write_jsonl(path: Path, probs: list[Problem]) -> Path:
    """Rows `{id, question, answer}`: the prompt-source and local-benchmark format the pipeline reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for p in probs:
            f.write(json.dumps({"id": p.id, "question": p.question, "answer": str(p.answer)}) + "\n")
    return path


N_PROMPTS, N_EVAL = 3000, 300
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "demo"


def write_demo_data(out_dir: Path = DATA_DIR) -> None:
    """data/demo/prompts.jsonl (questions only: collection never sees an answer) and eval.jsonl (held out)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "prompts.jsonl").open("w", encoding="utf-8") as f:
        for p in problems("collect", N_PROMPTS, seed=1):
            f.write(json.dumps({"id": p.id, "question": p.question}) + "\n")
    write_jsonl(out_dir / "eval.jsonl", problems("eval", N_EVAL, seed=2))


if __name__ == "__main__":
    write_demo_data()
