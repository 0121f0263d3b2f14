"""Structured outputs: `params.response_format` as sent on the wire, and every answer parsed and validated.

Accepted forms (config): a JSON schema (a mapping); `{schema, name?, strict?}`; a pydantic model `module:Model`;
`{type: json_object}`; or OpenAI's own `{type: json_schema, json_schema: {...}}`, sent as is. A schema is sent as
OpenAI's `{type: json_schema, json_schema: {name, schema, strict}}` (what vLLM's guided decoding reads too);
`strict` is true when the schema meets strict mode's rules (every object closed, every property required), which
a pydantic model is made to meet the way the openai SDK does it; a schema that does not is sent non-strict (the
API would refuse it strict) and the validation here is what holds it.

Validation is ours whatever the provider promised: an answer that is not JSON (a ```json fence is tolerated) or
does not fit the schema is invalid, and the executor retries it like any failed attempt. The wire form is part of
the request parameters, so a schema edit is a new cache key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distill.errors import ConfigError

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?\s*```\s*$", re.S)


@dataclass(frozen=True)
class StructuredOutput:
    """What is sent (`wire`) and how an answer is judged (`check`)."""

    wire: dict[str, Any]
    validate: Callable[[Any], Any]  # parsed JSON -> the object to record (JSON-able); raises ValueError(reason)

    def check(self, completion: str | None) -> tuple[Any, str | None]:
        """(parsed object, None) for a valid answer; (None, why not) otherwise."""
        text = completion or ""
        m = _FENCE.match(text)
        if m:
            text = m.group(1)
        try:
            value = json.loads(text)
        except ValueError as err:
            start = (completion or "").strip()[:60]
            return None, f"the answer is not JSON ({err}); it starts {start!r}"
        try:
            return self.validate(value), None
        except ValueError as err:
            return None, f"the answer does not match the response_format: {err}"


def is_strict(schema: Any) -> bool:
    """OpenAI strict mode's rules: every object lists all its properties as required and allows no others."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(props):
                return False
        return all(is_strict(v) for v in schema.values())
    if isinstance(schema, list):
        return all(is_strict(v) for v in schema)
    return True


def _schema_validator(schema: dict[str, Any], key: str) -> Callable[[Any], Any]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise ConfigError(f"{key}: not a valid JSON schema: {err.message}") from None
    validator = cls(schema)

    def validate(value: Any) -> Any:
        # a missing required property says most; then jsonschema's own ranking
        errors = sorted(validator.iter_errors(value),
                        key=lambda e: (e.validator != "required", jsonschema.exceptions.relevance(e)))
        if errors:
            e = errors[0]
            where = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise ValueError(f"at {where}: {e.message}{more}")
        return value

    return validate


def _wire(name: str, schema: dict[str, Any], strict: bool | None) -> dict[str, Any]:
    strict = is_strict(schema) if strict is None else strict
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


def _pydantic(ref: str, key: str) -> StructuredOutput:
    from pydantic import BaseModel, ValidationError

    from distill.userfn import load

    model = load(ref, key, callable_=False).obj
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(f"{key}: {ref} is not a pydantic model (a class deriving from pydantic.BaseModel)")
    try:  # the openai SDK's own strict-mode rewrite of a pydantic schema (what its .parse() sends)
        from openai.lib._pydantic import to_strict_json_schema

        schema, strict = to_strict_json_schema(model), True
    except Exception:  # noqa: BLE001 - an SDK without it: send the plain schema, non-strict, and validate here
        schema, strict = model.model_json_schema(), False

    def validate(value: Any) -> Any:
        try:
            return model.model_validate(value).model_dump(mode="json")
        except ValidationError as err:
            first = err.errors()[0]
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
            raise ValueError(f"at {where}: {first['msg']}{more}") from None

    return StructuredOutput(_wire(model.__name__, schema, strict), validate)


def _json_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def structured_output(value: dict[str, Any] | str | None, key: str) -> StructuredOutput | None:
    """The response_format of a config (None: plain text answers). Every mistake is a ConfigError naming `key`."""
    if value is None:
        return None
    if isinstance(value, str):
        return _pydantic(value, key)
    kind = value.get("type")
    if kind == "json_object" and len(value) == 1:
        return StructuredOutput(dict(value), _json_object)
    if kind == "json_schema" and "json_schema" in value:
        inner = value["json_schema"]
        if not isinstance(inner, dict) or not isinstance(inner.get("schema"), dict) or not inner.get("name"):
            raise ConfigError(f"{key}: json_schema needs `name` and `schema` (a mapping)")
        return StructuredOutput(dict(value), _schema_validator(inner["schema"], key))
    if "schema" in value and kind is None:  # {schema, name?, strict?}
        extra = set(value) - {"schema", "name", "strict"}
        if extra or not isinstance(value["schema"], dict):
            raise ConfigError(f"{key}: expected {{schema: <mapping>, name?, strict?}}; unknown key(s) "
                              f"{', '.join(sorted(extra))}" if extra else f"{key}: `schema` must be a mapping")
        schema = value["schema"]
        return StructuredOutput(_wire(str(value.get("name") or "response"), schema, value.get("strict")),
                                _schema_validator(schema, key))
    return StructuredOutput(_wire("response", value, None), _schema_validator(value, key))
