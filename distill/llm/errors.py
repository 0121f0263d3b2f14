"""Classify what went wrong with one request: retry it, fail it, or stop the whole run."""

from __future__ import annotations

from dataclasses import dataclass

from distill.errors import DistillError
from distill.llm.transport import AttemptTimeout, ConnectFailed, StatusError


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


def _retry_after(err: StatusError) -> float | None:
    for name in ("retry-after-ms", "retry-after"):
        raw = err.headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        return value / 1000 if name.endswith("ms") else value
    return None


def classify(err: BaseException, endpoint_name: str, base_url: str, model: str) -> Failure:
    where = f"'{endpoint_name}' ({base_url}, model {model!r})"
    if isinstance(err, AttemptTimeout):
        return Failure("timeout", True, False, f"request to {where} timed out")
    if isinstance(err, ConnectFailed):
        return Failure("connection", True, False, f"cannot reach {where}: {err}", refused=err.refused)
    if isinstance(err, StatusError):
        code = err.status
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
        if code == 529:  # Anthropic: the API is overloaded (not our request's fault); retried, Retry-After honoured
            return Failure("overloaded", True, False, f"529 overloaded: {where}: {body}", _retry_after(err))
        if code in (408, 409) or code >= 500:
            return Failure("server_error" if code >= 500 else f"http_{code}", True, False, f"{code} from {where}: {body}", _retry_after(err))
        return Failure("bad_request" if code == 400 else f"http_{code}", False, False, f"{code} from {where}: {body}")
    if isinstance(err, EmptyChoices):
        return Failure("empty_choices", True, False, f"{where} returned no choices")
    if isinstance(err, ValueError):  # json.JSONDecodeError included
        return Failure("malformed", True, False, f"{where} returned a malformed body: {type(err).__name__}: {err}")
    return Failure("other", True, False, f"{where}: {type(err).__name__}: {err}")
