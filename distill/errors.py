"""User-facing errors: one line that names the file/field and what was expected.

The CLI prints a `DistillError` as `error: <message>` and exits 2, never with a traceback; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import re


class DistillError(Exception):
    """A mistake the user can fix (bad config, bad input file, wrong key)."""


class ConfigError(DistillError):
    """The pipeline YAML is invalid."""


class InputError(DistillError):
    """An input file or dataset does not have the expected shape."""


_KEY_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-*]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.]{8,}"),
]


def redact(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Remove API keys from text that may reach a log, a file or the terminal.

    Known secrets are removed verbatim (and by their first/last 6 characters, since providers echo a masked key
    like `sk-abc...xyz`); anything shaped like an OpenAI-style key or a bearer token is removed too.
    """
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
        if len(secret) >= 16:
            text = text.replace(secret[:8], "***").replace(secret[-6:], "***")
    for pat in _KEY_PATTERNS:
        text = pat.sub(lambda m: (m.group(1) if m.lastindex else "") + "***", text)
    return text
