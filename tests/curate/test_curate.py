"""curate end to end on hand-made collect records: each filter's removals, the dataset on disk, the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distill.curate import CurateConfig, load_curated, run_curate
from distill.curate.verify import rejection_sample
from distill.errors import DistillError, InputError
from distill.rundir import RunLayout
from tests.paths import FIXTURES

CURATE = FIXTURES / "curate"


def fixture_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CURATE / "records.jsonl").read_text().splitlines() if line.strip()]


def write_collect_dir(run_dir: Path, records: list[dict[str, Any]], *, drop: tuple[str, ...] = (),
                      format_version: int | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.collect import RECORD_COLUMNS
    from distill.rundir import base_summary, write_json

    defaults = {"requested_model": None, "base_url": "http://127.0.0.1:1/v1", "reasoning_status": "absent",
                "prompt_tokens": 10, "completion_tokens": 20, "reasoning_tokens": 0, "cost_usd": 0.0,
                "latency_s": 0.1, "created_at": 0.0, "response_id": "r", "attempts": 1, "params": "{}"}
    rows = []
    for r in records:
        row = {c: r.get(c, defaults.get(c)) for c in RECORD_COLUMNS if c not in drop}
        rows.append(row)
    out = run_dir / "collect"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), out / "records-00000.parquet")
    summary = base_summary("collect", "fixture", {})
    summary.update(records=len(rows), cost_usd=0.0, complete=True)
    if format_version is not None:
        summary["format_version"] = format_version
    write_json(out / "summary.json", summary)
    return out


def _cfg(**over) -> CurateConfig:
    base = {
        "validation_fraction": 0.25,
        "progress": False,
        "verify": {"timeout_s": 2},
        "decontam": {"benchmarks": [
            {"name": "gsm8k", "source": str(CURATE / "gsm8k_test.jsonl")},
            {"name": "mmlu", "source": str(CURATE / "mmlu_test.jsonl")},
            {"name": "humaneval", "source": str(CURATE / "humaneval_test.jsonl")},
        ]},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return CurateConfig.model_validate(base)


def _removed(summary, name):
    return summary["filters"][name]["removed"]


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    write_collect_dir(run, fixture_records())
    summary = run_curate(_cfg(), RunLayout(run))
    return run, summary


def test_every_filter_removes_what_it_should(curated):
    run, s = curated
    ids = {r["id"] for split in load_curated(run / "curate").values() for r in split}
    gone = {r["id"] for r in fixture_records()} - ids
    expected_gone = {"err", "empty", "trunc", "cfilter", "refuse", "ai-disc", "repeat", "num-bad", "rs-0", "mc-bad",
                     "code-bad", "code-loop", "dup-b", "near-b", "contam-copy", "contam-mmlu", "contam-he"}
    assert gone == expected_gone
    # tricky cases that must survive: a paraphrased benchmark question, an unverifiable answer, a foreign language
    # answer (the language filter is off by default), all correct samples kept under keep=all
    assert {"contam-para", "haiku", "french", "rs-1", "rs-2", "num-ok", "mc-ok", "code-ok"} <= ids
    f = s["filters"]
    assert f["errors"]["removed"] == 1 and f["empty"]["removed"] == 1
    assert f["finish_reason"]["removed"] == 2 and f["finish_reason"]["by_reason"] == {"content_filter": 1, "length": 1}
    assert f["refusal"]["removed"] == 2 and f["repetition"]["removed"] == 1
    assert f["verify"]["removed"] == 5 and f["verify"]["counts"]["correct"] >= 6
    assert f["rejection_sampling"]["removed"] == 0
    assert f["exact_dedup"]["removed"] == 1 and f["exact_dedup"]["examples"][0]["duplicate_of"] == "dup-a"
    assert f["near_dedup"]["removed"] == 1 and f["near_dedup"]["examples"][0]["duplicate_of"] == "near-a"
    assert f["language"] == {"enabled": False, "removed": 0}
    per = f["decontam"]["per_benchmark"]
    assert {k: v["removed"] for k, v in per.items()} == {"gsm8k": 1, "mmlu": 1, "humaneval": 1}
    hits = {e["id"]: e["benchmark"] for e in f["decontam"]["examples"]}
    assert hits == {"contam-copy": "gsm8k", "contam-mmlu": "mmlu", "contam-he": "humaneval"}
    assert all(len(v.get("examples", [])) <= 3 for v in f.values())
    assert s["records_in"] == 30 and s["records_out"] == 30 - len(expected_gone)
    assert s["token_count_method"] == "chars/4"
    from distill.curate.pipeline import STEPS

    assert list(f) == [step.name for step in STEPS]  # the table's order is the summary's (and the card's)


def test_dataset_on_disk_is_chat_messages_split_by_prompt(curated):
    from datasets import load_from_disk

    run, s = curated
    dd = load_from_disk(str(run / "curate" / "dataset"))
    assert set(dd) == {"train", "validation"} and len(dd["validation"]) > 0
    assert not set(dd["train"]["prompt_id"]) & set(dd["validation"]["prompt_id"])
    row = next(r for r in dd["train"].to_list() + dd["validation"].to_list() if r["id"] == "num-ok")
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    # by default the teacher's trace enters the assistant turn R1-style (curate.reasoning: think)
    assert row["messages"][-1]["content"] == "<think>\nadd them\n</think>\n\n1200 + 34 = 1234. The answer is 1,234."
    assert row["verification"] == "correct" and row["teacher"] == "t1" and row["reasoning"] == "add them"
    assert not [c for c in dd["train"].column_names if c.startswith("_")]
    # `completion` would make TRL treat the data as prompt-completion pairs; the teacher's text is kept as raw_completion
    assert "completion" not in dd["train"].column_names
    assert row["raw_completion"] == "1200 + 34 = 1234. The answer is 1,234."
    card = (run / "curate" / "README.md").read_text()
    for word in ("t1", "t2", "near_dedup", "decontam", "gsm8k", "humaneval", "refusal"):
        assert word in card
    assert s["teachers"]["t2"] == {"in": 2, "kept": 2, "models": ["t2-model"]}


def test_fresh_stage_is_skipped_and_force_reruns(curated):
    run, s = curated
    again = run_curate(_cfg(), RunLayout(run))
    assert again["finished_at"] == s["finished_at"] and again["fingerprint"] == s["fingerprint"]
    changed = run_curate(_cfg(near_dedup={"enabled": False}), RunLayout(run))
    assert changed["fingerprint"] != s["fingerprint"] and changed["filters"]["near_dedup"]["enabled"] is False
    assert changed["records_out"] == s["records_out"] + 1


def test_options_reasoning_language_and_rejection_policy(tmp_path):
    write_collect_dir(tmp_path, fixture_records())
    s = run_curate(_cfg(reasoning="think", language={"enabled": True}, verify={"keep": "shortest", "timeout_s": 2},
                        decontam={"enabled": False}), RunLayout(tmp_path))
    ids = {r["id"]: r for split in load_curated(tmp_path / "curate").values() for r in split}
    assert "french" not in ids and s["filters"]["language"]["removed"] == 1
    assert "rs-2" in ids and "rs-1" not in ids  # shortest correct of the prompt's samples
    assert ids["num-ok"]["messages"][-1]["content"].startswith("<think>\nadd them\n</think>")


def test_rejection_sample_policies():
    codes = np.array([0, 0, 0, 1, 1, 2])
    status = np.array(["incorrect", "correct", "correct", "correct", "correct", "unverifiable"])
    lengths = np.array([5, 30, 10, 7, 7, 1])
    assert rejection_sample(codes, status, lengths, "all").tolist() == [False, True, True, True, True, True]
    assert rejection_sample(codes, status, lengths, "first").tolist() == [False, True, False, True, False, True]
    assert rejection_sample(codes, status, lengths, "shortest").tolist() == [False, False, True, True, False, True]
    assert rejection_sample(codes, status, lengths, "first", drop_unverifiable=True)[-1] == False  # noqa: E712


def test_student_tokenizer_counts_tokens(tmp_path, tiny_model):
    write_collect_dir(tmp_path, fixture_records())
    s = run_curate(_cfg(student_tokenizer=str(tiny_model), length={"max_tokens": 60}, decontam={"enabled": False}),
                   RunLayout(tmp_path))
    assert s["token_count_method"] == f"tokenizer {tiny_model}"
    assert s["filters"]["length"]["removed"] > 0  # the long answers are > 60 tokens of the digit-level tokenizer
    rows = [r for split in load_curated(tmp_path / "curate").values() for r in split]
    assert max(r["assistant_tokens"] for r in rows) <= 60


def test_filter_that_removes_everything_is_an_error(tmp_path):
    write_collect_dir(tmp_path, fixture_records())
    with pytest.raises(InputError, match=r"filter `length` removed all 24 remaining records"):
        run_curate(_cfg(length={"min_chars": 100_000}), RunLayout(tmp_path))
    assert not (tmp_path / "curate").exists()


def test_missing_columns_are_named(tmp_path):
    write_collect_dir(tmp_path, fixture_records(), drop=("completion", "finish_reason"))
    with pytest.raises(InputError, match=r"lack column\(s\) completion, finish_reason"):
        run_curate(_cfg(), RunLayout(tmp_path))


def test_unknown_run_dir_version_is_refused(tmp_path):
    write_collect_dir(tmp_path, fixture_records(), format_version=99)
    with pytest.raises(InputError, match="format_version=99"):
        run_curate(_cfg(), RunLayout(tmp_path))


def test_unloadable_benchmark_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_collect_dir(tmp_path, fixture_records())
    with pytest.raises(DistillError, match=r"curate.decontam.benchmarks\[gsm8k\]"):
        run_curate(_cfg(decontam={"benchmarks": [{"name": "gsm8k"}]}), RunLayout(tmp_path))


def test_cli_curate(tmp_path):
    import subprocess
    import sys

    write_collect_dir(tmp_path / "runs" / "demo", fixture_records())
    cfg = {"name": "demo", "run_dir": str(tmp_path / "runs" / "demo"),
           "curate": json.loads(_cfg().model_dump_json(include={"validation_fraction", "verify", "decontam"}))}
    path = tmp_path / "p.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "distill.cli", "curate", "-c", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "curate: 13 records" in r.stdout
    bad = {"name": "demo", "run_dir": str(tmp_path / "nowhere"), "curate": {}}
    path.write_text(yaml.safe_dump(bad))
    r = subprocess.run([sys.executable, "-m", "distill.cli", "curate", "-c", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_trace_is_decontaminated_when_it_is_trained_on(tmp_path):
    leak = json.loads((CURATE / "gsm8k_test.jsonl").read_text().splitlines()[0])["question"]
    recs = [r for r in fixture_records() if r["id"] in ("num-ok", "haiku", "t2-a")]
    recs[0] = {**recs[0], "reasoning": "I recall this one: " + leak}
    cfg = {"verify": {"enabled": False}, "near_dedup": {"enabled": False}, "validation_fraction": 0}
    write_collect_dir(tmp_path, recs)
    cfg["input"] = str(tmp_path / "collect")  # one collect run, two curate runs beside it
    kept = run_curate(_cfg(reasoning="drop", **cfg), RunLayout(tmp_path / "drop"))
    think = run_curate(_cfg(reasoning="think", **cfg), RunLayout(tmp_path / "think"))
    assert kept["filters"]["decontam"]["removed"] == 0  # the trace is not in the training text
    assert think["filters"]["decontam"]["removed"] == 1
    assert think["filters"]["decontam"]["examples"][0]["id"] == "num-ok"
