"""The gap-explorer notebook runs with only the extras it documents: every module it imports (and what pandas
needs for its `.style` tables: jinja2) belongs to a distribution those extras require, directly or transitively.

Checked against the installed packages' own metadata, so a dependency that only arrived here because another
extra (or the dev box) pulled it in does not count. A fresh venv with only the documented extras, executing the
notebook, is the full check (README: Development)."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from tests.paths import REPO

NOTEBOOK = REPO / "notebooks" / "gap_explorer.ipynb"
IMPLICIT = {"style": "jinja2"}  # DataFrame.style renders through jinja2, which pandas does not require


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def documented_extras(nb: dict) -> list[str]:
    """The extras the notebook's own text tells the reader to install: `pip install -e ".[a,b]"`."""
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    found = re.findall(r"pip install -e [\"']\.\[([a-z,\-]+)\][\"']", text)
    return sorted({e for group in found for e in group.split(",")})


def needed_modules(nb: dict) -> set[str]:
    """Top-level modules the code cells import, plus the ones their calls need implicitly."""
    mods: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods.add(node.module.split(".")[0])
            elif isinstance(node, ast.Attribute) and node.attr in IMPLICIT:
                mods.add(IMPLICIT[node.attr])
    return mods - set(sys.stdlib_module_names)


def closure(extras: list[str]) -> set[str]:
    """Distributions the project's core dependencies and these extras pull in, following installed metadata."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [(Requirement(r), "") for r in project["dependencies"]]
    for e in extras:
        todo += [(Requirement(r), "") for r in project["optional-dependencies"][e]]
    seen: set[str] = set()
    while todo:
        req, _ = todo.pop()
        name = _norm(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for r in reqs:
            sub = Requirement(r)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}) or any(
                    Marker(str(sub.marker)).evaluate({"extra": x}) for x in req.extras):
                sub.marker = None
                todo.append((sub, name))
    return {s for s in seen if "[" not in s}


def test_notebook_needs_only_what_its_documented_extras_install() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    extras = documented_extras(nb)
    assert extras == ["eval"], extras
    dists = metadata.packages_distributions()
    have = closure(extras)
    needed = needed_modules(nb)
    assert {"pandas", "matplotlib", "jinja2", "distill"} <= needed
    missing = {m: dists.get(m, [m]) for m in needed - {"distill"}
               if not any(_norm(d) in have for d in dists.get(m, [m]))}
    assert not missing, f"the notebook imports {missing}, which the extras {extras} do not install"


def test_the_check_catches_a_dependency_no_extra_installs() -> None:
    """The check above can fail: matplotlib (the notebook's plots) comes only with `eval`, so a notebook that
    documented another extra would be caught. (jinja2, the original bug, is a core dependency now: prompt
    templates need it.)"""
    assert "matplotlib" in closure(["eval"])
    assert "matplotlib" not in closure([]) and "matplotlib" not in closure(["curate", "estimate"])
    assert "jinja2" in closure([])


def test_make_test_installs_before_it_tests() -> None:
    """`make test` on a fresh clone: the install guard (every extra the suite imports) runs before pytest."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("make") is None:
        pytest.skip("no make")
    lines = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    guard = next(i for i, ln in enumerate(lines) if "scripts/install_cpu.sh" in ln)
    assert guard < next(i for i, ln in enumerate(lines) if "-m pytest" in ln)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dist in ("pytest", "pytest-timeout", "packaging"):  # the dev extra the suite itself needs
        assert any(_norm(Requirement(r).name) == dist for r in project["optional-dependencies"]["dev"])
        assert dist.replace("-", "_") in lines[guard]
