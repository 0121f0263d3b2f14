"""Every shipped pipeline validates, and config errors are one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.config import load_config, parse_config
from distill.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_validate(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENROUTER_API_KEY"):
        monkeypatch.setenv(var, "sk-placeholder")
    cfg = load_config(path)
    assert cfg.name and cfg.collect is not None


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
