"""Training data: the curated DatasetDict (or any saved dataset / JSONL / Parquet with `messages`) -> train/eval splits.

Everything the trainer sees is checked here first, so a malformed row is one error naming the file and the row,
not a stack trace from inside TRL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import InputError

ROLES = {"system", "user", "assistant", "tool", "developer"}


def _load_any(path: Path) -> Any:
    import datasets

    if path.is_dir():
        try:
            return datasets.load_from_disk(str(path))
        except FileNotFoundError as err:
            raise InputError(f"{path}: not a dataset saved with save_to_disk ({err})") from None
    suffix = path.suffix.lower()
    kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(suffix)
    if kind is None:
        raise InputError(f"{path}: expected a saved dataset dir, .jsonl, .json or .parquet file")
    try:
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as err:  # datasets raises many types for a malformed file
        raise InputError(f"{path}: could not read as {kind}: {err}") from None


def load_splits(path: Path, *, eval_fraction: float, seed: int, max_eval: int | None) -> tuple[Any, Any | None]:
    """(train, eval or None). Uses a `validation` split when there is one, else holds out `eval_fraction`."""
    import datasets

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: training dataset not found")
    data = _load_any(path)
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise InputError(f"{path}: DatasetDict has no `train` split (splits: {', '.join(data)})")
        train = data["train"]
        evals = data.get("validation", data.get("test"))
    else:
        train, evals = data, None
    for name, split in (("train", train), ("validation", evals)):
        if split is not None and "messages" not in split.column_names:
            raise InputError(
                f"{path} [{name}]: no `messages` column (columns: {', '.join(split.column_names)}); train expects "
                "a `messages` list of {role, content} per row ending with the assistant turn, as curate writes it"
            )
    if len(train) == 0:
        raise InputError(f"{path}: the train split is empty")
    if evals is None and eval_fraction > 0 and len(train) >= 2:
        parts = train.train_test_split(test_size=eval_fraction, seed=seed)
        train, evals = parts["train"], parts["test"]
    if evals is not None and len(evals) == 0:
        evals = None
    if evals is not None and max_eval is not None and len(evals) > max_eval:
        evals = evals.select(range(max_eval))
    return train, evals


def validate_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """The row's conversation, or one error naming the row and what is wrong."""
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: `messages` must be a non-empty list of {{role, content}}, got {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise InputError(f"{where}: messages[{i}] must be {{role: str, content: str}}, got {m!r:.120}")
        if m["role"] not in ROLES:
            raise InputError(f"{where}: messages[{i}].role={m['role']!r}; expected one of {', '.join(sorted(ROLES))}")
    if messages[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must be the assistant turn to learn (got role={messages[-1]['role']!r})")
    # `reasoning_content` (curate's reasoning: field) is kept for templates that render it; the check tells if not
    return [{"role": m["role"], "content": m["content"],
             **({"reasoning_content": m["reasoning_content"]} if isinstance(m.get("reasoning_content"), str) else {})}
            for m in messages]
