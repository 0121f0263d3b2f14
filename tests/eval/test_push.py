"""`distill push`: the model card written from a hand-built run dir, the files an upload sends, and the offline /
unreachable-hub paths (one error line, exit 2, the card left on disk). No hub server runs here, so the upload itself
is exercised only up to the connection it cannot make."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.push import DATASET_CARD, model_card, upload_plan
from distill.push_config import PushConfig
from distill.rundir import FORMAT_VERSION
from tests.paths import REPO

COMMIT = "7ae557604adf67be50417f59c2c2f167def9a775"


def _summary(d: Path, stage: str, **fields: object) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps({"stage": stage, "format_version": FORMAT_VERSION,
                                                "distill_version": "0.1.0", "fingerprint": f"fp-{stage}", **fields}))


def build_run(root: Path, *, curated: bool = True, pushed_dataset: bool = True, reported: bool = True) -> Path:
    """A finished run as the stages leave it: train (merged + adapter), collect, curate, eval, report."""
    _summary(root / "train", "train", student="Qwen/Qwen2.5-0.5B-Instruct", method="lora", precision="bf16",
             device="cuda", world_size=4, wall_s=1800.0, global_step=1200, epochs=2.0, tokens_seen=4_800_000,
             trainable_params=8_798_208, total_params=502_830_976, eval_loss_initial=1.91, eval_loss_final=0.42,
             student_resolved={"name": "Qwen/Qwen2.5-0.5B-Instruct", "ref": "/cache/snap", "revision": COMMIT,
                               "identity": COMMIT, "local": False},
             config={"student": "Qwen/Qwen2.5-0.5B-Instruct", "learning_rate": 0.0002, "lora": {"r": 16}})
    for sub, files in {"merged": ["config.json", "model.safetensors", "tokenizer.json"],
                       "adapter": ["adapter_model.safetensors", "tokenizer.json"]}.items():
        (root / "train" / sub).mkdir(parents=True)
        for f in files:
            (root / "train" / sub / f).write_bytes(b"x" * 10)
    (root / "train" / "adapter" / "adapter_config.json").write_text(json.dumps(
        {"r": 16, "base_model_name_or_path": "/root/.cache/huggingface/hub/models--Qwen--x/snapshots/" + COMMIT}))
    _summary(root / "collect", "collect", cost_usd=12.3456, prompt_tokens=1_000_000, completion_tokens=2_500_000,
             config={"teachers": [{"name": "gpt", "model": "gpt-4o"}]}, per_teacher={"gpt": {"completed": 3000}})
    if curated:
        _summary(root / "curate", "curate", teachers={"gpt": {"in": 3000, "kept": 2712, "models": ["gpt-4o-2024-08-06"]}},
                 config={"push_to_hub": {"repo_id": "me/distill-data", "private": True} if pushed_dataset else None})
        (root / "curate" / "README.md").write_text("# dataset card\n")
    if reported:
        (root / "report").mkdir(parents=True)
        (root / "report" / "report.md").write_text(
            "# distill report: x\n\n| Model | GSM8K (8-shot) | $/1M tokens |\n|---|---|---|\n"
            "| gpt (teacher) | 91.0 ± 0.8 | $10.00 |\n| stu (student) | 61.3 ± 1.3 | $0.05 |\n\n"
            "## Protocol\nScores in % ± one standard error over items.\n")
        _summary(root / "report", "report", roles={"teacher": "gpt", "student": "stu", "base": None},
                 protocol={"gsm8k": "8-shot, greedy"}, intervals="paired bootstrap 95%")
        _summary(root / "eval" / "stu", "eval", benchmarks={"gsm8k": {"items": 1319, "k_shot": 8, "temperature": 0.0,
                                                                      "max_tokens": 512, "n": 1}})
    return root


def test_card_names_base_commit_teachers_dataset_config_eval_cost_license(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run")
    card = model_card(run, PushConfig(repo_id="me/stu", license="apache-2.0", train_gpu_usd_per_hour=2.0), "my")
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    meta = yaml.safe_load(front)
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct" and meta["base_model_relation"] == "finetune"
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["me/distill-data"]
    assert meta["library_name"] == "transformers" and "lora" in meta["tags"]
    assert f"`Qwen/Qwen2.5-0.5B-Instruct` at commit `{COMMIT}`" in body
    assert "`gpt-4o-2024-08-06`" in body and "`gpt-4o`" not in body  # the id the API returned, not the one asked
    assert "| gpt | `gpt-4o-2024-08-06` | 3000 | 2712 |" in body
    assert "(https://huggingface.co/datasets/me/distill-data)" in body
    assert "learning_rate: 0.0002" in body and "- processes: 4" in body
    assert "| stu (student) | 61.3 ± 1.3 | $0.05 |" in body and "### Protocol" in body
    assert '"intervals": "paired bootstrap 95%"' in body and "| gsm8k | 1319 | 8 | 0.0 | 512 | 1 |" in body
    assert "collection: $12.3456" in body
    assert "training: 2.0 GPU-hours over 4 process(es), $4.0000" in body  # 1800 s x 4 GPUs x $2/h
    assert "## License\n\napache-2.0." in body


def test_card_without_curate_or_report_says_what_it_does_not_know(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run", curated=False, reported=False)
    card = model_card(run, PushConfig(repo_id="me/stu", what="adapter"), "my")
    assert "| gpt | `gpt-4o` | 3000 | — |" in card and "the model ids requested" in card
    assert "Not evaluated in this run" in card and "base_model_relation: adapter" in card
    assert "library_name: peft" in card and "set push.train_gpu_usd_per_hour for $" in card


def test_upload_plan_merged_and_adapter(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run", pushed_dataset=False)
    push = run / "push"
    plan = dict(upload_plan(run, PushConfig(repo_id="me/stu"), push))
    assert set(plan) == {"config.json", "model.safetensors", "tokenizer.json", "README.md", DATASET_CARD}
    assert plan["README.md"] == push / "README.md" and plan[DATASET_CARD] == run / "curate" / "README.md"
    plan = dict(upload_plan(run, PushConfig(repo_id="me/stu", what="adapter"), push))
    assert set(plan) == {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md", DATASET_CARD}
    assert plan["adapter_config.json"] == push / "adapter_config.json"  # rewritten to name the base by hub id
    (run / "train" / "merged").rename(run / "train" / "gone")
    with pytest.raises(Exception, match=r"push.what: .*merged does not exist"):
        upload_plan(run, PushConfig(repo_id="me/stu"), push)


def _config(tmp_path: Path, what: str = "adapter") -> Path:
    build_run(tmp_path / "run")
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"name: my\nrun_dir: {tmp_path / 'run'}\npush:\n  repo_id: me/stu\n  what: {what}\n  license: mit\n")
    return cfg


def test_push_offline_fails_in_one_line_and_leaves_the_card(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = _config(tmp_path)
    assert main(["push", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    card = tmp_path / "run" / "push" / "README.md"
    assert len(err) == 1 and err[0].startswith("error: push: HF_HUB_OFFLINE is set") and str(card) in err[0]
    assert "license: mit" in card.read_text()
    conf = json.loads((tmp_path / "run" / "push" / "adapter_config.json").read_text())
    assert conf["base_model_name_or_path"] == "Qwen/Qwen2.5-0.5B-Instruct" and conf["revision"] == COMMIT
    summary = json.loads((tmp_path / "run" / "push" / "summary.json").read_text())
    assert summary["uploaded"] is False and "adapter_config.json" in summary["files"] and "token" not in summary["config"]
    assert main(["push", "-c", str(cfg), "--card-only"]) == 0  # the card alone, no network asked


def test_push_to_an_unreachable_hub_fails_in_one_line(tmp_path: Path) -> None:
    """Online mode against a hub endpoint nobody listens on: the real upload code runs until it cannot connect."""
    cfg = _config(tmp_path, "merged")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": "hf_notreal",
                        "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "distill.cli", "push", "-c", str(cfg)], env=env, capture_output=True,
                       text=True, timeout=300)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1, p.stderr
    assert err[0].startswith("error: push: could not upload to me/stu") and "hf_notreal" not in p.stderr
    assert str(tmp_path / "run" / "push" / "README.md") in err[0] and (tmp_path / "run" / "push" / "README.md").is_file()
