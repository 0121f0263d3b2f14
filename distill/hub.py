"""One answer to "which model is this?" for train, serve and eval: a hub id or a local dir, resolved ONCE.

A hub id is pinned to a commit (online: the hub's answer for `revision`; offline: the cached snapshot the local
HF cache points at), and every stage loads that commit, so a stage summary names exactly the weights it used and a
re-run gets the same model even after the repo moves on. A local dir is identified by a hash of its files (names,
sizes and a sample of each file's bytes), so a retrained model in the same dir is a different model.

The user's environment decides online/offline (`HF_HUB_OFFLINE`); nothing here forces either.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distill.errors import ConfigError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_SAMPLE = 64 * 1024  # bytes hashed from each end of a file: cheap on multi-GB weights, still changes on retraining


@dataclass(frozen=True)
class ResolvedModel:
    """What a stage loads (`ref`, at `revision`) and the identity it records in its summary."""

    name: str  # as the user wrote it
    ref: str  # the dir to load: the local dir, or the hub commit's snapshot in the HF cache
    revision: str | None  # the hub commit (None for a local dir)
    identity: str  # the hub commit, or "local:<hash>" of a local dir's files
    local: bool

    def to_summary(self) -> dict[str, Any]:
        return asdict(self)


def offline() -> bool:
    """The user's HF_HUB_OFFLINE, read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_hub_id(name: str) -> bool:
    """`org/name` that is not an existing path; `./x`, `/x`, `~/x` and `a/b/c` are local paths."""
    return bool(_HUB_ID.match(name)) and not Path(name).exists()


def dir_identity(path: Path) -> str:
    """"local:<hash>" of every file's relative name, size, and first/last 64 KiB (symlinks followed)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(path).parts):
            continue
        size = p.stat().st_size
        h.update(f"{p.relative_to(path).as_posix()}\0{size}\0".encode())
        with p.open("rb") as f:
            h.update(f.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                f.seek(-_SAMPLE, os.SEEK_END)
                h.update(f.read(_SAMPLE))
    return "local:" + h.hexdigest()[:16]


_WEIGHT_EXTRA = ["*.pth", "original/*", "*.onnx", "onnx/*", "*.msgpack", "*.h5", "*.ot", "*.tflite", "*.gguf",
                 "*.mlmodel", "coreml/*", "openvino/*", "*.pt"]


def download_ignores(files: list[str]) -> list[str]:
    """Files a transformers/vLLM load never reads: other frameworks' weights, and `*.bin` beside safetensors."""
    ignores = list(_WEIGHT_EXTRA)
    if any(f.endswith(".safetensors") for f in files):
        ignores.append("*.bin")
    return ignores


def _cached_snapshot(repo_id: str, revision: str | None, field: str) -> Path:
    """The snapshot dir the local HF cache holds for `revision` (no network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as err:  # noqa: BLE001 — any miss is the same user-facing answer
        at = f" at revision {revision!r}" if revision else ""
        why = "HF_HUB_OFFLINE is set (unset it to download" if offline() else "the hub cannot be reached (check the network"
        raise ConfigError(f"{field}: {repo_id!r}{at} is not in the local Hugging Face cache and {why}, or give a "
                          f"local model dir) [{type(err).__name__}]") from None


def _download(repo_id: str, revision: str | None, field: str) -> Path:
    """Ask the hub which commit `revision` is, then fetch that commit's loadable files into the HF cache."""
    from huggingface_hub import model_info, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = model_info(repo_id, revision=revision)
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ConfigError(f"{field}: {repo_id!r} is not a model on the Hugging Face hub you can read "
                          f"({type(err).__name__}; a private or gated repo needs HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise ConfigError(f"{field}: {repo_id!r} has no revision {revision!r}") from None
    except Exception:  # noqa: BLE001 — network down: what the cache holds is the honest answer
        return _cached_snapshot(repo_id, revision, field)
    files = [s.rfilename for s in info.siblings or []]
    return Path(snapshot_download(repo_id, revision=info.sha, ignore_patterns=download_ignores(files)))


_RESOLVED: dict[tuple[str, str | None, bool], ResolvedModel] = {}


def resolve_model(name_or_path: str | Path, revision: str | None = None, *, field: str = "model") -> ResolvedModel:
    """Resolve a hub id (to a commit, its files in the HF cache) or a local dir (to a content hash).

    A hub id is resolved once per process (train's ranks, eval's fingerprint and its server agree); `ref` is then the
    cached snapshot dir, so transformers and vLLM load that exact commit without being told a revision. `field`
    names the config key in errors.
    """
    name = str(name_or_path)
    if not is_hub_id(name):
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{field}: {name} is neither a local model dir nor a hub id like 'org/name'")
        return ResolvedModel(name, str(path.resolve()), None, dir_identity(path), True)
    key = (name, revision, offline())
    if key not in _RESOLVED:
        snap = _cached_snapshot(name, revision, field) if offline() else _download(name, revision, field)
        _RESOLVED[key] = ResolvedModel(name, str(snap), snap.name, snap.name, False)
    return _RESOLVED[key]
