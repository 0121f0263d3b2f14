"""Classify what went wrong with one request: retry it, fail it, or stop the whole run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from distill.errors import DistillError

if TYPE_CHECKING:
    import openai


class EmptyChoices(Exception):
    """The API answered 200 with `choices == []` (the SDK does not raise on it)."""


class RunStopped(DistillError):
    """The run stopped cleanly: a fatal API error, a run of failures, or the budget cap."""


@dataclass
class Failure:
    kind: str  # rate_limit | server_error | timeout | connection | malformed | empty_choices | bad_request | ...
    retryable: bool
    fatal: bool  # stops the run: the config is wrong, no request can succeed
    message: str
    retry_after: float | None = None
    refused: bool = False  # the connection was refused: the request never reached a server


def _refused(err: BaseException) -> bool:
    cause: BaseException | None = err
    for _ in range(6):
        if cause is None:
            return False
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _retry_after(err: openai.APIStatusError) -> float | None:
    headers = getattr(err.response, "headers", None) or {}
    for name in ("retry-after-ms", "retry-after"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        return value / 1000 if name.endswith("ms") else value
    return None


def _connection_cause(err: BaseException) -> str | None:
    seen = 0
    cause: BaseException | None = err.__cause__
    while cause is not None and seen < 5:
        if isinstance(cause, ConnectionError) or "disconnected" in str(cause).lower():
            return f"{type(cause).__name__}: {cause}"
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def classify(err: BaseException, endpoint_name: str, base_url: str, model: str) -> Failure:
    import openai  # only once something failed: the SDK is loaded by then (it raised `err`)

    where = f"'{endpoint_name}' ({base_url}, model {model!r})"
    if isinstance(err, openai.APITimeoutError):
        # the SDK's aiohttp transport reports refused and dropped connections as (connect) timeouts
        refused = _connection_cause(err)
        if refused is not None:
            return Failure("connection", True, False, f"cannot reach {where}: {refused}", refused=_refused(err))
        return Failure("timeout", True, False, f"request to {where} timed out")
    if isinstance(err, openai.APIConnectionError):
        cause = err.__cause__ or err
        return Failure("connection", True, False, f"cannot reach {where}: {type(cause).__name__}: {cause}",
                       refused=_refused(err))
    if isinstance(err, openai.APIStatusError):
        code = err.status_code
        body = str(err.message)[:300]
        if code == 401:
            return Failure(
                "unauthorized", False, True,
                f"401 Unauthorized from {where}: the API key was rejected; check `api_key` of '{endpoint_name}' "
                "(and the environment variable or .env entry it comes from)",
            )
        if code == 403:
            return Failure("forbidden", False, True, f"403 Forbidden from {where}: this key may not use model {model!r} ({body})")
        if code == 404:
            return Failure(
                "not_found", False, True,
                f"404 Not Found from {where}: check `base_url` (usually ends in /v1) and `model` ({body})",
            )
        if code == 429:
            return Failure("rate_limit", True, False, f"429 rate limited by {where}", _retry_after(err))
        if code in (408, 409) or code >= 500:
            return Failure("server_error" if code >= 500 else f"http_{code}", True, False, f"{code} from {where}: {body}", _retry_after(err))
        return Failure("bad_request" if code == 400 else f"http_{code}", False, False, f"{code} from {where}: {body}")
    if isinstance(err, EmptyChoices):
        return Failure("empty_choices", True, False, f"{where} returned no choices")
    if isinstance(err, json.JSONDecodeError | ValueError | openai.APIResponseValidationError):
        return Failure("malformed", True, False, f"{where} returned a malformed body: {type(err).__name__}: {err}")
    return Failure("other", True, False, f"{where}: {type(err).__name__}: {err}")
