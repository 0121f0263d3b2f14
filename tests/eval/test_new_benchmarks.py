"""MATH-500, AIME 2024 and GPQA-Diamond: hub names pinned, local fixtures offline, fixed option shuffle, grading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from distill.benchmarks import get_benchmark
from distill.benchmarks.gpqa import option_order
from distill.errors import InputError
from tests.paths import FIXTURES

F = FIXTURES / "benchmarks"
FIXTURE = {"math500": F / "math500_test.jsonl", "aime_2024": F / "aime_2024_train.jsonl",
           "gpqa_diamond": F / "gpqa_diamond_train.jsonl"}
HUB = {"math500": ("HuggingFaceH4/MATH-500", None, "test"), "aime_2024": ("HuggingFaceH4/aime_2024", None, "train"),
       "gpqa_diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train")}


@pytest.mark.parametrize("name", sorted(HUB))
def test_loader_asks_the_hub_for_exactly_the_real_dataset(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: `datasets.load_dataset` is replaced by a recorder that serves the fixture's rows, so the
    test pins what the loader asks the hub for (repo, config, split)."""
    import datasets

    asked: list[tuple[Any, ...]] = []

    def recorder(repo: str, subset: str | None = None, split: str | None = None, **kw: Any) -> datasets.Dataset:
        asked.append((repo, subset, split))
        rows = [json.loads(x) for x in FIXTURE[name].read_text().splitlines()]
        return datasets.Dataset.from_list(rows)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", recorder)
    bench = get_benchmark(name)
    items = bench.load()
    assert asked == [HUB[name]]
    assert len(items) == len(FIXTURE[name].read_text().splitlines())
    repo, subset, split = HUB[name]
    assert bench.source_info == {"hub": repo, "config": subset, "split": split, "revision": None}


@pytest.mark.parametrize("name", sorted(HUB))
def test_offline_without_a_source_is_one_clear_error(name: str) -> None:
    with pytest.raises(InputError, match=f"{name}: no local source given and the hub is offline.*source:"):
        get_benchmark(name).load()


def test_math500_and_aime_items_prompts_and_grading() -> None:
    m = get_benchmark("math500")
    items = m.load(str(FIXTURE["math500"]))
    assert [it.id for it in items][:2] == ["test/prealgebra/9001.json", "test/algebra/9002.json"]
    assert items[0].reference == "\\frac{7}{8}" and items[0].subject == "Prealgebra"
    assert items[0].metadata["level"] == 1 and "\\boxed" in items[0].metadata["solution"]
    msgs = m.messages(items[0])
    assert len(msgs) == 1 and "\\boxed{}" in msgs[0]["content"] and items[0].question in msgs[0]["content"]
    # graded by the shared grader, kind math (math-verify equivalence)
    assert m.score(items[0], "3/4 = 6/8, so \\boxed{\\dfrac{7}{8}}").correct
    assert not m.score(items[0], "so \\boxed{\\frac{5}{8}}").correct
    assert m.score(items[3], "Final answer: $\\boxed{(4, \\frac{\\pi}{2})}$").correct
    cut = m.score(items[0], "3/4 = 6/8, so \\boxed{\\dfrac{7}{8}}", finish_reason="length")
    assert not cut.correct and cut.detail == "truncated"
    with pytest.raises(InputError, match="zero-shot"):
        m.messages(items[0], k_shot=2)
    a = get_benchmark("aime_2024")
    aitems = a.load(str(FIXTURE["aime_2024"]))
    assert [it.id for it in aitems] == ["aime2024-901", "aime2024-902", "aime2024-903"]
    assert a.default_split == "train" and a.max_tokens > m.max_tokens
    assert a.score(aitems[0], "There are 8 such pairs, so the answer is \\boxed{8}.").correct  # 008 == 8
    assert not a.score(aitems[2], "\\boxed{600}").correct


