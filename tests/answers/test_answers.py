"""answers.py: the one answer reader curate and evaluate share; tricky formats included."""

import pytest

from distill.answers import extract_choice, extract_code, extract_number, numbers_match, strip_reasoning


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("The answer is 1,234.", "1234"),
        ("So the total is $1,234.00.", "1234"),
        ("The answer is 12.0", "12"),
        ("The final answer is: -3.50", "-3.5"),
        ("7+5+0=12 8+1+1=10 The answer is 102.", "102"),  # the phrase beats the last number
        ("The answer is 5 apples, i.e. 2 bags", "5"),
        ("#### 7\nThe answer is 9", "9"),  # the last committed answer wins (docs/grading.md)
        ("He has \\boxed{42} left", "42"),
        ("no digits here", None),
        ("", None),
        (None, None),
        ("<think>maybe 7, or 8</think>It is 9.", "9"),  # reasoning is never read as the answer
        ("0.50 dollars", "0.5"),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


@pytest.mark.parametrize(
    "pred,ref,ok",
    [("12.0", "12", True), ("1,234", "1234", True), ("$5", "5", True), ("5", "6", False), ("0.5", ".5", True),
     (None, "1", False), ("abc", "1", False), ("-2", "2", False)],
)
def test_numbers_match(pred, ref, ok):
    assert numbers_match(pred, ref) is ok


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Answer: C", "C"),
        ("The answer is D.", "D"),
        ("I think the answer is (A)", "A"),
        ("(B) is right", "B"),
        ("C", "C"),
        ("**B**", "B"),
        ("C. Paris", "C"),
        ("the answer is a bit tricky. (B)", "B"),  # lowercase 'a' in prose is not a choice
        ("Answer: A ... on reflection, the answer is C", "C"),
        ("<think>answer is A</think>Answer: B", "B"),
        ("I do not know", None),
        ("Answer: E", None),
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected


def test_extract_choice_custom_letters():
    assert extract_choice("Answer: E", letters="ABCDE") == "E"


def test_strip_reasoning():
    assert strip_reasoning("<think>a\nb</think>\nfinal") == "final"
    assert strip_reasoning("trace only</think> final") == "final"  # opening tag stripped by the server
    assert strip_reasoning("final <think>unfinished") == "final"
    assert strip_reasoning(None) == ""


def test_extract_code():
    text = "Here:\n```text\nnot code\n```\n```python\ndef f():\n    return 1\n```\n```python\nx = 2\n```"
    assert extract_code(text) == "def f():\n    return 1\n"
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"
    assert extract_code("def g(): pass") == "def g(): pass"
    assert extract_code("<think>```python\nbad\n```</think>```python\ngood\n```") == "good\n"
