"""Grader quality: agreement with the hand-labelled fixture set, ours vs lm-evaluation-harness's regexes.

    python bench/bench_grader.py [--show-disagreements]

Prints, per kind, the share of replies where each grader's verdict equals the human label (docs/grading.md). The
baselines re-state lm-evaluation-harness's answer filters as written in its task configs (we compare against
them, we do not use them):

- GSM8K strict-match, `lm_eval/tasks/gsm8k/gsm8k.yaml` (v3): regex `#### (\\-?[0-9\\.\\,]+)`, first match.
- GSM8K-CoT strict-match, `lm_eval/tasks/gsm8k/gsm8k-cot.yaml` (the 8-shot CoT prompt our GSM8K uses):
  regex `The answer is (\\-?[0-9\\.\\,]+).`, first match.
- GSM8K flexible-extract (both configs): regex `(-?[$0-9.,]{2,})|(-?[0-9]+)`, last match.
  All three are then scored by exact_match with `regexes_to_ignore: [",", "\\$", "(?s).*#### ", "\\.$"]`,
  ignore_case.
- MMLU strict-match, `lm_eval/tasks/mmlu/flan_cot_zeroshot/_mmlu_flan_cot_zeroshot_template_yaml`: regex
  `(?<=The answer is )(.*)(?=.)|(?<=The answer is: )(.*)(?=.)|(?<=answer is )(.*)(?=.)|(?<=The answer: )(.*)(?=.)|
  (?<=The final answer: )(.*)(?=.)`, first match; exact_match against "(X)" ignoring case and punctuation.
- MMLU flexible-extract (same file, `multi_choice_regex`): `(\\([A-Z]\\))`, last match, ignoring case and
  punctuation; when it finds nothing, the filter's letter fallback `:[\\s]*([A-?])`. (Its other fallback, matching
  the option texts, needs the question's choices, which the fixtures do not carry.)

lm-eval has no truncation or `<think>` rule: the baselines read the raw reply, as lm-eval does.
"""

from __future__ import annotations

import argparse
import json
import re
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distill.answers import grade  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "grading"
INVALID = "[invalid]"

GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
GSM8K_COT_STRICT = re.compile(r"The answer is (\-?[0-9\.\,]+).")
GSM8K_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
GSM8K_IGNORE = [",", r"\$", r"(?s).*#### ", r"\.$"]
MMLU_STRICT = re.compile(r"((?<=The answer is )(.*)(?=.)|(?<=The answer is: )(.*)(?=.)|(?<=answer is )(.*)(?=.)|"
                         r"(?<=The answer: )(.*)(?=.)|(?<=The final answer: )(.*)(?=.))")
MMLU_FLEXIBLE = re.compile(r"(\([A-Z]\))", re.IGNORECASE)


def regex_filter(pattern: re.Pattern[str], text: str, group_select: int) -> str:
    """lm-eval's `regex` filter: findall, pick one match, the first non-empty group of a tuple, stripped."""
    found = pattern.findall(text)
    if not found:
        return INVALID
    match = found[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m][0]
    return match.strip()


def gsm8k_exact(pred: str, reference: str) -> bool:
    def norm(s: str) -> str:
        for rx in GSM8K_IGNORE:
            s = re.sub(rx, "", s)
        return s.lower()
    return norm(pred) == norm(reference)


def _strip_punct(s: str) -> str:
    return s.translate(str.maketrans("", "", string.punctuation)).strip().lower()


def mmlu_flexible(text: str, letters: str) -> str:
    pred = regex_filter(MMLU_FLEXIBLE, text, -1)
    if pred == INVALID:
        found = re.findall(rf":[\s]*([A-{letters[-1]}])", text)
        pred = f"({found[-1]})" if found else INVALID
    return pred


def baselines(kind: str) -> dict[str, Callable[[dict], bool]]:
    if kind == "number":
        return {
            "lm-eval gsm8k strict-match (####)": lambda r: gsm8k_exact(regex_filter(GSM8K_STRICT, r["output"], 0),
                                                                        r["reference"]),
            "lm-eval gsm8k-cot strict-match (The answer is)": lambda r: gsm8k_exact(
                regex_filter(GSM8K_COT_STRICT, r["output"], 0), r["reference"]),
            "lm-eval gsm8k flexible-extract": lambda r: gsm8k_exact(regex_filter(GSM8K_FLEXIBLE, r["output"], -1),
                                                                    r["reference"]),
        }
    if kind == "choice":
        return {
            "lm-eval mmlu strict-match": lambda r: _strip_punct(regex_filter(MMLU_STRICT, r["output"], 0))
            == r["reference"].lower(),
            "lm-eval mmlu flexible-extract": lambda r: _strip_punct(mmlu_flexible(r["output"], r.get("letters")
                                                                                  or "ABCD")) == r["reference"].lower(),
        }
    return {}


def ours(r: dict) -> bool:
    return grade(r["output"], r["reference"], r["kind"], finish_reason=r["finish_reason"],
                 letters=r.get("letters")).correct


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show-disagreements", action="store_true", help="list each reply our grader gets wrong")
    args = ap.parse_args()
    print(f"{'kind':<7} {'n':>4}  {'grader':<48} {'agreement':>9}")
    for kind in ("number", "choice", "math"):
        rows = [json.loads(line) for line in (FIXTURES / f"{kind}.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()]
        t0 = time.perf_counter()
        verdicts = [ours(r) for r in rows]
        ms = (time.perf_counter() - t0) * 1000 / len(rows)
        agree = sum(v == r["label"] for v, r in zip(verdicts, rows)) / len(rows)
        print(f"{kind:<7} {len(rows):>4}  {'distill.answers.grade (' + f'{ms:.2f} ms/reply)':<48} {agree:>9.3f}")
        for name, fn in baselines(kind).items():
            agree_b = sum(fn(r) == r["label"] for r in rows) / len(rows)
            print(f"{'':<7} {'':>4}  {name:<48} {agree_b:>9.3f}")
        if args.show_disagreements:
            for v, r in zip(verdicts, rows):
                if v != r["label"]:
                    print(f"    disagree: label={r['label']} ours={v} ref={r['reference']!r} ({r['note']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
