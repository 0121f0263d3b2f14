"""The `demo:` section: what `distill demo` needs beyond the ordinary stages (which teacher to serve, the scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.schema import Section


class CIScale(Section):
    """`scale: ci` shrinks the run so it fits a CI job: fewer prompts, eval items and training steps."""

    prompts: int = Field(default=1500, gt=0, description="what `scale: ci` sets `collect.prompts.limit` to")
    eval_items: int = Field(default=100, gt=0, description="what `scale: ci` sets `eval.limit` to")
    train_steps: int = Field(default=1200, gt=0, description="what `scale: ci` sets `train.max_steps` to (1200: past the edge where 600 swung 7-63% over seeds)")
    answer_only: bool = Field(default=False, description="what `scale: ci` sets `demo.answer_only` to")


class DemoConfig(Section):
    teacher: Path = Field(default=Path("data/demo/teacher"), description="teacher model dir, checked against its "
                                                                         "`SHA256SUMS`; trained there when missing. "
                                                                         "It is served at "
                                                                         "`collect.teachers[0].base_url` (loopback, "
                                                                         "explicit port) as "
                                                                         "`collect.teachers[0].model`")
    teacher_eval_model: str = Field(default="teacher", description="the `eval.models` entry that plays the teacher")
    student_eval_model: str = Field(default="student", description="the `eval.models` entry that plays the trained "
                                                                   "student")
    answer_only_eval_model: str = Field(default="answer-only", description="the `eval.models` entry that plays the "
                                                                           "answer-only student")
    base_eval_model: str = Field(default="untrained", description="the `eval.models` entry that plays the untrained "
                                                                  "student")
    answer_only: bool = Field(default=True, description="also train and evaluate the student on the teacher's final "
                                                        "answers only (data: `<run_dir>/answer-only/curate/`, "
                                                        "model: `<run_dir>/answer-only/train/merged`)")
    scale: Literal["full", "ci"] = Field(default="full", description="`ci`: the reduced run below, in "
                                                                     "`<run_dir>-ci`; the env var "
                                                                     "`DISTILL_DEMO_SCALE` overrides")
    ci: CIScale = Field(default_factory=CIScale)
    threads: int | None = Field(default=None, gt=0, description="torch threads for training (1 can beat 2 on a box "
                                                                "whose cores are busy) (default: torch's default)")
    parallel_eval: bool = Field(default=True, description="evaluate the untrained student while the teacher works, "
                                                          "and start the trained students' servers side by side")
