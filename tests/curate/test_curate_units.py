"""Curate building blocks on small hand-made cases: dedup, decontamination, filters, verification, split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from distill.answers.code import build_program
from distill.curate.build import validation_mask
from distill.curate.config import CurateConfig, RepetitionFilter, VerifyConfig
from distill.curate.decontam import build_index, find_hits, matched_text
from distill.curate.dedup import candidate_probability, choose_bands, exact_keys, first_occurrence, near_duplicates
from distill.curate.filters import detect_language, refusal_keep, repeated_ngram_ratio
from distill.curate.verify import kind_of, verify_batch
from tests.paths import REPO

ESSAY = ("The history of the printing press begins in the fifteenth century when Johannes Gutenberg combined a screw "
         "press with movable metal type and an oil based ink that stuck to metal. Books became cheaper to make, so "
         "more people could buy them, literacy spread across Europe, and new ideas about science, religion and "
         "politics travelled faster than ever before. Within fifty years presses worked in hundreds of cities, and "
         "the number of printed books grew into the millions, changing how knowledge was stored and shared.")
OTHER = ("Volcanoes form where magma from the mantle reaches the surface through cracks in the crust. Most of them "
         "sit along the edges of tectonic plates, either where plates pull apart or where one plate dives beneath "
         "another. When pressure builds up, gas and molten rock escape in eruptions that can be gentle lava flows or "
         "violent explosions of ash, and over many eruptions the layers pile up into the familiar cone shape.")


def _near(texts):
    arr = pa.array(texts, type=pa.string())
    return near_duplicates(lambda: [arr.slice(0, 2), arr.slice(2)], len(texts))


def test_exact_keys_ignore_whitespace_and_case_only():
    k = exact_keys(pa.array(["The  answer\nis 4.", "the answer is 4.", "The answer is 4!", None, ""]))
    assert k[0] == k[1] and k[1] != k[2] and k[3] == k[4]
    keep, rep = first_occurrence(np.array([5, 7, 5, 5, 9], dtype=np.uint64))
    assert keep.tolist() == [True, True, False, False, True] and rep.tolist() == [0, 1, 0, 0, 4]


def test_near_dups_whitespace_case_and_one_word():
    texts = [ESSAY, OTHER, ESSAY.upper().replace(" ", "   "), ESSAY.replace("cheaper", "easier"),
             OTHER.replace("violent", "powerful"), "a short unrelated note"]
    res = _near(texts)
    assert res.keep.tolist() == [True, True, False, False, False, True]
    assert res.rep.tolist() == [0, 1, 0, 0, 1, 5]


def test_near_dup_keeps_different_texts_that_share_a_phrase():
    half = ESSAY[: len(ESSAY) // 2]
    res = _near([ESSAY, half + " " + OTHER])  # about half the shingles in common: Jaccard well under 0.8
    assert res.keep.all()


def test_banding_is_chosen_for_recall():
    b, r = choose_bands(128, 0.8)
    assert b * r <= 128 and candidate_probability(0.8, b, r) >= 0.99
    assert candidate_probability(0.8, 9, 13) < 0.5  # why datasketch's default banding is not used
    assert candidate_probability(0.3, b, r) < 0.05


GSM_Q = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
         "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck egg.")


def test_decontam_copied_vs_paraphrased():
    index = build_index({"gsm8k": [GSM_Q], "mmlu": ["Which of these gases makes up most of the air on Earth?"]},
                        ngram=13, min_words=8)
    texts = [
        "Solve: JANET’S DUCKS lay 16 eggs per day; she eats three for breakfast every morning and bakes muffins!",
        "Every day Janet's ducks produce sixteen eggs, three are eaten at breakfast and four go into muffins.",
        "Quiz: which of these gases makes up most of the air on earth",
        "Which of these gases makes up most of the air",  # a prefix: shorter than the short item itself
        None,
    ]
    bench, pos, glen = find_hits(index, pa.array(texts, type=pa.string()))
    assert bench.tolist() == [0, -1, 1, -1, -1]
    assert matched_text(texts[0], int(pos[0]), int(glen[0])).startswith("janet s ducks lay 16 eggs")
    assert glen[2] == 12 and index.too_short == {"gsm8k": 0, "mmlu": 0}


def test_refusal_patterns():
    cfg = CurateConfig().refusal
    batch = {"_answer": ["I'm sorry, but I cannot help with that.", "As an AI language model, I have no body.",
                         "I can't believe how simple this is: 4.", "Sorry for the delay: the answer is 4.",
                         "I am unable to assist with this request."]}
    assert refusal_keep(batch, cfg).tolist() == [False, False, True, True, False]


def test_repetition_ratio():
    assert repeated_ngram_ratio("a b a b a b", 2) == (pytest.approx(0.6), 5)
    looped = " ".join(["the model repeats this line again"] * 10)
    cfg = RepetitionFilter()
    assert repeated_ngram_ratio(looped, cfg.ngram)[0] > cfg.max_ratio
    assert repeated_ngram_ratio(ESSAY, cfg.ngram)[0] < 0.05


def test_language_detection():
    assert detect_language(ESSAY) == "en"
    assert detect_language("Le chat est sur la table et il dort dans le soleil, mais le chien est dans le jardin.") == "fr"
    assert detect_language("Der Hund ist nicht auf dem Sofa, und die Katze ist auch nicht da, sie ist im Garten.") == "de"
    assert detect_language("Собака лежит на диване, а кошка сидит на окне и смотрит на улицу.") == "ru"
    assert detect_language("```python\ndef f(a, b):\n    return a + b\n```") is None
    assert detect_language("12 + 30 = 42") is None


def test_verification_kinds_and_numbers():
    cfg = VerifyConfig(timeout_s=3)
    assert kind_of("1,234", None, cfg) == "numeric" and kind_of("C", None, cfg) == "choice"
    assert kind_of("(b)", None, cfg) is None  # lower-case letters are not choice references
    assert kind_of(None, json.dumps({"tests": "assert f() == 1"}), cfg) == "code"
    assert kind_of("a poem", None, cfg) is None
    batch = {
        "_answer": ["The answer is 1,234.", "So 1234.0", "The answer is 1243", "Answer: (B)", "Answer: A",
                    "```python\ndef f():\n    return 1\n```", "```python\ndef f():\n    return 2\n```", "nice poem"],
        "reference": ["1234", "#### 1,234", "1234", "B", "B", None, None, None],
        "metadata": [None] * 5 + [json.dumps({"tests": "assert f() == 1"})] * 2 + [None],
    }
    assert verify_batch(batch, cfg) == ["correct", "correct", "incorrect", "correct", "incorrect", "correct",
                                        "incorrect", "unverifiable"]


def test_humaneval_style_tests_call_check():
    prog = build_program("```python\ndef inc(x):\n    return x + 1\n```",
                          "def check(candidate):\n    assert candidate(1) == 2\n", "inc")
    assert prog.rstrip().endswith("check(inc)")


def test_validation_split_is_by_prompt_and_deterministic():
    ids = pa.array([f"p{i // 3}" for i in range(300)])  # 100 prompts x 3 samples
    val = validation_mask(ids, 0.2, seed=0)
    by_prompt = {}
    for pid, v in zip(ids.to_pylist(), val.tolist()):
        by_prompt.setdefault(pid, set()).add(v)
    assert all(len(s) == 1 for s in by_prompt.values())
    share = sum(next(iter(s)) for s in by_prompt.values()) / 100
    assert 0.08 < share < 0.35
    assert (validation_mask(ids, 0.2, seed=0) == val).all() and not (validation_mask(ids, 0.2, seed=1) == val).all()
    assert validation_mask(pa.array(["a", "b"]), 0.01, 0).sum() == 1  # at least one validation prompt when asked


def test_config_rejects_bad_banding_and_unknown_keys():
    with pytest.raises(Exception, match="must be <= num_perm"):
        CurateConfig.model_validate({"near_dedup": {"bands": 20, "rows": 8, "num_perm": 128}})
    with pytest.raises(Exception, match="extra"):
        CurateConfig.model_validate({"refusal": {"pattern": ["x"]}})
    with pytest.raises(Exception, match="invalid regex"):
        CurateConfig.model_validate({"refusal": {"patterns": ["(unclosed"]}})


def test_readme_step_list_is_the_curate_table():
    from distill.curate.pipeline import STEPS

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## curate\n") : readme.index("\n## train\n")]
    assert re.findall(r"^  - `(\w+)`", section, flags=re.M) == [s.name for s in STEPS]


def test_a_step_is_one_row_that_carries_its_own_stats():
    from datasets import Dataset

    from distill.curate.pipeline import run_steps
    from distill.curate.step import Outcome, Rows, Step
    from distill.errors import InputError

    ds = Dataset.from_list([{"id": f"r{i}", "prompt_id": f"p{i}", "teacher": "t", "finish_reason": None,
                             "_prompt_text": f"q{i}", "_answer": "a" * i} for i in range(4)])

    def odd(rows, alive, cfg):  # drops odd rows; says why on its examples and what bound it used
        return Outcome(np.arange(len(rows)) % 2 == 0, {"note": f"min_chars {cfg.min_chars}"}, {1: {"why": "odd"}})

    def everything(rows, alive, cfg):
        return Outcome(np.zeros(len(rows), dtype=bool))

    cfg, timings = CurateConfig(), {}
    steps = (Step("odd", odd, section="length", timer="odd_s"), Step("off", everything, section="language"))
    alive, report = run_steps(Rows(ds), cfg, timings, steps)
    assert alive.tolist() == [True, False, True, False] and "odd_s" in timings
    assert report["off"] == {"enabled": False, "removed": 0}  # curate.language is off by default
    assert report["odd"]["removed"] == 2 and report["odd"]["note"] == "min_chars 1"
    assert [(e["id"], e.get("why")) for e in report["odd"]["examples"]] == [("r1", "odd"), ("r3", None)]
    with pytest.raises(InputError, match=r"filter `all` removed all 2 remaining records \(4 in\).*curate\.length"):
        run_steps(Rows(ds), cfg, {}, steps + (Step("all", everything, section="length"),))
