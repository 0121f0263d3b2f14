"""Multi-turn generation over real HTTP: a second model (or a function) plays the user for N turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records

KEY = "sk-test-0123456789abcdefSECRET"


def pipeline(tmp: Path, base_url: str, conversation: dict, n_prompts: int = 3, **teacher: object) -> Path:
    with (tmp / "prompts.jsonl").open("w") as f:
        for i in range(n_prompts):
            f.write(json.dumps({"qid": f"q{i}", "question": f"Explain topic {i}."}) + "\n")
    ep = {"base_url": base_url, "api_key": KEY, "concurrency": 4,
          "retry": {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.02}}
    cfg = {"name": "t", "run_dir": str(tmp / "run"), "collect": {
        "prompts": {"path": str(tmp / "prompts.jsonl"), "id_field": "qid", "field": "question"},
        "teachers": [{"name": "t1", "model": "gpt-4o-mini", "system_prompt": "Be brief.",
                      "params": {"max_tokens": 400}, **ep, **teacher}],
        "progress": False, "conversation": conversation}}
    if "user" in conversation:
        conversation["user"] = {**ep, **conversation["user"]}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def ok(srv) -> list[dict]:
    return [e for e in srv.served() if e.get("kind") == "ok"]


def test_a_model_plays_the_user_for_three_turns(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    cfg = pipeline(tmp_path, srv.base_url, {"turns": 3, "user": {"name": "sim", "model": "gpt-4o-mini"}})
    assert main(["collect", "-c", str(cfg)]) == 0
    # 3 prompts x (3 teacher turns + 2 simulated user turns)
    assert len(ok(srv)) == 3 * 5
    ds = load_records(tmp_path / "run/collect")
    assert len(ds) == 9 and sorted(set(ds["turn"])) == [1, 2, 3]
    last = [r for r in ds if r["prompt_id"] == "q1" and r["turn"] == 3][0]
    roles = [m["role"] for m in last["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    # each user turn is the simulator's answer to the transcript; each assistant turn the teacher's answer
    assert last["messages"][3]["content"].startswith("Echo: Conversation so far:\n\nUSER: Explain topic 1.")
    turn2 = [r for r in ds if r["prompt_id"] == "q1" and r["turn"] == 2][0]
    assert last["messages"][4]["content"] == turn2["completion"]
    assert last["completion"].startswith("Echo: " + last["messages"][-1]["content"][:40])
    assert last["user_source"] == "sim (gpt-4o-mini)" and last["user_response_id"].startswith("chatcmpl-")
    first = [r for r in ds if r["prompt_id"] == "q1" and r["turn"] == 1][0]
    assert first["user_source"] is None and first["messages"][-1]["content"] == "Explain topic 1."
    s = json.loads((tmp_path / "run/collect/summary.json").read_text())
    assert s["conversations"] == {"turns": 3, "per_teacher_per_turn": {"t1": {"1": 3, "2": 3, "3": 3}}}
    assert s["completed"] == 15 and s["complete"] is True

    # every turn, the simulated user's included, comes back from the cache
    assert main(["collect", "-c", str(cfg), "--force"]) == 0
    assert len(ok(srv)) == 15 and len(load_records(tmp_path / "run/collect")) == 9


def test_a_function_plays_the_user_and_can_end_a_conversation(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    (tmp_path / "sim.py").write_text(
        "def next_user(row, messages):\n"
        "    if row['qid'] == 'q1':\n"
        "        return None  # q1 ends after one answer\n"
        "    if row['qid'] == 'q2' and len(messages) > 3:\n"
        "        raise RuntimeError('simulator broke')\n"
        "    return f\"Why? (after {len(messages)} messages)\"\n")
    cfg = pipeline(tmp_path, srv.base_url, {"turns": 3, "user_function": "sim:next_user"})
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run/collect")
    turns = sorted((r["prompt_id"], r["turn"]) for r in ds)
    assert turns == [("q0", 1), ("q0", 2), ("q0", 3), ("q1", 1), ("q2", 1), ("q2", 2)]
    q0 = [r for r in ds if r["prompt_id"] == "q0" and r["turn"] == 3][0]
    assert q0["messages"][-1] == {"role": "user", "content": "Why? (after 4 messages)"}
    assert q0["user_source"] == "function sim:next_user"
    fails = [json.loads(x) for x in (tmp_path / "run/collect/failures.jsonl").read_text().splitlines()]
    assert len(fails) == 1 and fails[0]["prompt_id"] == "q2" and "simulator broke" in fails[0]["error"]
    assert len(ok(srv)) == 3 + 2 + 1


@pytest.mark.parametrize(("conversation", "teacher", "expected"), [
    ({"turns": 2}, {}, "turns > 1 needs exactly one of `user`"),
    ({"turns": 2, "user_function": "sim:f"}, {"params": {"n": 2, "max_tokens": 10}}, "needs params.n: 1"),
])
def test_multi_turn_config_errors(tmp_path: Path, capsys, conversation, teacher, expected) -> None:
    cfg = pipeline(tmp_path, "http://127.0.0.1:9/v1", conversation, **teacher)
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