def test_gpqa_options_are_shuffled_by_a_fixed_seed_per_item() -> None:
    rows = [json.loads(x) for x in FIXTURE["gpqa_diamond"].read_text().splitlines()]
    g = get_benchmark("gpqa_diamond")
    items = g.load(str(FIXTURE["gpqa_diamond"]))
    for it, row in zip(items, rows, strict=True):
        assert it.choices is not None and sorted(it.choices) == sorted(
            [row["Correct Answer"]] + [row[f"Incorrect Answer {i}"] for i in (1, 2, 3)])
        assert it.choices["ABCD".index(it.reference)] == row["Correct Answer"]
        assert it.id == f"gpqa-{row['Record ID']}" and it.subject == row["High-level domain"]
    assert len({it.reference for it in items}) > 1  # the right answer is not always in one place
    # stable: a new loader, a limit, another process (sha256-derived, not hash()) give the same order
    again = get_benchmark("gpqa_diamond").load(str(FIXTURE["gpqa_diamond"]), limit=3)
    assert [it.choices for it in again] == [it.choices for it in items[:3]]
    assert option_order("recFIX001", 0) == items[0].metadata["option_order"]
    assert any(option_order(f"recFIX00{i}", 0) != option_order(f"recFIX00{i}", 1) for i in range(1, 7))
    other = get_benchmark("gpqa_diamond", seed=1).load(str(FIXTURE["gpqa_diamond"]))
    assert [it.choices for it in other] != [it.choices for it in items]
    msg = g.messages(items[0])[0]["content"]
    assert all(f"{L}) {c}" in msg for L, c in zip("ABCD", items[0].choices, strict=True)) and "Answer: X" in msg
    right = items[0].reference
    wrong = next(L for L in "ABCD" if L != right)
    assert g.score(items[0], f"Working through it... Answer: {right}").correct
    assert not g.score(items[0], f"Answer: {wrong}").correct
    with pytest.raises(InputError, match="needs field 'Correct Answer'"):
        g._from_rows([{"Question": "q"}], "x.jsonl")


def test_eval_runs_the_new_benchmarks_through_the_same_client(tmp_path: Path, fake_server: Any) -> None:
    from distill.config import parse_config
    from distill.evaluate import run_eval

    srv = fake_server()
    cfg = parse_config({"name": "nb", "run_dir": str(tmp_path / "run"), "eval": {"progress": False,
        "models": [{"name": "teacher", "role": "teacher", "base_url": srv.base_url, "model": "m"}],
        "benchmarks": [{"name": n, "source": str(p), "max_tokens": 64} for n, p in FIXTURE.items()]}})
    run_eval(cfg.eval, cfg.layout, pipeline=cfg.name)
    s = json.loads((cfg.root / "eval" / "teacher" / "summary.json").read_text())
    assert {b: v["items"] for b, v in s["benchmarks"].items()} == {"math500": 5, "aime_2024": 3, "gpqa_diamond": 6}
    assert "math-verify" in s["benchmarks"]["math500"]["benchmark"]["scoring"]
    assert "shuffled" in s["benchmarks"]["gpqa_diamond"]["benchmark"]["scoring"]
    assert set(s["benchmarks"]["gpqa_diamond"]["per_subject"]) == {"Physics", "Chemistry", "Biology"}
    # the fake model echoes the prompt and ends "The answer is <length>.": no boxed answer, no letter
    assert s["benchmarks"]["math500"]["score"] == 0.0 and sum(s["benchmarks"]["math500"]["details"].values()) == 5
    man = json.loads((cfg.root / "eval" / "manifest.json").read_text())
    assert man["benchmarks"]["gpqa_diamond"]["items"][0]["item"]["metadata"]["option_order"] == option_order(
        "recFIX001", 0)


def test_hub_revision_is_read_from_the_datasets_cache_path(tmp_path: Path) -> None:
    """`datasets` caches a hub dataset under its commit sha; the manifest records that sha as the revision."""
    import datasets

    from distill.benchmarks.base import _hub_revision

    sha = "0123456789abcdef0123456789abcdef01234567"
    d = tmp_path / "openai___gsm8k" / "main" / "0.0.0" / sha
    datasets.Dataset.from_list([{"question": "q", "answer": "#### 1"}]).save_to_disk(str(d))
    assert _hub_revision(datasets.load_from_disk(str(d))) == sha
    assert _hub_revision(datasets.Dataset.from_list([{"a": 1}])) is None
