"""Structured outputs over real HTTP: the fake server checks `response_format` as OpenAI does (400 otherwise),
answers JSON fitting the schema, or deliberately invalid JSON; collect validates, retries, records; curate filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.collect import load_records
from distill.llm.structured import structured_output

KEY = "sk-test-0123456789abcdefSECRET"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}, "explanation": {"type": "string"}},
          "required": ["answer", "explanation"], "additionalProperties": False}
MODEL = '''
from pydantic import BaseModel, Field


class Step(BaseModel):
    text: str


class Solution(BaseModel):
    steps: list[Step]
    answer: int = Field(ge=0)
    note: str | None = None
'''


def pipeline(tmp: Path, base_url: str, questions: list[str], response_format, *, mode: str = "online",
             attempts: int = 3, curate: dict | None = None) -> Path:
    with (tmp / "prompts.jsonl").open("w") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"qid": f"q{i}", "question": q}) + "\n")
    cfg = {"name": "t", "run_dir": str(tmp / "run"), "collect": {
        "prompts": {"path": str(tmp / "prompts.jsonl"), "id_field": "qid", "field": "question"},
        "teachers": [{"name": "t1", "base_url": base_url, "api_key": KEY, "model": "gpt-4o-mini",
                      "params": {"max_tokens": 512, "response_format": response_format}, "concurrency": 4,
                      "retry": {"max_attempts": attempts, "base_delay_s": 0.01, "max_delay_s": 0.02}}],
        "progress": False, "mode": mode, "batch": {"poll_interval_s": 0.2}}}
    if curate is not None:
        cfg["curate"] = {"progress": False, "validation_fraction": 0, "decontam": {"enabled": False},
                         "near_dedup": {"enabled": False}, "exact_dedup": {"enabled": False}, **curate}
    path = tmp / "pipeline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def ok(srv) -> list[dict]:
    return [e for e in srv.served() if e.get("kind") == "ok"]


def failures(tmp: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp / "run/collect/failures.jsonl").read_text().splitlines()]


def test_schema_sent_as_json_schema_validated_retried_and_recorded(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    qs = ["What is 2+2?", "[json:bad-once] What is 3+3?", "[json:bad] What is 4+4?", "[json:wrong] 5+5?"]
    cfg = pipeline(tmp_path, srv.base_url, qs, SCHEMA)
    assert main(["collect", "-c", str(cfg)]) == 1  # two prompts never gave a valid answer
    served = ok(srv)
    assert {e["response_format"] for e in served} == {"json_schema"}  # accepted by the server's OpenAI checks
    # q0 once; q1 invalid then valid; q2 and q3 invalid on every one of their 3 attempts
    assert sorted(e["prompt"][:14] for e in served).count("[json:bad] Wha") == 3
    assert len(served) == 1 + 2 + 3 + 3
    ds = load_records(tmp_path / "run/collect")
    by_id = {r["prompt_id"]: r for r in ds}
    assert sorted(by_id) == ["q0", "q1"]
    obj = json.loads(by_id["q0"]["structured"])
    assert obj == {"answer": len("What is 2+2?"), "explanation": "Echo: What is 2+2?"}
    assert by_id["q1"]["attempts"] == 2 and json.loads(by_id["q1"]["structured"])["answer"] > 0
    fails = {f["prompt_id"]: f["error"] for f in failures(tmp_path)}
    assert "the answer is not JSON" in fails["q2"] and "gave up after 3 attempts" in fails["q2"]
    assert "does not match the response_format: at $: 'answer' is a required property (and 2 more)" in fails["q3"]
    s = json.loads((tmp_path / "run/collect/summary.json").read_text())
    assert s["errors"]["invalid_output"] == 1 + 3 + 3 and s["failed"] == 2
    # the invalid answers were paid for: their tokens count
    assert s["completion_tokens"] == sum(e["completion_tokens"] for e in served)

    # the schema is part of the request: a new field is a new request for every prompt, the same is none
    assert main(["collect", "-c", str(cfg), "--force"]) == 1
    assert len(ok(srv)) == 9 + 6  # only the two failed prompts were asked again
    schema2 = {**SCHEMA, "properties": {**SCHEMA["properties"], "unit": {"type": "string"}},
               "required": [*SCHEMA["required"], "unit"]}
    cfg = pipeline(tmp_path, srv.base_url, qs[:2], schema2)
    assert main(["collect", "-c", str(cfg)]) == 0
    assert len(ok(srv)) == 15 + 2  # both asked again (the fake's bad-once is spent: valid at once)
    assert json.loads(load_records(tmp_path / "run/collect")[0]["structured"])["unit"].startswith("Echo")


def test_pydantic_model_strict_schema_and_field_validation(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    (tmp_path / "schemas.py").write_text(MODEL)
    cfg = pipeline(tmp_path, srv.base_url, ["Add 1 and 2", "Add 3 and 4"], "schemas:Solution")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run/collect")
    obj = json.loads(ds[0]["structured"])
    assert obj == {"steps": [{"text": "Echo: Add 1 and 2"}], "answer": len("Add 1 and 2"), "note": "Echo: Add 1 and 2"}
    s = json.loads((tmp_path / "run/collect/summary.json").read_text())
    assert len(s["code"]["teachers.t1.response_format"]) == 64
    # the pydantic model's own rules (ge=0) are what validates, beyond the JSON schema the server saw
    so = structured_output("schemas:Solution", "k")
    assert so is not None and so.wire["json_schema"]["strict"] is True
    assert so.check('{"steps": [], "answer": -1, "note": null}')[1] == \
        "the answer does not match the response_format: at $.answer: Input should be greater than or equal to 0"
    assert so.check('```json\n{"steps": [], "answer": 3, "note": null}\n```') == ({"steps": [], "answer": 3, "note": None}, None)


def test_non_strict_schema_is_sent_non_strict(tmp_path: Path, fake_server) -> None:
    loose = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    so = structured_output(loose, "k")
    assert so is not None and so.wire == {"type": "json_schema",
                                          "json_schema": {"name": "response", "schema": loose, "strict": False}}
    srv = fake_server()
    cfg = pipeline(tmp_path, srv.base_url, ["What is 1+1?"], {"schema": loose, "name": "math_answer"})
    assert main(["collect", "-c", str(cfg)]) == 0  # strict: true would be a 400 from OpenAI (and the fake)
    assert json.loads(load_records(tmp_path / "run/collect")[0]["structured"]) == {"answer": 12}


def test_structured_answers_through_the_batch_api(tmp_path: Path, fake_server) -> None:
    srv = fake_server(batch_delay=0.2)
    cfg = pipeline(tmp_path, srv.base_url, ["What is 2+2?", "[json:bad-once] What is 3+3?"], SCHEMA, mode="batch")
    assert main(["collect", "-c", str(cfg)]) == 0
    ds = load_records(tmp_path / "run/collect")
    assert sorted(ds["prompt_id"]) == ["q0", "q1"] and all(json.loads(r["structured"])["answer"] for r in ds)
    by_id = {r["prompt_id"]: r for r in ds}
    assert by_id["q0"]["batch_id"] is not None
    s = json.loads((tmp_path / "run/collect/summary.json").read_text())
    # the batch's invalid answer went to the online fallback (not the cache), whose first attempt is invalid too
    assert s["errors"]["invalid_output"] == 2 and by_id["q1"]["batch_id"] is None and by_id["q1"]["attempts"] == 2


@pytest.mark.parametrize(("fmt", "expected"), [
    ({"type": "object", "properties": {"a": {"type": "nope"}}}, "not a valid JSON schema"),
    ("nosuchmod:Model", "no module 'nosuchmod'"),
    ({"schema": {"type": "object"}, "nmae": "x"}, "unknown key(s) nmae"),
])
def test_bad_response_format_is_one_clear_error(tmp_path: Path, fake_server, capsys, fmt, expected) -> None:
    srv = fake_server()
    cfg = pipeline(tmp_path, srv.base_url, ["What is 1+1?"], fmt)
    assert main(["collect", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: collect.teachers.0.params.response_format: ") and expected in err and "\n" not in err, err


def test_curate_filters_on_validity_and_fields(tmp_path: Path, fake_server) -> None:
    srv = fake_server()
    qs = ["What is 2+2?", "Tell me: what is 30 plus 30, really?", "[json:wrong] 5+5?"]
    curate = {"structured": {"enabled": True, "required_fields": ["explanation"], "max": {"answer": 20}}}
    cfg = pipeline(tmp_path, srv.base_url, qs, SCHEMA, attempts=1, curate=curate)
    assert main(["collect", "-c", str(cfg)]) == 1  # q2 failed validation: not in the records at all
    assert main(["curate", "-c", str(cfg)]) == 0
    s = json.loads((tmp_path / "run/curate/summary.json").read_text())
    assert s["filters"]["structured"]["removed"] == 1  # q1's answer (36) is above max
    assert s["filters"]["structured"]["examples"][0]["prompt_id"] == "q1"
    from distill.curate import load_curated

    dd = load_curated(tmp_path / "run/curate")
    assert dd["train"]["prompt_id"] == ["q0"] and json.loads(dd["train"][0]["structured"])["answer"] == 12


def test_field_paths() -> None:
    from distill.curate.config import StructuredFilter
    from distill.curate.filters import structured_keep

    rows = [json.dumps({"label": "pos", "steps": [{"ok": True}], "score": 7}),
            json.dumps({"label": "neg", "steps": [], "score": 9}), None, "not json"]
    cfg = StructuredFilter(enabled=True, equals={"label": ["pos", "neutral"]}, required_fields=["steps.0.ok"],
                           min={"score": 5})
    assert structured_keep({"structured": rows}, cfg).tolist() == [True, False, False, False]
    loose = StructuredFilter(enabled=True, require_valid=False)
    assert structured_keep({"structured": rows}, loose).tolist() == [True, True, True, False]
