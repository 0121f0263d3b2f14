"""Every shipped pipeline validates, and config errors are one clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.config import load_config, parse_config
from distill.errors import ConfigError
from tests.paths import REPO



@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_validate(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.setenv(var, "sk-placeholder")
    cfg = load_config(path)
    assert cfg.name and (cfg.collect is not None or cfg.eval is not None)  # compare.yaml: eval + report only


def test_secret_is_masked_in_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "sk-verysecret-000000000000")
    cfg = parse_config({"name": "x", "collect": {"prompts": {"path": "p.jsonl", "field": "q"},
                                                 "teachers": [{"name": "t", "model": "m", "api_key": "${K}"}]}})
    assert "verysecret" not in cfg.model_dump_json() and "verysecret" not in repr(cfg)
    assert cfg.collect.teachers[0].api_key.get_secret_value() == "sk-verysecret-000000000000"


def test_env_default_and_errors() -> None:
    cfg = parse_config({"name": "x", "run_dir": "${NOPE_NOT_SET:-runs/y}"})
    assert str(cfg.root) == "runs/y"
    with pytest.raises(ConfigError, match=r"name: String should match pattern"):
        parse_config({"name": "has space"})
    with pytest.raises(ConfigError, match="set exactly one of field, template, messages_field"):
        parse_config({"name": "x", "collect": {"prompts": {"path": "p"}, "teachers": [{"name": "t", "model": "m"}]}})
    with pytest.raises(ConfigError, match="teacher names must be unique"):
        parse_config({"name": "x", "collect": {"prompts": {"path": "p", "field": "q"},
                                               "teachers": [{"name": "t", "model": "m"}, {"name": "t", "model": "n"}]}})


def test_reading_a_config_imports_no_heavy_library_and_no_stage_code() -> None:
    """Each section lives in a light module beside its stage: loading a YAML never pays for openai, pyarrow,
    datasets or torch, nor for the code of the stages it configures."""
    code = ("import json, sys; from distill.config import load_config; load_config('pipelines/demo.yaml'); "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    loaded = set(json.loads(out.stdout))
    heavy = {"openai", "pyarrow", "datasets", "torch", "transformers", "numpy", "pandas", "rich"}
    stages = {"distill.collect.stage", "distill.collect.estimate", "distill.evaluate", "distill.report", "distill.push",
              "distill.serve", "distill.curate.pipeline", "distill.train.trainer", "distill.demo.run"}
    assert not (heavy | stages) & loaded, sorted((heavy | stages) & loaded)
    assert "distill.collect.config" in loaded and "distill.eval_config" in loaded  # it did read the sections


def test_readme_config_reference_is_generated_from_the_models(tmp_path: Path) -> None:
    """The README's tables are the models' field descriptions: a field added, renamed or re-described without
    regenerating (`python -m distill.devtools.config_doc`) fails here."""
    from distill.devtools.config_doc import README, generate, main

    assert main(["--check"]) == 0, "README.md is stale: run `python -m distill.devtools.config_doc`"
    ref = generate()
    for key in ("`name`", "`prompts.path`", "`params.max_tokens`", "`near_dedup.threshold`", "`lora.r`",
                "`models[].role`", "`benchmarks[].options`", "`ci.train_steps`", "`repo_id`"):
        assert f"| {key} |" in ref
    # and the check does fail on a README that disagrees
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text(encoding="utf-8").replace("| `lora.r` |", "| `lora.rank` |"), encoding="utf-8")
    assert main(["--check", "--readme", str(stale)]) == 1
