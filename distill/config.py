"""Pipeline config: one YAML file, one pydantic section per stage (each defined beside the code that reads it).

`${VAR}` / `${VAR:-default}` are taken from the environment, after a `.env` beside the config (and one in the
working directory) is loaded; secrets are `SecretStr` so they never print. Any unknown key or wrong type is one
`ConfigError` naming the file and the key path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from distill.collect.config import CollectConfig
from distill.curate.config import CurateConfig
from distill.demo.config import DemoConfig
from distill.errors import ConfigError
from distill.eval_config import EvalConfig
from distill.push_config import PushConfig
from distill.report_config import ReportConfig
from distill.rounds.config import RoundsConfig
from distill.rundir import RunLayout
from distill.schema import Section
from distill.serve_config import ServeConfig
from distill.train.config import TrainConfig


class PipelineConfig(Section):
    """The whole pipeline: which stages run with which settings."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="pipeline name (letters, digits, `_.-`)")
    run_dir: Path | None = Field(default=None, description="where stage outputs go (default: `runs/<name>`)")
    cache_path: Path | None = Field(default=None, description="the response cache shared by collect and eval "
                                                              "(default: `<run_dir>/cache/llm.sqlite`)")
    collect: CollectConfig | None = Field(default=None, description="for `distill collect`")
    curate: CurateConfig | None = Field(default=None, description="for `distill curate`")
    train: TrainConfig | None = Field(default=None, description="for `distill train`")
    serve: ServeConfig | None = Field(default=None, description="for `distill serve`; also the shape of an eval "
                                      "model's `serve:`")
    eval: EvalConfig | None = Field(default=None, description="for `distill eval`")
    report: ReportConfig | None = Field(default=None, description="optional")
    push: PushConfig | None = Field(default=None, description="for `distill push`")
    demo: DemoConfig | None = Field(default=None, description="optional; read by `distill demo` only")
    rounds: RoundsConfig | None = Field(default=None, description="for `distill rounds`")

    @property
    def root(self) -> Path:
        return self.run_dir if self.run_dir is not None else Path("runs") / self.name

    @property
    def cache_file(self) -> Path:
        return self.layout.cache

    @property
    def layout(self) -> RunLayout:
        """Every path of this run (runs/<name>/collect, .../train/merged, the cache, ...)."""
        return RunLayout(self.root, self.cache_path)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str, source: str) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), source) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}.{i}", source) for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name)
            if value is None:
                if default is None:
                    raise ConfigError(
                        f"{source}: {path}: environment variable ${{{name}}} is not set "
                        f"(export it, put it in .env, or write ${{{name}:-default}})"
                    )
                return default
            return value

        return _VAR.sub(sub, node)
    return node


def _load_dotenv(config_path: Path) -> None:
    from dotenv import load_dotenv

    for candidate in (config_path.parent / ".env", Path.cwd() / ".env"):
        if candidate.is_file():
            load_dotenv(candidate, override=False)


def format_validation_error(err: ValidationError, source: str) -> str:
    """One message naming every bad key path; user values that may be secrets are not echoed."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines) if len(lines) > 1 else lines[0]


def parse_config(data: Any, source: str = "<config>") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    data = _interpolate(data, "", source)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    _load_dotenv(path)
    from distill.userfn import set_config_dir

    set_config_dir(path.parent)  # `module:function` references are looked for beside the pipeline file first
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    return parse_config(data, str(path))
