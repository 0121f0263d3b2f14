"""Base class of every config section: unknown keys are errors, never silently ignored."""

from typing import TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def require_unique_names(items: list[T], what: str) -> list[T]:
    """For a field validator: items are addressed by `.name` (records, run dirs), so a repeat is an error."""
    names = [getattr(i, "name") for i in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what} names must be unique (repeated: {', '.join(dup)})")
    return items
