"""Reasoning traces from every provider shape land in one schema (`reasoning`, `reasoning_status`), over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.cli import main
from distill.collect import load_records
from distill.llm.parse import parse_message, split_think
from tests.collect.test_collect import KEY, write_config

SHAPES = {
    "reasoning_content": "full", "reasoning": "full", "details": "full", "think": "full",
    "summary": "summarized", "encrypted": "redacted", "unknown": "unknown", "none": "absent",
}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_KEY", KEY)


def test_every_reasoning_shape_over_http(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=1)
    with (tmp_path / "prompts.jsonl").open("w") as f:
        for shape in SHAPES:
            f.write(json.dumps({"qid": shape, "question": f"[reasoning:{shape}] What is 2 plus 2?", "answer": "4"}) + "\n")
    assert main(["collect", "-c", str(cfg)]) == 0
    rows = {r["prompt_id"]: r for r in load_records(tmp_path / "run" / "collect")}
    for shape, status in SHAPES.items():
        r = rows[shape]
        assert r["reasoning_status"] == status, shape
        assert r["completion"].startswith("Echo: [reasoning:"), f"{shape}: the answer must be kept clean"
        assert "<think>" not in r["completion"]
        if status in ("full", "summarized"):
            assert r["reasoning"].startswith("First I think about"), shape
            assert r["reasoning_tokens"] > 0
        if status == "unknown":
            assert r["reasoning"] is None and "thinking_blocks" in json.loads(r["raw"])
        else:
            assert r["raw"] is None
    s = json.loads((tmp_path / "run" / "collect" / "summary.json").read_text())
    assert s["reasoning_status"] == {"full": 4, "summarized": 1, "redacted": 1, "unknown": 1, "absent": 1}
    assert s["reasoning_tokens"] > 0 and s["completion_tokens"] > s["reasoning_tokens"]
    assert "`raw` column" in capsys.readouterr().err


def test_reasoning_request_options_pass_through(tmp_path: Path, fake_server) -> None:
    srv = fake_server(api_key=KEY)
    cfg = write_config(tmp_path, srv.base_url, n_prompts=2, params={
        "max_completion_tokens": 64, "reasoning_effort": "high", "reasoning": {"effort": "low", "exclude": False},
        "extra_body": {"provider": {"order": ["x"]}}})
    assert main(["collect", "-c", str(cfg)]) == 0
    params = json.loads(load_records(tmp_path / "run" / "collect")[0]["params"])
    assert params["reasoning_effort"] == "high" and params["reasoning"] == {"effort": "low", "exclude": False}
    assert params["extra_body"] == {"provider": {"order": ["x"]}}


def test_think_split_edge_cases() -> None:
    assert split_think("<think>a\nb</think>\n\nThe answer is 3.") == ("a\nb", "The answer is 3.")
    assert split_think("The answer is 3.") == (None, "The answer is 3.")
    assert split_think("  <think>unterminated trace") == ("unterminated trace", "")
    assert split_think("Answer <think>not at start</think>") == (None, "Answer <think>not at start</think>")
    # a provider field wins over an inline tag; the content is still the answer
    m = parse_message({"content": "The answer is 3.", "reasoning_content": "1+2=3"})
    assert (m["reasoning"], m["completion"], m["reasoning_status"]) == ("1+2=3", "The answer is 3.", "full")
