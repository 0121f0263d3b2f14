"""curate.judge over real HTTP: the fake server plays teacher and judge (a structured `{reasoning, score}` verdict;
`[score:N]` in the text sets the score, else it varies by a hash of what it judges)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from distill.cli import main
from distill.curate import load_curated

KEY = "sk-test-0123456789abcdefSECRET"


def write(tmp: Path, base_url: str, rows: list[dict], *, n: int = 1, judge: dict | None = None,
          verify: dict | None = None) -> Path:
    with (tmp / "prompts.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    endpoint = {"base_url": base_url, "api_key": KEY, "concurrency": 4,
                "retry": {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.02}}
    cfg = {"name": "t", "run_dir": str(tmp / "run"),
           "collect": {"prompts": {"path": str(tmp / "prompts.jsonl"), "id_field": "qid", "field": "question",
                                   "reference_field": "answer"},
                       "teachers": [{"name": "teacher", "model": "gpt-4o-mini",
                                     "params": {"max_tokens": 200, "n": n}, **endpoint}],
                       "progress": False},
           "curate": {"progress": False, "validation_fraction": 0, "decontam": {"enabled": False},
                      "near_dedup": {"enabled": False}, "exact_dedup": {"enabled": False},
                      "verify": verify or {},
                      "judge": {"enabled": True, "endpoint": {"name": "judge", "model": "gpt-4o", **endpoint},
                                **(judge or {})}}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def judge_calls(srv) -> list[dict]:
    return [e for e in srv.served() if e.get("kind") == "ok" and e.get("response_format") == "json_schema"]


def test_threshold_verdicts_agreement_and_cache(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server()
    qs = {"q0": "[score:9] What is 2 plus 2?", "q1": "[score:2] What is 3 plus 3?",
          "q2": "[score:3] What is 4 plus 4?", "q3": "[score:8] Write a haiku about rain.",
          "q4": "[score:5] Write a limerick about cats."}
    # the fake teacher answers "... The answer is <len(prompt)>.": a reference of that length is correct
    refs = {"q0": str(len(qs["q0"])), "q1": "1", "q2": str(len(qs["q2"])), "q3": None, "q4": None}
    cfg = write(tmp_path, srv.base_url, [{"qid": k, "question": q, "answer": refs[k]} for k, q in qs.items()])
    assert main(["collect", "-c", str(cfg)]) == 0
    assert main(["curate", "-c", str(cfg)]) == 0
    cap = capsys.readouterr()
    out = cap.out + cap.err
    # q0: correct + pass; q1: incorrect (removed by verify, judged for agreement) + fail; q2: correct + fail
    assert "curate: judge agrees with the reference grader on 2/3 answers (66.7%)" in out
    s = json.loads((tmp_path / "run/curate/summary.json").read_text())
    j = s["filters"]["judge"]
    assert j["enabled"] and j["removed"] == 2 and j["scores"] == {"3": 1, "5": 1, "8": 1, "9": 1}
    assert j["agreement_with_grader"] == {"records": 3, "agree": 2, "rate": 0.6667, "judge_pass_grader_correct": 1,
                                          "judge_pass_grader_incorrect": 0, "judge_fail_grader_correct": 1,
                                          "judge_fail_grader_incorrect": 1}
    assert j["requests"]["completed"] == 5 and j["requests"]["spend"]["stage"] == "curate"
    assert s["filters"]["verify"]["removed"] == 1
    dd = load_curated(tmp_path / "run/curate")
    kept = {r["prompt_id"]: r for r in dd["train"]}
    assert sorted(kept) == ["q0", "q3"]
    assert kept["q3"]["judge_score"] == 8.0 and kept["q3"]["judge_reasoning"].startswith("Judged: [Request]")
    card = (tmp_path / "run/curate/README.md").read_text()
    assert "judge_score" in card and "agrees with the reference grader on 2/3" in card
    # the judge saw the rubric and the answer (its request is an ordinary cached request)
    calls = judge_calls(srv)
    assert len(calls) == 5 and all(c["prompt"].startswith("[Request]\n[score:") for c in calls)

    # a new threshold re-runs curate from the cached verdicts: nothing is asked again
    cfg.write_text(cfg.read_text().replace("enabled: true\n", "enabled: true\n    threshold: 3\n", 1))
    assert "threshold: 3" in cfg.read_text()
    assert main(["curate", "-c", str(cfg)]) == 0
    assert len(judge_calls(srv)) == 5
    dd = load_curated(tmp_path / "run/curate")
    assert sorted(dd["train"]["prompt_id"]) == ["q0", "q2", "q3", "q4"]


def test_best_of_n_keeps_each_prompts_top_scored_sample(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    rows = [{"qid": f"q{i}", "question": f"Describe colour number {i}.", "answer": None} for i in range(4)]
    cfg = write(tmp_path, srv.base_url, rows, n=4, judge={"threshold": 1, "keep": "all"})
    assert main(["collect", "-c", str(cfg)]) == 0
    assert main(["curate", "-c", str(cfg)]) == 0
    every = load_curated(tmp_path / "run/curate")["train"]
    assert len(every) == 16 and len(set(every["judge_score"])) > 1  # the fake judge's scores vary by answer
    best: dict[str, tuple[float, int]] = {}
    for r in every:  # the highest score, ties to the earlier sample
        cur = best.get(r["prompt_id"])
        if cur is None or r["judge_score"] > cur[0] or (r["judge_score"] == cur[0] and r["sample_index"] < cur[1]):
            best[r["prompt_id"]] = (r["judge_score"], r["sample_index"])
    cfg.write_text(cfg.read_text().replace("keep: all", "keep: best"))
    assert main(["curate", "-c", str(cfg)]) == 0
    assert len(judge_calls(srv)) == 16  # verdicts from the cache
    kept = load_curated(tmp_path / "run/curate")["train"]
    assert sorted((r["prompt_id"], r["judge_score"], r["sample_index"]) for r in kept) == \
        sorted((p, sc, si) for p, (sc, si) in best.items())


def test_judge_budget_and_failures(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server()
    rows = [{"qid": "q0", "question": "What is 1 plus 1?", "answer": None},
            {"qid": "q1", "question": "[json:bad] What is 2 plus 2?", "answer": None}]
    cfg = write(tmp_path, srv.base_url, rows, judge={"threshold": 1, "on_error": "drop", "budget_usd": 1.0})
    assert main(["curate", "-c", str(cfg)]) == 2  # checked when the config is read, before any step runs
    assert "judge.budget_usd needs endpoint.params.max_tokens" in capsys.readouterr().err
    data = yaml.safe_load(cfg.read_text())
    data["curate"]["judge"]["endpoint"]["params"] = {"max_tokens": 300}
    cfg.write_text(yaml.safe_dump(data))
    assert main(["collect", "-c", str(cfg)]) == 0
    assert main(["curate", "-c", str(cfg)]) == 0
    s = json.loads((tmp_path / "run/curate/summary.json").read_text())["filters"]["judge"]
    assert s["unscored"] == 1 and s["removed"] == 1 and s["requests"]["errors"] == {"invalid_output": 3}
    assert s["requests"]["spend"]["cap_usd"] == 1.0
    ledger = [json.loads(x) for x in (tmp_path / "run/spend.jsonl").read_text().splitlines()]
    assert {x["stage"] for x in ledger} >= {"curate"}
    assert load_curated(tmp_path / "run/curate")["train"]["prompt_id"] == ["q0"]


def test_judge_without_endpoint_is_a_config_error(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump({"name": "t", "curate": {"judge": {"enabled": True}}}))
    assert main(["curate", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "curate.judge: Value error, judge.enabled needs `endpoint`" in err
