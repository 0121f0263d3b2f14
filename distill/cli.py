"""The `distill` command: one subcommand per stage. Parses, calls, prints — no logic here.

A `DistillError` (a user mistake) prints as one `error:` line and exits 2; Ctrl-C exits 130 with the cache intact.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import DistillError, redact

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help: str, args: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (help, args, fn)
        return fn
    return wrap


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="pipelines/demo.yaml", help="pipeline YAML (default: pipelines/demo.yaml)")
    p.add_argument("--force", action="store_true", help="re-run even if the stage is up to date")


def _load(args: argparse.Namespace) -> Any:
    from distill.config import load_config

    return load_config(args.config)


def _need(cfg: Any, section: str) -> Any:
    value = getattr(cfg, section, None)
    if value is None:
        raise DistillError(f"{cfg.name}: the config has no `{section}:` section")
    return value


@command("collect", "query the teacher(s) for every prompt (cached, resumable)", _config_args)
def _collect(args: argparse.Namespace) -> int:
    from distill.collect import run_collect

    cfg = _load(args)
    summary = run_collect(_need(cfg, "collect"), cfg.root / "collect", cfg.cache_file, force=args.force)
    print(f"collect: {summary['records']} records in {cfg.root / 'collect'} "
          f"(new {summary['completed']}, cached {summary['from_cache']}, failed {summary['failed']}, "
          f"${summary['cost_usd']:.4f})")
    return 0 if summary.get("complete") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="black-box LLM distillation, stage by stage")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, fn) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DistillError as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything answered so far is in the cache; re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
