"""evaluate against the fake OpenAI server (real HTTP, deterministic answers): rows, scores, stderr, cost, cache."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from distill.cli import main
from distill.config import parse_config
from distill.evaluate import aggregate, eval_is_fresh, run_eval
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"


def _cfg(tmp_path: Path, url: str, **eval_extra: Any) -> Any:
    return parse_config({
        "name": "evaltest",
        "run_dir": str(tmp_path / "run"),
        "eval": {
            "progress": False,
            "models": [
                {"name": "teacher", "role": "teacher", "base_url": url, "model": "gpt-4o-mini", "api_key": "sk-test-123456789"},
                {"name": "student", "role": "student", "base_url": url, "model": "student-x", "gpu_usd_per_hour": 2.0},
                # answers cut to 3 words: "Echo: What is" -> no number -> wrong
                {"name": "base", "role": "base", "base_url": url, "model": "base-x", "params": {"max_tokens": 3}},
            ],
            "benchmarks": [
                {"name": "echo", "kind": "local", "source": str(F / "echo_numeric.jsonl")},
                {"name": "gsm8k", "source": str(F / "gsm8k_test.jsonl"), "limit": 2},
                {"name": "mmlu", "source": str(F / "mmlu_test.jsonl"), "max_tokens": 64},
                {"name": "humaneval", "source": str(F / "humaneval_sample.jsonl"), "limit": 2,
                 "options": {"timeout_s": 5}},
            ],
            **eval_extra,
        },
    })


def _rows(run: Path, model: str, bench: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "eval" / model / f"{bench}.jsonl").read_text().splitlines()]


def test_eval_rows_scores_cost_and_free_rerun(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server(latency=0.02)
    cfg = _cfg(tmp_path, srv.base_url)
    run = tmp_path / "run"
    top = run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    served = len(srv.served())
    assert served == 3 * (5 + 2 + 6 + 2)

    rows = _rows(run, "teacher", "echo")
    assert [r["correct"] for r in rows] == [True, False, True, False, True]
    assert all(r["prompt"] == [{"role": "user", "content": r["output"][6:r["output"].index(" The answer")]}]
               for r in rows)  # zero-shot, the question as-is
    assert all(r["completion_tokens"] > 0 and r["prompt_tokens"] > 0 and r["latency_s"] >= 0.02 for r in rows)
    assert rows[0]["extracted"] == "17" and rows[0]["reference"] == "17"

    s = json.loads((run / "eval" / "teacher" / "summary.json").read_text())
    echo = s["benchmarks"]["echo"]
    assert echo["score"] == pytest.approx(0.6) and echo["items"] == 5
    assert echo["stderr"] == pytest.approx(math.sqrt(0.6 * 0.4 * 5 / 4 / 5))  # sample std / sqrt(n)
    assert s["cost"]["basis"] == "per token" and s["cost"]["usd_per_1m_output_tokens"] == 0.60
    assert s["eval_cost_usd"] > 0 and s["role"] == "teacher"
    assert "sk-test" not in (run / "eval" / "teacher" / "summary.json").read_text()

    # gsm8k went out 8-shot (17 messages), mmlu 5-shot with its per-subject breakdown
    g = _rows(run, "teacher", "gsm8k")
    assert len(g) == 2 and len(g[0]["prompt"]) == 17
    mm = s["benchmarks"]["mmlu"]
    assert set(mm["per_subject"]) == {"astronomy", "high_school_mathematics"} and mm["items"] == 6
    assert mm["macro"] == pytest.approx(sum(v["score"] for v in mm["per_subject"].values()) / 2)
    assert mm["max_tokens"] == 64 and s["benchmarks"]["gsm8k"]["max_tokens"] == 512
    # humaneval: the echoed prompt is not a solution; it ran in the sandbox and failed its tests
    he = s["benchmarks"]["humaneval"]
    assert he["metric"] == "pass@1" and he["score"] == 0.0 and sum(he["details"].values()) == 2
    assert set(he["details"]) <= {"failed", "error"}

    st = json.loads((run / "eval" / "student" / "summary.json").read_text())["cost"]
    assert st["basis"] == "gpu" and st["throughput_source"] == "measured"
    assert st["usd_per_1m_output_tokens"] == pytest.approx(2.0 / st["output_tokens_per_hour"] * 1e6, rel=1e-3)
    base = json.loads((run / "eval" / "base" / "summary.json").read_text())
    assert base["benchmarks"]["echo"]["score"] == 0.0 and base["cost"]["usd_per_1m_output_tokens"] is None
    assert top["models"]["teacher"]["scores"]["echo"] == pytest.approx(0.6)

    # unchanged config: skipped; --force: re-scored from the cache, nothing sent, throughput kept from last run
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    top2 = run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, force=True)
    assert len(srv.served()) == served
    st2 = json.loads((run / "eval" / "student" / "summary.json").read_text())
    assert st2["completed"] == 0 and st2["from_cache"] == 15
    assert st2["cost"]["throughput_source"] == "previous run"
    assert st2["cost"]["usd_per_1m_output_tokens"] == pytest.approx(st["usd_per_1m_output_tokens"])
    assert top2["models"]["teacher"]["scores"] == top["models"]["teacher"]["scores"]
    assert eval_is_fresh(cfg.eval, cfg.layout, "student")
    assert not eval_is_fresh(cfg.eval, cfg.layout, "student", limit=1)


def test_eval_limit_and_model_filter_and_samples(tmp_path: Path, fake_server: Any) -> None:
    srv = fake_server()
    cfg = _cfg(tmp_path, srv.base_url)
    cfg.eval.models[0].params.n = 3
    cfg.eval.models[0].params.temperature = 0.8
    run = tmp_path / "run"
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, models=["teacher"], limit=2)
    assert not (run / "eval" / "student").exists()
    rows = _rows(run, "teacher", "echo")
    assert len(rows) == 6 and sorted({r["sample_index"] for r in rows}) == [0, 1, 2]
    agg = json.loads((run / "eval" / "teacher" / "summary.json").read_text())["benchmarks"]["echo"]
    assert agg["items"] == 2 and agg["samples"] == 6 and set(agg["pass_at_k"]) == {"pass@1", "pass@2"}


def test_aggregate_pass_at_k_from_rows() -> None:
    rows = [{"id": "a", "correct": c, "subject": None, "error": None, "prompt_tokens": 1, "completion_tokens": 2,
             "latency_s": 0.1, "cost_usd": 0.0, "detail": "passed" if c else "failed"} for c in (True, False, False, False, True)]
    rows += [{**rows[0], "id": "b", "correct": False, "detail": "failed"} for _ in range(5)]
    agg = aggregate(rows, 5, "pass@1")
    assert agg["score"] == pytest.approx((2 / 5 + 0) / 2)
    assert agg["pass_at_k"]["pass@2"]["score"] == pytest.approx((1 - 3 / 10 + 0) / 2)  # item a: 1 - C(3,2)/C(5,2)
    assert agg["pass_at_k"]["pass@5"]["score"] == pytest.approx(0.5)
    assert agg["details"] == {"failed": 8, "passed": 2}


def test_eval_user_errors_are_one_line(tmp_path: Path, fake_server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "p.yaml"
    cfg_file.write_text(
        "name: e\nrun_dir: %s\neval:\n  models:\n    - {name: t, base_url: http://127.0.0.1:9/v1, model: m}\n"
        "  benchmarks:\n    - {name: gsm8k}\n" % (tmp_path / "run"))
    assert main(["eval", "-c", str(cfg_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gsm8k" in err[0] and "source:" in err[0]  # offline: says how to pass a local file
    cfg_file.write_text("name: e\neval:\n  models:\n    - {name: t}\n  benchmarks:\n    - {name: gsm8k}\n")
    assert main(["eval", "-c", str(cfg_file)]) == 2
    assert "eval.models.0" in capsys.readouterr().err
    srv = fake_server(api_key="sk-right-key-0000")
    cfg = _cfg(tmp_path, srv.base_url)
    from distill.errors import DistillError

    # a wrong key (the config says sk-test-..., the server wants another): the run stops naming the endpoint

    with pytest.raises(DistillError, match="teacher"):
        run_eval(cfg.eval, cfg.layout, pipeline=cfg.name, models=["teacher"])


def test_agreement_with_the_teacher_on_the_curated_validation_split(tmp_path: Path, fake_server: Any) -> None:
    import datasets

    qs = ["What is 3 + 4?", "What is 10 + 20?", "Name a colour."]
    # the teacher's recorded answers: rows 0 and 2 agree with what the fake model will say (len of the prompt)
    teacher = [f"3 + 4 = 7. The answer is {len(qs[0])}.", "The answer is 30.", f"Echo: {qs[2]} The answer is {len(qs[2])}."]
    rows = {"prompt_id": [f"p{i}" for i in range(3)],
            "messages": [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in zip(qs, teacher)]}
    run = tmp_path / "run"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows), "validation": datasets.Dataset.from_dict(rows)}
                         ).save_to_disk(str(run / "curate" / "dataset"))
    srv = fake_server()
    cfg = parse_config({"name": "a", "run_dir": str(run), "eval": {"progress": False,
        "models": [{"name": "student", "role": "student", "base_url": srv.base_url, "model": "s"}],
        "benchmarks": [{"name": "validation", "kind": "agreement"}]}})
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    out = _rows(run, "student", "validation")
    assert [r["id"] for r in out] == ["p0", "p1", "p2"] and [r["correct"] for r in out] == [True, False, True]
    assert out[1]["reference"] == "30" and out[0]["prompt"] == [{"role": "user", "content": qs[0]}]
    s = json.loads((run / "eval" / "student" / "summary.json").read_text())["benchmarks"]["validation"]
    assert s["metric"] == "agreement" and s["score"] == pytest.approx(2 / 3)
