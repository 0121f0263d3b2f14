"""A row -> chat messages by the user's own means: a Python function (`prompts.builder`) or a Jinja2 template
(`prompts.template_jinja`).

Both are loaded once per stage; what they return is checked row by row, and a mistake is one line naming the key,
the row (file:line) and what was expected. `code_fingerprint` is the hash of what they are (the function's module
source, the template text): collect's fingerprint holds it, so an edit re-runs the stage, while the response
cache (keyed by the messages themselves) re-asks only the prompts whose messages changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, InputError

# row location, row -> messages, or None to skip the row
MakeMessages = Callable[[str, dict[str, Any]], list[dict[str, str]] | None]
ROLES = ("system", "user", "assistant", "developer", "tool")


def check_messages(value: Any, key: str, where: str) -> list[dict[str, str]] | None:
    """What a builder returned, as messages; None passes through (skip). Anything else: one clear error."""
    if value is None:
        return None
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    expected = "a list of {role, content} messages, a string (one user turn), or None to skip the row"
    if not isinstance(value, list | tuple) or not value:
        raise InputError(f"{where}: {key} returned {type(value).__name__} {_short(value)}; expected {expected}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise InputError(f"{where}: {key} returned a bad message at index {i} ({_short(m)}); expected {expected} "
                             f"(role one of {', '.join(ROLES)}, content a string)")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _template_text(value: str) -> tuple[str, str]:
    """(template text, where it came from): inline when it holds `{{`/`{%`, else a file (cwd, then the pipeline
    file's directory)."""
    if "{{" in value or "{%" in value:
        return value, "prompts.template_jinja"
    from distill.userfn import search_dirs

    p = Path(value)
    candidates = [p] if p.is_absolute() else [p, *(d / p for d in search_dirs())]
    for c in candidates:
        if c.is_file():
            return c.read_text(encoding="utf-8"), str(c)
    raise ConfigError(f"prompts.template_jinja: {value!r} is neither a template (no `{{{{`) nor a file (looked in "
                      f"the working dir and {', '.join(str(d) for d in search_dirs())})")


def jinja_maker(value: str) -> tuple[MakeMessages, str]:
    """(row -> one user message, hash of the template text)."""
    import jinja2

    text, origin = _template_text(value)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    try:
        template = env.from_string(text)
    except jinja2.TemplateSyntaxError as err:
        raise ConfigError(f"{origin}:{err.lineno}: prompts.template_jinja: {err.message}") from None

    def make(where: str, row: dict[str, Any]) -> list[dict[str, str]]:
        try:
            content = template.render(**row, row=row).strip()
        except jinja2.UndefinedError as err:
            raise InputError(f"{where}: prompts.template_jinja ({origin}): {err.message}; the row has fields: "
                             f"{', '.join(map(str, row)) or '(none)'}") from None
        except Exception as err:  # noqa: BLE001 - a template error on one row is the user's to fix, in one line
            raise InputError(f"{where}: prompts.template_jinja ({origin}): {type(err).__name__}: {err}") from None
        return [{"role": "user", "content": content}]

    return make, hashlib.sha256(text.encode()).hexdigest()


def builder_maker(ref: str) -> tuple[MakeMessages, str]:
    """(row -> messages or None, hash of the function's module source)."""
    from distill.userfn import call_error, load

    fn = load(ref, "prompts.builder")

    def make(where: str, row: dict[str, Any]) -> list[dict[str, str]] | None:
        try:
            value = fn.obj(row)
        except Exception as err:  # noqa: BLE001 - the user's function failed on a row: say which, in one line
            raise InputError(call_error("prompts.builder", ref, err, where)) from None
        return check_messages(value, f"prompts.builder ({ref})", where)

    return make, fn.source_sha


def maker_for(src: Any) -> tuple[MakeMessages, str] | None:
    """The maker of a source that uses code (builder or Jinja), else None (field / template / messages_field)."""
    if src.builder:
        return builder_maker(src.builder)
    if src.template_jinja:
        return jinja_maker(src.template_jinja)
    return None


def code_fingerprint(src: Any) -> dict[str, str]:
    """What the prompts' code is, for collect's fingerprint: `{"builder": sha}` or `{"template_jinja": sha}`."""
    made = maker_for(src)
    if made is None:
        return {}
    return {"builder" if src.builder else "template_jinja": made[1]}
