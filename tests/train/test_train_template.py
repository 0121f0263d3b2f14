"""The chat-template check (`distill train --check`) and the one render/mask path, on tiny local tokenizers."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill.errors import ConfigError, InputError
from distill.devtools.tiny import CHAT_TEMPLATE, build_tokenizer
from distill.train import TrainConfig
from distill.train.template import IGNORE, check_template, encode, load_tokenizer, raise_on_problems

NO_GENERATION = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
# Qwen3-style trap: reasoning is cut out of every assistant turn before rendering.
STRIPS_THINK = CHAT_TEMPLATE.replace(
    "{{ message['content'] }}",
    "{{ message['content'].split('</think>')[-1].lstrip('\\n') }}",
)
# End-of-turn token rendered after {% endgeneration %}: masks look fine, the model never learns to stop.
EOS_OUTSIDE = CHAT_TEMPLATE.replace("{{ '<|im_end|>' }}{% endgeneration %}", "{% endgeneration %}{{ '<|im_end|>' }}")


def conv(q: str, a: str) -> dict:
    return {"messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": q},
                         {"role": "assistant", "content": a}]}


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    build_tokenizer([f"What is {a} + {b}? <think>{a}+{b}</think> The answer is {a + b}." for a in range(40)
                     for b in range(40)], vocab_size=320, out_dir=d)
    return d


@pytest.fixture(scope="module")
def data():
    from datasets import Dataset

    return Dataset.from_list([conv(f"What is {a} + 7?", f"<think>\n{a}+7={a + 7}\n</think>\n\nThe answer is {a + 7}.")
                              for a in range(30)])


def cfg(student: Path, **kw) -> TrainConfig:
    return TrainConfig(student=str(student), **kw)


def test_prompt_tokens_are_ignored_and_assistant_tokens_trained(student: Path) -> None:
    tok = load_tokenizer(cfg(student))
    msgs = conv("What is 12 + 7?", "The answer is 19.")["messages"]
    for loss_on in ("assistant", "completion"):
        ids, labels = encode(tok, msgs, loss_on)
        trained = [i for i, lab in enumerate(labels) if lab != IGNORE]
        assert trained, loss_on
        start = trained[0]
        assert all(lab == IGNORE for lab in labels[:start]), "prompt tokens must carry -100"
        assert all(labels[i] == ids[i] for i in trained), "assistant tokens keep their ids"
        assert tok.decode(ids[:start]).endswith("<|im_start|>assistant\n")
        assert tok.decode([ids[i] for i in trained]).startswith("The answer is 19.<|im_end|>")


def test_check_passes_with_generation_tags(student: Path, data) -> None:
    c = cfg(student)
    chk = check_template(load_tokenizer(c), data, c, "data")
    assert chk.problems == []
    assert (chk.examples, chk.empty_mask, chk.eos_in_loss) == (30, 0, 30)
    assert (chk.with_think, chk.think_survives) == (30, 30)
    table = {r["check"]: r for r in chk.to_dict()["table"]}
    assert table["empty assistant mask"]["verdict"] == "ok"
    assert table["end-of-turn token in loss"]["verdict"] == "ok"


def test_template_without_generation_tags_says_what_to_do(student: Path, data) -> None:
    c = cfg(student, chat_template=NO_GENERATION)
    chk = check_template(load_tokenizer(c), data, c, "data")
    assert chk.empty_mask == 30 and not chk.has_generation_tags
    with pytest.raises(InputError) as e:
        raise_on_problems(chk, c.student)
    assert "{% generation %}" in str(e.value) and "loss_on: completion" in str(e.value)
    # the advice works: completion-only masking on the same template passes the check
    c2 = cfg(student, chat_template=NO_GENERATION, loss_on="completion")
    chk2 = check_template(load_tokenizer(c2), data, c2, "data")
    assert chk2.problems == [] and chk2.eos_in_loss == 30


def test_template_that_strips_think_is_caught(student: Path, data) -> None:
    c = cfg(student, chat_template=STRIPS_THINK)
    chk = check_template(load_tokenizer(c), data, c, "data")
    assert chk.empty_mask == 0 and (chk.with_think, chk.think_survives) == (30, 0)
    assert any("<think>" in p for p in chk.problems)


def test_end_of_turn_outside_loss_is_caught(student: Path, data) -> None:
    c = cfg(student, chat_template=EOS_OUTSIDE)
    chk = check_template(load_tokenizer(c), data, c, "data")
    assert chk.eos_in_loss == 0
    assert any("never learn to stop" in p for p in chk.problems)


def test_truncation_is_measured(student: Path, data) -> None:
    c = cfg(student, max_length=50)
    tok = load_tokenizer(c)
    chk = check_template(tok, data, c, "data")
    cut, total, long = 0, 0, 0
    for row in data:
        ids, labels = encode(tok, row["messages"], "assistant")
        trained = [j for j, lab in enumerate(labels) if lab != IGNORE]
        total += len(trained)
        cut += sum(1 for j in trained if j >= 50)
        long += len(ids) > 50
    assert 0 < cut < total and long > 0
    assert (chk.truncated, chk.assistant_tokens_truncated, chk.assistant_tokens) == (long, cut, total)
    assert chk.problems == []  # a warning in the table, not a stop


def test_template_from_file_and_missing_template(student: Path, tmp_path: Path) -> None:
    f = tmp_path / "t.jinja"
    f.write_text(NO_GENERATION)
    assert load_tokenizer(cfg(student, chat_template=str(f))).chat_template == NO_GENERATION
    with pytest.raises(ConfigError, match="neither a Jinja template nor an existing file"):
        load_tokenizer(cfg(student, chat_template=str(tmp_path / "missing.jinja")))
    bare = tmp_path / "bare"
    tok = load_tokenizer(cfg(student))
    tok.chat_template = None
    tok.save_pretrained(str(bare))
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="has no chat template"):
        load_tokenizer(cfg(bare))


# A template that renders the message's own reasoning field (Qwen3 / DeepSeek style) inside the trained turn.
RENDERS_FIELD = CHAT_TEMPLATE.replace(
    "{% generation %}{{ message['content'] }}",
    "{% generation %}{% if message.get('reasoning_content') %}{{ '<think>\\n' + message['reasoning_content'] + "
    "'\\n</think>\\n\\n' }}{% endif %}{{ message['content'] }}",
)


def test_reasoning_content_field_survives_only_where_the_template_renders_it(student: Path) -> None:
    from datasets import Dataset

    rows = []
    for a in range(10):
        r = conv(f"What is {a} + 7?", f"The answer is {a + 7}.")
        r["messages"][-1]["reasoning_content"] = f"{a}+7={a + 7}"
        rows.append(r)
    data = Dataset.from_list(rows)
    c = cfg(student, chat_template=RENDERS_FIELD)
    chk = check_template(load_tokenizer(c), data, c, "data")
    assert (chk.with_think, chk.think_survives) == (10, 10) and chk.problems == []
    c = cfg(student)  # the plain template ignores reasoning_content: the trace would never be trained
    chk = check_template(load_tokenizer(c), data, c, "data")
    assert (chk.with_think, chk.think_survives) == (10, 0)
    assert any("reasoning_content" in p for p in chk.problems)
