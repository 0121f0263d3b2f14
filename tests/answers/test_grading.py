"""grade(): agreement with the hand-labelled fixture set (docs/grading.md), and one test per reply shape."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from distill.answers import Grade, grade
from distill.errors import InputError
from tests.paths import FIXTURES

GRADING = FIXTURES / "grading"
MIN_ROWS = {"number": 100, "choice": 60, "math": 40}


def _rows(kind: str) -> list[dict]:
    with (GRADING / f"{kind}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _grade_row(r: dict) -> Grade:
    return grade(r["output"], r["reference"], r["kind"], finish_reason=r["finish_reason"], letters=r.get("letters"))


def test_fixture_set_is_big_and_balanced():
    total = 0
    for kind, least in MIN_ROWS.items():
        rows = _rows(kind)
        total += len(rows)
        assert len(rows) >= least, kind
        assert {r["kind"] for r in rows} == {kind}
        assert all(set(r) >= {"output", "reference", "kind", "finish_reason", "label", "note"} for r in rows)
        labels = [r["label"] for r in rows]
        assert 0.25 < sum(labels) / len(labels) < 0.85, f"{kind}: both verdicts must be well represented"
    assert total >= 200


@pytest.mark.parametrize("kind", sorted(MIN_ROWS))
def test_agreement_with_human_labels(kind):
    rows = _rows(kind)
    wrong = [(r["note"], r["label"], _grade_row(r)) for r in rows if _grade_row(r).correct != r["label"]]
    agreement = 1 - len(wrong) / len(rows)
    assert agreement >= 0.95, f"{kind}: agreement {agreement:.3f}; disagreements: {wrong}"


def _check(output, reference, kind, correct, reason=None, finish_reason=None, **kw):
    g = grade(output, reference, kind, finish_reason=finish_reason, **kw)
    assert g.correct is correct, g
    if reason:
        assert g.reason == reason, g
    return g


# --- final-answer markers: the last committed answer wins ---------------------------------------------------

@pytest.mark.parametrize("reply", [
    "16 - 3 - 4 = 9 eggs; 9 x 2 = 18.\n#### 18",
    "She makes 9 x 2 = 18 dollars.\n\nThe answer is 18.",
    "9 eggs at $2 each.\n\nFinal answer: $18",
    "9 eggs at $2 each, so $\\boxed{18}$ dollars.",
    "- eggs left: 9\n- price: $2\n\nJanet makes **$18** a day.",
])
@pytest.mark.parametrize("reference,correct", [("18", True), ("9", False)])
def test_markers(reply, reference, correct):
    _check(reply, reference, "number", correct, "match" if correct else "mismatch")


def test_last_committed_answer_wins():
    reply = "The answer is 42.\n\nHmm, I forgot the 6 broken ones: 42 - 6 = 36.\n\nThe answer is 36."
    _check(reply, "36", "number", True)
    _check(reply, "42", "number", False)


def test_markdown_heading_is_not_an_answer():
    reply = "#### 1. Eggs laid\n16 eggs.\n\n#### 2. Eggs sold\n16 - 7 = 9, sold at $2: **$18**"
    assert grade(reply, "18", "number").correct
    assert not grade(reply, "1", "number").correct
    assert grade("#### Step 2\nSo she has 9 eggs left.", "9", "number").extracted == "9"


def test_retracted_answer_is_not_the_answer():
    fixed = "The answer is 20.\n\nWait, I made a mistake: 16 - 3 - 4 = 9, and 9 x 2 = 18.\n\nSo she makes $18."
    _check(fixed, "18", "number", True)
    _check(fixed, "20", "number", False)
    _check("#### 20\n\nActually, wait. That's wrong.", "20", "number", False, "no_answer")


def test_answer_as_expression_answers_its_result():
    _check("The answer is 80 + 150 = 230", "230", "number", True)
    _check("The answer is 80 + 150 = 230", "80", "number", False)
    _check("The answer is 3 × 3 × 60 = 540.", "540", "number", True)


@pytest.mark.parametrize("reply", [
    "The answer is 18.\n\nCheck: 9 x 2 = 18 ✓ and 16 - 7 = 9 ✓",                    # a check
    "The answer is $18 per day, or $126 per week.",                                   # another unit
    "The answer is 18 (9 eggs x $2).",                                                # parenthetical breakdown
    "She makes $18 a day, which she collects at 4:30 pm.",                            # clock time
    "The answer is 18. She started the stall in 2019.",                               # a year
    "The answer is $18, a 20% increase on last week.",                                # percentage of change
    "Final answer: 18\n\nVerification: 18 / 2 = 9 eggs sold, 9 + 3 + 4 = 16 laid.",  # a check section
])
def test_text_after_the_answer_does_not_override_it(reply):
    _check(reply, "18", "number", True)
    _check(reply, "126" if "126" in reply else "20", "number", False)


def test_parenthetical_breakdown():
    _check("He runs **540 m** (9 x 60 m) a week.", "540", "number", True)
    _check("He runs **540 m** (9 x 60 m) a week.", "60", "number", False)


def test_self_correction_counts_at_its_last_value():
    reply = "Total bytes: 1000 x 1000 = 1e5... let me recheck: 1000 x 1000 = 1,000,000.\n\nThe answer is 1,000,000."
    _check(reply, "1000000", "number", True)
    _check(reply, "100000", "number", False)


def test_hedges_are_wrong_unless_resolved():
    _check("So the answer is $18 or $20.", "18", "number", False, "hedged")
    _check("It's either A or C.", "A", "choice", False, "hedged")
    _check("It's either A or C. C needs an isolated system, so the answer is A.", "A", "choice", True, "match")
    _check("Without tax it is $20, with tax $21.60; tax is included, so the answer is $20.", "20", "number", True)
    _check("The answer is 5 hours, or 300 minutes.", "5", "number", True)  # one amount in two units
    _check("If the break counts, the answer is 40 minutes; otherwise 60 minutes.", "40", "number", False, "hedged")


def test_a_so_sentence_in_the_working_is_not_the_conclusion():
    reply = "A dozen is 12, so 3 dozen is 36 eggs.\n\n36 - 8 = 28\n\nShe has twenty-eight eggs left."
    _check(reply, "28", "number", True)
    _check(reply, "36", "number", False)


# --- number forms compared by value ----------------------------------------------------------------------------

@pytest.mark.parametrize("written,value", [
    ("1,234", "1234"), ("1\u202f234", "1234"), ("1{,}234", "1234"), ("$1,234.00", "1234"), ("25%", "25"),
    ("7.0", "7"), (".5", "0.5"), ("1/2", "0.5"), ("half", "0.5"), ("1 1/2", "1.5"), ("eighteen", "18"),
    ("none", "0"), ("twenty-five", "25"), ("\u22125", "-5"), ("\u20135", "-5"), ("5 degrees below zero", "-5"),
    ("1e6", "1000000"), ("10^6", "1000000"), ("1 million", "1000000"), ("$1.45 million", "1450000"),
    ("\\frac{3}{4}", "0.75"), ("$1.5k", "1500"),
])
def test_number_forms(written, value):
    _check(f"Final answer: {written}", value, "number", True, "match")
    wrong = str(float(value) + 1)
    _check(f"Final answer: {written}", wrong, "number", False, "mismatch")


def test_restatements_and_asides_after_an_unmarked_answer():
    _check("P(blue) = 18/40.\n\nThe probability is 0.45, or 45%.", "0.45", "number", True)
    reply = "Per person: $108 / 4 = $27\n\nEach friend pays $27. Without the tip it would have been $22.50."
    _check(reply, "27", "number", True)
    _check(reply, "22.5", "number", False)
    _check("He runs 5km a day.", "5", "number", True)  # "k" of a unit is not a thousand


def test_range_is_not_a_negative_number():
    _check("He needs 5-7 hours, so the answer is 7.", "7", "number", True)
    assert grade("The answer is 4 - 9 = -5 degrees", "-5", "number").correct


# --- no answer is wrong ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output,finish_reason,reason", [
    ("", None, "no_answer"),
    ("This is a good question about eggs.", None, "no_answer"),
    ("I'm sorry, but I can't help with that request.", None, "refusal"),
    ("16 - 3 = 13 eggs, then 13 - 4 = 9, and 9 x 2 =", "length", "truncated"),
    ("#### 18\n\nLet me verify another way: the ducks lay", "length", "truncated"),  # cut off after an answer
    ("<think>16 - 7 = 9, 9 x 2 = 18, so 18. But maybe", None, "unclosed_think"),
])
def test_no_answer_is_wrong(output, finish_reason, reason):
    _check(output, "18", "number", False, reason, finish_reason=finish_reason)


def test_closed_think_is_not_read():
    _check("<think>maybe 20</think>\n\nThe answer is 18.", "18", "number", True)
    _check("<think>it is 18</think>\n\nThe answer is 20.", "18", "number", False)


# --- choices -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply,letter", [
    ("The answer is (b).", "B"),
    ("**D)** Mitochondria: the site of oxidative phosphorylation.", "D"),
    ("The slope is 6.\n\n$\\boxed{C}$", "C"),
    ("$$\\boxed{\\text{C}}$$", "C"),
    ("Answer: c", "C"),
    ("C. Paris", "C"),
    ("I first thought B, since inflation comes up early, but I'll go with A.", "A"),
    ("Option A is incorrect. Option C is correct: it raises Km. Option D is incorrect.", "C"),
    ("Answer: (C)\n\nActually, on second thought, the question says 'least', so the answer is (A).", "A"),
])
def test_choice_shapes(reply, letter):
    _check(reply, letter, "choice", True, "match")
    other = "B" if letter != "B" else "A"
    _check(reply, other, "choice", False, "mismatch")


def test_article_a_is_not_option_a():
    reply = "A good way to see it: the treaty imposed reparations.\n\nAnswer: C"
    _check(reply, "C", "choice", True)
    _check(reply, "A", "choice", False)
    _check("A keystone species shapes its whole ecosystem.", "A", "choice", False, "no_answer")
    _check("the answer is a bit tricky, both are partly true.", "A", "choice", False, "no_answer")


def test_choice_letters_keyword():
    _check("Answer: J", "J", "choice", True, letters="ABCDEFGHIJ")
    _check("Answer: E", "E", "choice", False, "bad_reference", letters="ABCD")
    _check("Answer: E", "E", "choice", True)  # default: A-D, or up to the reference's letter


# --- math (math-verify) ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply,reference,correct", [
    ("So the point is $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.", "(3, \\frac{\\pi}{2})", True),
    ("So the point is $\\boxed{(3, \\pi)}$.", "(3, \\frac{\\pi}{2})", False),
    ("The final answer is $\\boxed{0.5}$.", "\\frac{1}{2}", True),
    ("$$\\boxed{2\\sqrt{2}}$$", "\\sqrt{8}", True),
    ("$$\\boxed{3\\sqrt{2}}$$", "\\sqrt{8}", False),
    ("$\\boxed{(4, \\infty)}$", "(4, \\infty)", True),
    ("$\\boxed{[4, \\infty)}$", "(4, \\infty)", False),
    ("First $\\boxed{720}$.\n\nWait, order does not matter: 720 / 6 = 120, so $\\boxed{120}$.", "120", True),
    ("First $\\boxed{720}$.\n\nWait, order does not matter: 720 / 6 = 120, so $\\boxed{120}$.", "720", False),
])
def test_math_kind(reply, reference, correct):
    _check(reply, reference, "math", correct)


def test_math_grades_off_the_main_thread():
    """Eval scores in a thread pool, where math-verify's SIGALRM timeout cannot be set."""
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda r: grade(r, "2\\sqrt{2}", "math").correct, ["$\\boxed{\\sqrt{8}}$", "$\\boxed{3}$"]))
    assert got == [True, False]


