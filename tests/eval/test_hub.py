"""distill.hub: a hub id resolves to one commit (from a hand-built HF cache, offline) and a local dir to a content
hash; train and serve record it; nothing forces HF_HUB_OFFLINE on the user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.errors import ConfigError
from distill.hub import dir_identity, download_ignores, is_hub_id, resolve_model
from distill.serve import VLLMServer, build_server
from distill.serve_config import ServeConfig
from tests.hubcache import COMMIT, fake_hub_cache
from tests.paths import REPO



def _offline_env(hf_home: Path, **extra: str) -> dict[str, str]:
    return os.environ | {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **extra}


def _resolve_in(env: dict[str, str], name: str, revision: str | None = None) -> subprocess.CompletedProcess[str]:
    """huggingface_hub reads HF_HOME once at import: resolve in a fresh interpreter that sees the tmp cache."""
    code = ("import json, sys; from distill.hub import resolve_model; from distill.errors import DistillError\n"
            "try: print(json.dumps(resolve_model(sys.argv[1], sys.argv[2] or None, field='train.student').to_summary()))\n"
            "except DistillError as e: print('error:', e, file=sys.stderr); sys.exit(2)")
    return subprocess.run([sys.executable, "-c", code, name, revision or ""], env=env, capture_output=True, text=True,
                          timeout=120)


def test_local_dir_identity_follows_content(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"\0" * 300_000)
    r = resolve_model(str(d))
    assert r.local and r.ref == str(d.resolve()) and r.revision is None and r.identity.startswith("local:")
    assert resolve_model(str(d)).identity == r.identity  # same files: same model
    (d / "model.safetensors").write_bytes(b"\0" * 299_999 + b"\1")  # retrained: same size, other weights
    assert dir_identity(d) != r.identity
    with pytest.raises(ConfigError, match=r"^serve.model: .*nope is neither a local model dir nor a hub id"):
        resolve_model(str(tmp_path / "nope"), field="serve.model")
    assert is_hub_id("Qwen/Qwen2.5-0.5B-Instruct") and not is_hub_id(str(d)) and not is_hub_id("runs/x/train/merged")


def test_download_skips_weights_no_loader_reads() -> None:
    assert "*.bin" in download_ignores(["model.safetensors", "pytorch_model.bin"])
    assert "*.bin" not in download_ignores(["pytorch_model.bin", "config.json"])  # the only weights: keep them
    assert "original/*" in download_ignores([])


def test_hub_id_resolves_offline_from_the_cache(tiny_model: Path, tmp_path: Path) -> None:
    snap = fake_hub_cache(tmp_path / "hf", "fake-org/tiny", tiny_model)
    env = _offline_env(tmp_path / "hf")
    for rev in (None, "main", COMMIT):
        p = _resolve_in(env, "fake-org/tiny", rev)
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert got == {"name": "fake-org/tiny", "ref": str(snap), "revision": COMMIT, "identity": COMMIT,
                       "local": False}
    p = _resolve_in(env, "fake-org/absent")
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1
    assert "train.student: 'fake-org/absent' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in lines[0]
    p = _resolve_in(env, "fake-org/tiny", "v9")
    assert p.returncode == 2 and "at revision 'v9'" in p.stderr


def test_serve_builds_from_the_resolved_snapshot_with_tensor_parallel(tiny_model: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    snap = fake_hub_cache(tmp_path / "hf", "fake-org/tiny", tiny_model)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    srv = build_server(ServeConfig(model="fake-org/tiny", tensor_parallel_size=4), tmp_path)
    assert srv.model == str(snap) and srv.resolved["model"]["revision"] == COMMIT
    assert srv.args[srv.args.index("--tensor-parallel-size") + 1] == "4"
    assert "--tensor-parallel-size" not in build_server(ServeConfig(model=str(tiny_model)), tmp_path).args


@pytest.mark.parametrize("user_value", [None, "0"])
def test_vllm_server_leaves_hf_hub_offline_to_the_user(user_value: str | None, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if user_value is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", user_value)
    srv = VLLMServer(tmp_path, served_name="x", log_path=tmp_path / "env.log")
    srv.args = [sys.executable, "-c", "import os; print(repr(os.environ.get('HF_HUB_OFFLINE')))"]  # the env vLLM gets
    srv.start()
    assert srv.proc is not None and srv.proc.wait(timeout=30) == 0
    srv.stop()
    assert (tmp_path / "env.log").read_text().strip() == repr(user_value)


@pytest.mark.timeout(600)
def test_train_records_the_hub_commit_it_trained_from(tiny_model: Path, tmp_path: Path) -> None:
    """`train.student: org/name` offline: loads the cached snapshot, and summary.json names the commit."""
    from datasets import Dataset

    fake_hub_cache(tmp_path / "hf", "fake-org/tiny", tiny_model)
    rows = [{"messages": [{"role": "user", "content": f"{i}+1?"}, {"role": "assistant", "content": str(i + 1)}]}
            for i in range(16)]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "data"))
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"name: h\nrun_dir: {tmp_path / 'run'}\ntrain:\n  student: fake-org/tiny\n  dataset: {tmp_path / 'data'}\n"
                   "  max_steps: 2\n  batch_size: 4\n  max_length: 64\n  eval_fraction: 0\n  progress: false\n")
    p = subprocess.run([sys.executable, "-m", "distill.cli", "train", "-c", str(cfg)], env=_offline_env(tmp_path / "hf"),
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "train" / "summary.json").read_text())
    assert summary["student"] == "fake-org/tiny" and summary["config"]["student"] == "fake-org/tiny"
    assert summary["student_resolved"]["revision"] == COMMIT and not summary["student_resolved"]["local"]
    assert (tmp_path / "run" / "train" / "merged" / "config.json").is_file()
