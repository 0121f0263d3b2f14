"""The `report:` section. Light: no rendering code."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from distill.schema import Section

Percent = Annotated[float, Field(ge=0, le=100)]


class PublishedScores(Section):
    """Scores a model's makers published, shown beside the measured ones so a claim can be checked."""

    scores: dict[str, Percent] = Field(description="benchmark name (an eval benchmark, e.g. `mmlu`) -> the "
                                                   "published score in % (0-100)")
    source: str | None = Field(default=None, description="where the numbers come from (a URL, a model card)")
    note: str | None = Field(default=None, description="the protocol they were measured with, when it is not ours "
                                                       "(e.g. `MMLU 5-shot log-likelihood; HumanEval 0-shot`)")


class ReportConfig(Section):
    title: str | None = Field(default=None, description="heading of report.md and the chart (default: `distill "
                                                        "report: <name>`)")
    benchmarks: list[str] | None = Field(default=None, description="columns, in order (default: all evaluated)")
    models: list[str] | None = Field(default=None, description="rows, in order (default: all evaluated)")
    primary: str | None = Field(default=None, description="benchmark behind `teacher_accuracy` / `student_accuracy` "
                                                          "/ `student_over_teacher` (default: the first column)")
    published: dict[str, PublishedScores] = Field(default_factory=dict, description="eval model name -> its "
                                                                                     "published scores (`scores`, "
                                                                                     "`source`, `note`), shown "
                                                                                     "beside the measured ones "
                                                                                     "with the difference")
