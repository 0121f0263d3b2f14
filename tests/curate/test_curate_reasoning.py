"""Curate with reasoning teachers: how the trace enters the assistant turn, trace filters, partial traces refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.curate import load_curated, run_curate
from distill.errors import InputError
from distill.rundir import RunLayout
from tests.curate.test_curate import _cfg, write_collect_dir

TRACE = "7 + 5 = 12, carry 1; then 1 + 1 + 1 = 3"


def records(statuses: dict[str, tuple[str | None, str, str]]) -> list[dict]:
    out = []
    for i, (pid, (trace, status, answer)) in enumerate(statuses.items()):
        out.append({"id": f"k{i}", "prompt_id": pid, "sample_index": 0, "teacher": "r1", "model": "r1",
                    "messages": [{"role": "user", "content": f"What is 17 + {i}5? Question number {pid}."}],
                    "completion": answer, "reasoning": trace, "reasoning_status": status,
                    "finish_reason": "stop", "reference": None, "metadata": "{}"})
    return out


BASIC = {
    "full-1": (TRACE, "full", "The answer is 32."),
    "full-2": (TRACE + " and more steps here", "full", "So the answer is 43."),
    "none-1": (None, "absent", "The answer is 54."),
    "noans": (TRACE + " but it stops", "full", ""),
}


def _run(tmp_path: Path, recs: list[dict], **cfg):
    write_collect_dir(tmp_path, recs)
    over = {"validation_fraction": 0.0, "decontam": {"enabled": False}, "near_dedup": {"enabled": False},
            "verify": {"enabled": False}, "empty": {"enabled": True}, **cfg}
    summary = run_curate(_cfg(**over), RunLayout(tmp_path))
    ds = load_curated(tmp_path / "curate")["train"]
    return summary, {r["prompt_id"]: r for r in ds}


def test_think_mode_is_default_and_wraps_the_trace(tmp_path: Path) -> None:
    summary, rows = _run(tmp_path, records(BASIC))
    assert rows["full-1"]["messages"][-1]["content"] == f"<think>\n{TRACE}\n</think>\n\nThe answer is 32."
    assert rows["none-1"]["messages"][-1]["content"] == "The answer is 54."  # no trace, nothing to wrap
    # a trace with no answer after it is removed by the trace filter, and counted there
    assert "noans" not in rows and summary["filters"]["trace"]["removed"] == 1


def test_field_mode_puts_the_trace_in_reasoning_content(tmp_path: Path) -> None:
    _, rows = _run(tmp_path, records(BASIC), reasoning="field")
    last = rows["full-1"]["messages"][-1]
    assert last["content"] == "The answer is 32." and last["reasoning_content"] == TRACE
    assert rows["full-1"]["messages"][0]["reasoning_content"] is None
    assert rows["none-1"]["messages"][-1]["reasoning_content"] is None


def test_drop_mode_trains_on_answers_only(tmp_path: Path) -> None:
    _, rows = _run(tmp_path, records(BASIC), reasoning="drop")
    assert rows["full-1"]["messages"][-1]["content"] == "The answer is 32."


def test_trace_filters_require_and_bound(tmp_path: Path) -> None:
    summary, rows = _run(tmp_path, records(BASIC), trace={"require_trace": True, "max_tokens": 12})
    # none-1 has no trace, full-2's trace is longer than 12 tokens (chars/4), noans has no answer
    assert set(rows) == {"full-1"} and summary["filters"]["trace"]["removed"] == 3


def test_summarized_or_redacted_traces_are_refused_unless_allowed(tmp_path: Path) -> None:
    recs = records({**BASIC, "sum": ("a short summary of the reasoning", "summarized", "The answer is 65."),
                    "red": (None, "redacted", "The answer is 76.")})
    with pytest.raises(InputError, match=r"1 summarized, 1 redacted reasoning traces.*allow_partial_traces: true"):
        _run(tmp_path, recs)
    _, rows = _run(tmp_path / "allowed", recs, allow_partial_traces=True)
    assert rows["sum"]["messages"][-1]["content"].startswith("<think>\na short summary")
    _, rows = _run(tmp_path / "dropped", recs, reasoning="drop")
    assert rows["sum"]["messages"][-1]["content"] == "The answer is 65."


def test_trace_ratio_drops_traces_far_longer_than_their_answer(tmp_path: Path) -> None:
    recs = records({**BASIC, "ramble": (" ".join([TRACE] * 10), "full", "It is 42.")})
    summary, rows = _run(tmp_path / "off", recs)
    assert "ramble" in rows and summary["filters"]["trace_ratio"] == {"enabled": False, "removed": 0}  # off by default
    # tokens (chars/4 here): ramble's trace is 100 tokens over a 3-token answer (33x); full-1 2x, full-2 3x
    summary, rows = _run(tmp_path / "tokens", recs, trace_ratio={"enabled": True, "max_ratio": 20})
    assert set(rows) == {"full-1", "full-2", "none-1"}
    ratio = summary["filters"]["trace_ratio"]
    assert ratio["removed"] == 1 and [e["prompt_id"] for e in ratio["examples"]] == ["ramble"]
    # characters: full-2's trace is 59 chars over a 20-char answer (2.95x), full-1's 39 over 17 (2.29x)
    summary, rows = _run(tmp_path / "chars", recs, trace_ratio={"enabled": True, "max_ratio": 2.5, "unit": "chars"})
    assert set(rows) == {"full-1", "none-1"} and summary["filters"]["trace_ratio"]["removed"] == 2
    # its place in the table is its place in summary.json and on the dataset card: right after `trace`
    names = list(summary["filters"])
    assert names.index("trace_ratio") == names.index("trace") + 1
    card = (tmp_path / "chars" / "curate" / "README.md").read_text()
    assert card.index("| trace | 1 |") < card.index("| trace_ratio | 2 |") < card.index("| empty |")
