"""Code replies: which code in a chat answer is the program, and whether it passes its tests.

Chat models answer "complete this function" in many shapes: a fenced full function, prose around the fence, only
the body (fenced, or flush left), a function plus an `if __name__ == "__main__":` demo, a first attempt then a
corrected block, an unfenced function after prose, a fence never closed. The rule, in order:

1. the LAST block that parses and defines the entry point (the model's final answer), main-guard demos removed;
2. else a body: the last block that parses as the body of the prompt's function, re-indented by parsing;
3. else the last block (it will fail, as it should).

HumanEval scoring and curate's code verification both call `check_program`, so they judge code the same way.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from distill.answers.reasoning import strip_reasoning
from distill.sandbox import Limits, SandboxResult, run_code

_FENCE = re.compile(r"^\s*(```+|~~~+)")
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)")
_MAX_TRIES = 60  # cut points tried from the end of a block while looking for code that parses


@dataclass
class CodeCheck:
    code: str  # what ran before the tests: the chosen code (with the prompt's header when it was a body)
    result: SandboxResult

    @property
    def passed(self) -> bool:
        return self.result.passed


def code_blocks(text: str) -> list[str]:
    """Fenced blocks in order; a fence never closed runs to the end of the reply. No fence: []."""
    blocks, current, fence = [], None, ""
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if current is None:
            if m:
                current, fence = [], m.group(1)[0] * 3
        elif m and m.group(1).startswith(fence):
            blocks.append("".join(current))
            current = None
        else:
            current.append(line)
    if current is not None and any(ln.strip() for ln in current):
        blocks.append("".join(current))
    return blocks


def _parse(src: str) -> ast.Module | None:
    try:
        return ast.parse(src)
    except (SyntaxError, ValueError):
        return None


def _parsing_prefix(src: str) -> str | None:
    """`src`, or the longest run of its first lines that parses (prose after an unfenced or unclosed block).
    Cuts are tried only before a line starting at column 0, where a top-level statement (or prose) begins."""
    if _parse(src) is not None:
        return src
    lines = src.splitlines(keepends=True)
    cuts = [i for i in range(len(lines) - 1, 0, -1) if lines[i][:1].strip()][:_MAX_TRIES]
    for end in cuts:
        head = "".join(lines[:end])
        if head.strip() and _parse(head) is not None:
            return head
    return None


def _defines(tree: ast.Module, name: str | None) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if name is None or node.name == name:
                return True
        elif name is not None and isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return True
    return False


def _is_main_guard(node: ast.stmt) -> bool:
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1):
        return False
    sides = [node.test.left, *node.test.comparators]
    return (isinstance(node.test.ops[0], ast.Eq) and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _without_main_guard(src: str) -> str:
    """Drop top-level `if __name__ == "__main__":` demos: they may read stdin, print, or assert their own way."""
    tree = _parse(src)
    if tree is None:
        return src
    lines = src.splitlines(keepends=True)
    for node in reversed(tree.body):
        if _is_main_guard(node) and node.end_lineno is not None:
            del lines[node.lineno - 1:node.end_lineno]
    return "".join(lines)


def _candidates(text: str) -> list[str]:
    """Code-like pieces of the reply: its fenced blocks, else the text from its first code-looking line."""
    blocks = code_blocks(text)
    if blocks:
        return blocks
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if _CODE_START.match(ln)), None)
    tail = ["".join(lines[start:])] if start else []
    return [text, *tail]  # the whole text too: a body written flush left starts with no keyword


def _as_body(prompt: str, entry_point: str, block: str) -> str | None:
    """`block` re-indented to continue `prompt`'s function, when some indentation makes it parse as that
    function's body: dedented then indented once, or with its first line given the indentation of the rest (an
    extractor that stripped the text also stripped the first line's indent)."""
    lines = [ln for ln in block.rstrip().splitlines() if ln.strip() or ln == ""]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    tries = [textwrap.dedent("\n".join(lines))]
    rest = [ln for ln in lines[1:] if ln.strip()]
    if rest:
        indent = min(len(ln) - len(ln.lstrip()) for ln in rest)
        tries.append(textwrap.dedent("\n".join([" " * indent + lines[0].lstrip(), *lines[1:]])))
    for body in tries:
        src = prompt.rstrip("\n") + "\n" + textwrap.indent(body, "    ") + "\n"
        tree = _parse(src)
        if tree is None:
            continue
        fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and n.name == entry_point), None)
        if fn is not None and fn.end_lineno == len(src.rstrip("\n").splitlines()):  # all of it inside the function
            return src
    return None


def _prompt_header(prompt: str, entry_point: str) -> str:
    """The prompt's text before the entry point's `def` (its imports and helper functions)."""
    m = re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", prompt, re.M)
    return prompt[: m.start()] if m else ""


def select_code(text: str | None, entry_point: str | None = None, prompt: str = "") -> str:
    """The program a reply stands for, ready to be followed by tests (see the module doc for the rule)."""
    candidates = _candidates(strip_reasoning(text))
    parsed = [p for p in (_parsing_prefix(c) for c in candidates) if p is not None]
    for src in reversed(parsed):
        tree = _parse(src)
        if tree is not None and _defines(tree, entry_point):
            header = _prompt_header(prompt, entry_point) if entry_point else ""
            return header + _without_main_guard(src)
    if entry_point and prompt:
        for block in reversed(candidates):
            body = _as_body(prompt, entry_point, block)
            if body is not None:
                return body
    return (parsed or candidates or [""])[-1]


def extract_code(text: str | None) -> str:
    """The code of a reply when no entry point is known: the last block defining a function, else the last
    block that parses, else the text."""
    return select_code(text)


def _with_tests(code: str, tests: str, entry_point: str | None) -> str:
    program = code.rstrip() + "\n\n" + tests.rstrip() + "\n"
    if entry_point and re.search(r"^def check\(", tests, re.M) and not re.search(r"^check\(", tests, re.M):
        program += f"\ncheck({entry_point})\n"  # HumanEval-style tests define check() and leave the call to us
    return program


def build_program(text: str | None, tests: str, entry_point: str | None = None, prompt: str = "") -> str:
    """The reply's code followed by the tests (and `check(entry_point)` when the tests define but do not call it)."""
    return _with_tests(select_code(text, entry_point, prompt), tests, entry_point)


def check_program(text: str | None, tests: str, entry_point: str | None = None, prompt: str = "",
                  limits: Limits | None = None) -> CodeCheck:
    """Run the reply's code and its tests in the sandbox. Passing means the tests ran to their end: a program
    that exits (even with status 0) before them has failed."""
    code = select_code(text, entry_point, prompt)
    return CodeCheck(code, run_code(_with_tests(code, tests, entry_point), limits))
