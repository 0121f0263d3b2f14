"""Prompt builders, Jinja templates and parsers over real HTTP (the fake OpenAI server, counting what it served)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records
from tests.paths import REPO

KEY = "sk-test-0123456789abcdefSECRET"

BUILD_V1 = '''
def build(row):
    if row["qid"] == "q5":
        return None  # skipped
    return [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Question: {row['question']}"}]
'''

# rows q3 and q4 change; q0-q2 build the same messages as before
BUILD_V2 = BUILD_V1.replace('''f"Question: {row['question']}"''',
                            '''(f"Question: {row['question']}" if row["qid"] < "q3" else f"Q (v2): {row['question']}")''')

PARSE_V1 = '''
def parse(row, completion):
    if row["qid"] == "q1":
        raise ValueError("no number in the answer")
    return {"answer_chars": len(completion), "source_qid": row["qid"]}
'''


def write_prompts(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"qid": f"q{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n")
    return path


def pipeline(tmp: Path, base_url: str, prompts: dict, **collect: object) -> Path:
    write_prompts(tmp / "prompts.jsonl", 6)
    cfg = {"name": "t", "run_dir": str(tmp / "run"), "collect": {
        "prompts": {"path": str(tmp / "prompts.jsonl"), "id_field": "qid", "reference_field": "answer", **prompts},
        "teachers": [{"name": "t1", "base_url": base_url, "api_key": KEY, "model": "gpt-4o-mini",
                      "params": {"max_tokens": 64}, "concurrency": 4,
                      "retry": {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.02}}],
        "progress": False, **collect}}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def ok_requests(srv) -> list[dict]:
    return [e for e in srv.served() if e.get("kind") == "ok"]


def test_builder_edit_reasks_only_changed_messages(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    (tmp_path / "myprompts.py").write_text(BUILD_V1)  # beside the pipeline file, not on sys.path
    cfg = pipeline(tmp_path, srv.base_url, {"builder": "myprompts:build"})
    assert main(["collect", "-c", str(cfg)]) == 0
    assert len(ok_requests(srv)) == 5  # q5 skipped by the builder
    s = json.loads((tmp_path / "run/collect/summary.json").read_text())
    assert s["skipped_prompts"] == 1 and s["records"] == 5 and len(s["code"]["builder"]) == 64
    ds = load_records(tmp_path / "run/collect")
    row = ds.filter(lambda r: r["prompt_id"] == "q2")[0]
    assert row["messages"] == [{"role": "system", "content": "Answer briefly."},
                               {"role": "user", "content": "Question: What is 2 plus 2?"}]
    assert json.loads(row["metadata"])["question"] == "What is 2 plus 2?"  # the source row is kept

    assert main(["collect", "-c", str(cfg)]) == 0  # unchanged: the stage is fresh
    assert len(ok_requests(srv)) == 5

    (tmp_path / "myprompts.py").write_text(BUILD_V2)
    assert main(["collect", "-c", str(cfg)]) == 0  # the edit re-runs the stage...
    served = ok_requests(srv)
    assert len(served) == 7  # ...and asks only q3 and q4 again
    assert sorted(e["prompt"] for e in served[5:]) == ["Q (v2): What is 3 plus 3?", "Q (v2): What is 4 plus 4?"]
    ds = load_records(tmp_path / "run/collect")
    assert ds.filter(lambda r: r["prompt_id"] == "q4")[0]["messages"][-1]["content"] == "Q (v2): What is 4 plus 4?"
    s2 = json.loads((tmp_path / "run/collect/summary.json").read_text())
    assert s2["code"]["builder"] != s["code"]["builder"] and s2["from_cache"] == 3


def test_parser_adds_columns_and_fails_records_without_reasking(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    (tmp_path / "parsers.py").write_text(PARSE_V1)
    cfg = pipeline(tmp_path, srv.base_url, {"field": "question"}, parser="parsers:parse")
    assert main(["collect", "-c", str(cfg)]) == 1  # a rejected record: the run is not complete
    assert len(ok_requests(srv)) == 6
    ds = load_records(tmp_path / "run/collect")
    assert sorted(ds["prompt_id"]) == ["q0", "q2", "q3", "q4", "q5"]
    for r in ds:
        assert r["answer_chars"] == len(r["completion"]) and r["source_qid"] == r["prompt_id"]
    fails = [json.loads(x) for x in (tmp_path / "run/collect/failures.jsonl").read_text().splitlines()]
    assert len(fails) == 1 and fails[0]["prompt_id"] == "q1"
    assert "collect.parser (parsers:parse) raised" in fails[0]["error"] and "no number in the answer" in fails[0]["error"]
    assert "parsers.py:4" in fails[0]["error"]  # where in the user's code
    s = json.loads((tmp_path / "run/collect/summary.json").read_text())
    assert s["parser_failed"] == 1 and s["complete"] is False

    # an edited parser re-parses the cached answers: no request is sent again
    (tmp_path / "parsers.py").write_text('def parse(row, completion):\n    return {"words": len(completion.split())}\n')
    assert main(["collect", "-c", str(cfg)]) == 0
    assert len(ok_requests(srv)) == 6
    ds = load_records(tmp_path / "run/collect")
    assert len(ds) == 6 and "answer_chars" not in ds.column_names
    assert all(r["words"] == len(r["completion"].split()) for r in ds)


def test_jinja_template_file(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    (tmp_path / "ask.j2").write_text("Solve step by step.\n{{ question }}{% if qid == 'q0' %} (first){% endif %}\n")
    cfg = pipeline(tmp_path, srv.base_url, {"template_jinja": "ask.j2"})
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run/collect")
    by_id = {r["prompt_id"]: r["messages"][-1]["content"] for r in ds}
    assert by_id["q0"] == "Solve step by step.\nWhat is 0 plus 0? (first)"
    assert by_id["q1"] == "Solve step by step.\nWhat is 1 plus 1?"
    # an edit of the template re-runs the stage (its text is in the fingerprint)
    (tmp_path / "ask.j2").write_text("{{ question }}")
    assert main(["collect", "-c", str(cfg)]) == 0
    assert load_records(tmp_path / "run/collect")[1]["messages"][-1]["content"] == "What is 1 plus 1?"


@pytest.mark.parametrize(("prompts", "module", "expected"), [
    ({"builder": "nosuch:build"}, None, "prompts.builder: no module 'nosuch'"),
    ({"builder": "mp:missing"}, "def build(row):\n    return 'x'\n", "prompts.builder: module 'mp' has no 'missing'"),
    ({"builder": "mp:VALUE"}, "VALUE = 3\n", "prompts.builder: mp:VALUE is a int, not a function"),
    ({"builder": "mp:build"}, "def build(row):\n    return 42\n",
     "prompts.builder (mp:build) returned int 42; expected a list of {role, content} messages"),
    ({"builder": "mp:build"}, "def build(row):\n    return [{'role': 'user'}]\n",
     "prompts.builder (mp:build) returned a bad message at index 0"),
    ({"builder": "mp:build"}, "def build(row):\n    return row['nope']\n",
     "prompts.builder (mp:build) raised on"),
    ({"builder": "mp:build"}, "import nosuchdep\n", "prompts.builder: importing 'mp' failed"),
    ({"builder": "not a ref"}, None, "expected `module:name`"),
    ({"template_jinja": "{{ nope }}"}, None, "prompts.template_jinja (prompts.template_jinja): 'nope' is undefined"),
    ({"template_jinja": "missing.j2"}, None, "prompts.template_jinja: 'missing.j2' is neither a template"),
])
def test_bad_references_are_one_clear_error(tmp_path: Path, fake_server, capsys, prompts, module, expected) -> None:
    srv = fake_server()
    if module is not None:
        (tmp_path / "mp.py").write_text(module)
    cfg = pipeline(tmp_path, srv.base_url, prompts)
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert expected in err, err
    assert ok_requests(srv) == []


def test_a_file_named_like_a_module_python_uses_is_refused(tmp_path: Path, fake_server, capsys) -> None:
    import json as stdlib_json

    srv = fake_server()
    (tmp_path / "json.py").write_text("def build(row):\n    return 'x'\n")
    cfg = pipeline(tmp_path, srv.base_url, {"builder": "json:build"})
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "prompts.builder: " in err and "has the name of a module Python already uses ('json'" in err
    import sys

    assert sys.modules["json"] is stdlib_json  # left alone


def test_parser_wrong_return_type_stops_with_one_line(tmp_path: Path, fake_server, capsys) -> None:
    srv = fake_server()
    (tmp_path / "pp.py").write_text("def parse(row, completion):\n    return ['not', 'a', 'dict']\n")
    cfg = pipeline(tmp_path, srv.base_url, {"field": "question"}, parser="pp:parse")
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "collect.parser (pp:parse) returned list" in err and "expected a dict" in err and "\n" not in err


def test_the_shipped_programmable_example_runs_end_to_end(tmp_path: Path, fake_server, monkeypatch) -> None:
    """pipelines/programmable.yaml (builder, pydantic schema, parser, structured filter, judge) against the fake
    server: the README's worked example is a pipeline that works, not prose."""
    import shutil

    root = REPO / "pipelines"
    shutil.copy(root / "programmable.py", tmp_path / "programmable.py")
    data = yaml.safe_load((root / "programmable.yaml").read_text())
    srv = fake_server()
    with (tmp_path / "gsm.jsonl").open("w") as f:
        for i in range(3):  # the fake's answer is the question's length: right for q0 and q1, wrong for q2
            q = f"Tom has {i} apples and buys 2. How many?"
            f.write(json.dumps({"question": q, "answer": f"#### {len(q) if i < 2 else 7}"}) + "\n")
        f.write(json.dumps({"question": "x" * 900, "answer": "#### 1"}) + "\n")  # the builder skips it
    data["run_dir"] = str(tmp_path / "run")
    data["collect"]["prompts"] = {**data["collect"]["prompts"], "path": str(tmp_path / "gsm.jsonl"), "format": "auto"}
    for k in ("subset", "split"):
        data["collect"]["prompts"].pop(k)
    data["collect"]["teachers"][0]["base_url"] = data["curate"]["judge"]["endpoint"]["base_url"] = srv.base_url
    data["collect"]["progress"] = False
    data["curate"].update(progress=False, validation_fraction=0, decontam={"enabled": False})
    data["curate"]["structured"]["required_fields"] = ["steps.0"]  # the fake answers one step
    data["curate"]["judge"]["threshold"] = 1
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert main(["collect", "-c", str(tmp_path / "p.yaml")]) == 0
    ds = load_records(tmp_path / "run/collect")
    assert len(ds) == 3 * 4 and set(ds["steps"]) == {1}
    assert all(r["final_answer"] == json.loads(r["structured"])["answer"] for r in ds)
    assert main(["curate", "-c", str(tmp_path / "p.yaml")]) == 0
    s = json.loads((tmp_path / "run/curate/summary.json").read_text())
    # the fake answers all 4 samples alike: exact dedup keeps one per prompt before the (paid) judge runs
    assert s["filters"]["verify"]["removed"] == 4 and s["filters"]["exact_dedup"]["removed"] == 6
    assert s["filters"]["judge"]["scored"] == 2
    assert s["filters"]["judge"]["agreement_with_grader"]["records"] == 2 + 4  # q2's 4 rejects judged too
    assert s["records_out"] == 2
