"""The `demo:` section: what `distill demo` needs beyond the ordinary stages (which teacher to serve, the scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from distill.schema import Section


class CIScale(Section):
    """`scale: ci` shrinks the run so it fits a CI job: fewer prompts, eval items and training steps."""

    prompts: int = Field(default=1500, gt=0, description="collection prompts (collect.prompts.limit)")
    eval_items: int = Field(default=100, gt=0, description="held-out problems (eval.limit)")
    train_steps: int = Field(default=600, gt=0, description="student training steps (train.max_steps)")
    answer_only: bool = Field(default=False, description="also train + evaluate the answer-only student")


class DemoConfig(Section):
    teacher: Path = Field(default=Path("data/demo/teacher"), description="teacher model dir (with SHA256SUMS); "
                          "built with `make teacher` when missing")
    teacher_eval_model: str = Field(default="teacher", description="the eval model that queries the served teacher")
    student_eval_model: str = Field(default="student", description="the eval model serving the distilled student")
    answer_only_eval_model: str = Field(default="answer-only", description="eval model serving the answer-only "
                                        "student; its training data is the curated set with every assistant turn "
                                        "cut to the teacher's final 'The answer is N.'")
    base_eval_model: str = Field(default="untrained", description="eval model serving the student before training")
    answer_only: bool = Field(default=True, description="train and evaluate the answer-only comparison student")
    scale: Literal["full", "ci"] = Field(default="full", description="ci: the reduced run of `ci:` (env "
                                         "DISTILL_DEMO_SCALE overrides)")
    ci: CIScale = Field(default_factory=CIScale)
    threads: int | None = Field(default=None, gt=0, description="torch threads for training; default: torch's")
    parallel_eval: bool = Field(default=True, description="start the students' vLLM servers at the same time "
                                "(each start is mostly waiting; this saves minutes)")
