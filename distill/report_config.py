"""The `report:` section. Light: no rendering code."""

from __future__ import annotations

from pydantic import Field

from distill.schema import Section


class ReportConfig(Section):
    title: str | None = Field(default=None, description="heading of report.md and the chart (default: `distill "
                                                        "report: <name>`)")
    benchmarks: list[str] | None = Field(default=None, description="columns, in order (default: all evaluated)")
    models: list[str] | None = Field(default=None, description="rows, in order (default: all evaluated)")
    primary: str | None = Field(default=None, description="benchmark behind `teacher_accuracy` / `student_accuracy` "
                                                          "/ `student_over_teacher` (default: the first column)")

