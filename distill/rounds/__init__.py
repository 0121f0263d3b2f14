"""Gap-driven collection in rounds (`distill rounds`). The package face stays light: `config.py` is read when a
pipeline YAML loads; the machinery (`run.py`, `acquire.py`) is imported on first use."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("run_rounds", "round_layout"):
        from distill.rounds import run

        return getattr(run, name)
    raise AttributeError(name)