def test_unknown_kind_is_one_clear_error():
    with pytest.raises(InputError, match="kind must be one of number, choice, math"):
        grade("42", "42", "numeric")


def test_bad_reference_is_counted_apart():
    _check("The answer is 42.", "forty-two-ish", "number", False, "bad_reference")


# --- every reader of answers goes through grade() ----------------------------------------------------------------

def test_benchmarks_score_with_grade_and_its_reason():
    from distill.benchmarks.base import Item
    from distill.benchmarks.gsm8k import GSM8K
    from distill.benchmarks.mmlu import MMLU

    item = Item(id="q", question="eggs?", reference="18")
    assert GSM8K().score(item, "The answer is 20.\n\nWait: 16 - 7 = 9, 9 x 2 = 18. So $18.").correct
    cut = GSM8K().score(item, "#### 18\n\nAlso, the", finish_reason="length")
    assert (cut.correct, cut.detail) == (False, "truncated")
    mc = Item(id="m", question="?", reference="E", choices=["a", "b", "c", "d", "e"])
    assert MMLU().score(mc, "**E)** five").correct
    assert MMLU().score(mc, "either A or E").detail == "hedged"


def test_eval_summary_counts_truncated_and_reasons():
    from distill.evaluate import aggregate

    def row(i, correct, finish, detail):
        return {"id": str(i), "subject": None, "correct": correct, "error": None, "prompt_tokens": 1,
                "completion_tokens": 1, "cost_usd": 0.0, "latency_s": 0.1, "finish_reason": finish, "detail": detail}

    rows = [row(0, True, "stop", "match"), row(1, False, "length", "truncated"), row(2, False, "stop", "hedged")]
    out = aggregate(rows, 1, "accuracy")
    assert out["truncated"] == 1
    assert out["details"] == {"hedged": 1, "match": 1, "truncated": 1}


def test_curate_verify_grades_like_eval():
    from distill.curate.config import VerifyConfig
    from distill.curate.verify import CORRECT, INCORRECT, verify_batch

    batch = {
        "_answer": ["The answer is 20.\n\nWait, 16 - 7 = 9 and 9 x 2 = 18.\n\n**$18**", "It is $18 or $20.",
                    "#### 18", "I first thought B, but I'll go with A.", "Answer: c"],
        "reference": ["18", "18", "#### 18", "A", "(C)"],
        "finish_reason": ["stop", "stop", "length", "stop", "stop"],
    }
    assert verify_batch(batch, VerifyConfig()) == [CORRECT, INCORRECT, INCORRECT, CORRECT, CORRECT]
