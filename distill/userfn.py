"""The user's own Python named in a pipeline file as `module:name` (a prompt builder, a parser, a pydantic model).

Where a module is looked for: a `module.py` (or package) in the pipeline file's directory, then in the working
directory, then installed modules. A module found as a file is executed afresh on every load (not taken from
`sys.modules`), so an edited function is what runs; the hash of its file is what stage fingerprints record, so an
edit re-runs the stage (and the response cache then re-asks only the requests whose content changed).

Every way a reference can be wrong (malformed, no such module, no such name, not callable, import failed) is one
`ConfigError` naming the config key.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from distill.errors import ConfigError

REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_config_dir: Path | None = None
_loaded: set[str] = set()  # module names this process loaded from a file (ours to replace on the next load)


def set_config_dir(path: Path | None) -> None:
    """The directory of the pipeline file being run (set by `config.load_config`): the first place looked in."""
    global _config_dir
    _config_dir = Path(path).resolve() if path is not None else None


def search_dirs() -> list[Path]:
    out = [d for d in (_config_dir, Path.cwd().resolve()) if d is not None]
    return list(dict.fromkeys(out))


def check_ref(value: str) -> str:
    """For a field validator: the `module:name` shape, said in the error when it is not."""
    if not REF.match(value):
        raise ValueError(f"expected `module:name` (e.g. `my_prompts:build`), got {value!r}")
    return value


@dataclass(frozen=True)
class UserObject:
    """A loaded reference: the object, where it came from, and the hash of its module's source."""

    ref: str
    key: str
    obj: Any
    path: str | None
    source_sha: str

    def provenance(self) -> dict[str, Any]:
        return {"ref": self.ref, "path": self.path, "source_sha256": self.source_sha}


def _from_file(name: str, path: Path, root: Path, key: str) -> ModuleType:
    existing = sys.modules.get(name)
    if existing is not None and name not in _loaded:
        # replacing it in sys.modules would break every other user of that module (json.py beside the pipeline)
        raise ConfigError(f"{key}: {path} has the name of a module Python already uses ({name!r}, "
                          f"{getattr(existing, '__file__', None) or 'built in'}); rename your file")
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if path.name == "__init__.py" else None)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves postponed annotations through sys.modules
    _loaded.add(name)
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))  # its own sibling imports
    try:  # compiled from the text, never from a __pycache__ .pyc that an edit within the same second may not stale
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    finally:
        if added:
            sys.path.remove(str(root))
    return module


def _module(name: str, key: str) -> ModuleType:
    rel = Path(*name.split("."))
    try:
        for d in search_dirs():
            for path in (d / rel.with_suffix(".py"), d / rel / "__init__.py"):
                if path.is_file():
                    return _from_file(name, path, d, key)
        return importlib.import_module(name)
    except ConfigError:
        raise
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            where = ", ".join(str(d) for d in search_dirs())
            raise ConfigError(f"{key}: no module {name!r} (looked for {rel}.py in {where}, then installed "
                              "modules)") from None
        raise ConfigError(f"{key}: importing {name!r} failed: {_where(err)}ModuleNotFoundError: {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's module failed at import: say where, in one line
        raise ConfigError(f"{key}: importing {name!r} failed: {_where(err)}{type(err).__name__}: {err}") from None


def _where(err: BaseException) -> str:
    """`file:line: ` of the innermost frame (the user's code), for one-line errors."""
    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""


def call_error(key: str, ref: str, err: BaseException, context: str) -> str:
    """The one line for an exception raised inside the user's function."""
    return f"{key} ({ref}) raised on {context}: {_where(err)}{type(err).__name__}: {err}"


def load(ref: str, key: str, *, callable_: bool = True) -> UserObject:
    """Import `module:name` for config key `key`; the object must be callable unless `callable_` is False."""
    try:
        check_ref(ref)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None
    mod_name, _, attr = ref.partition(":")
    module = _module(mod_name, key)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = ", ".join(n for n in dir(module) if not n.startswith("_")) or "(none)"
            raise ConfigError(f"{key}: module {mod_name!r} has no {attr!r} (it defines: {names})")
        obj = getattr(obj, part)
    if callable_ and not callable(obj):
        raise ConfigError(f"{key}: {ref} is a {type(obj).__name__}, not a function")
    path = getattr(module, "__file__", None)
    blob = Path(path).read_bytes() if path and Path(path).is_file() else ref.encode()
    return UserObject(ref, key, obj, path, hashlib.sha256(blob).hexdigest())
