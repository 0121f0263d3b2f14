"""POST /chat/completions over aiohttp: the online executor's wire, without the OpenAI SDK.

Why not the SDK here: importing `openai` costs ~0.7 s on an idle machine (its generated types), all of it
before collect's first request, while the online path used only `client.post(..., cast_to=dict)` (its typed
request/response models cost more CPU per request than the rest of the path; profiled). What it gave that
matters is kept: Bearer auth, JSON headers and the endpoint's extra headers, a total timeout per attempt, and
failures sorted into the same kinds (`errors.classify`: HTTP status with the SDK's message format
"Error code: N - <error.message>", Retry-After headers, timeouts, refused or dropped connections). The SDK
stays where its surface is worth its import: the Batch API (file uploads, batches).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from distill import __version__
from distill.llm.endpoint import EndpointConfig


class StatusError(Exception):
    """The server answered with a non-2xx status."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str]):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ConnectFailed(Exception):
    """The request never got an answer: the connection was refused, reset or dropped."""

    def __init__(self, message: str, *, refused: bool):
        super().__init__(message)
        self.refused = refused


class AttemptTimeout(Exception):
    """No complete answer within the endpoint's `timeout_s`."""


def status_message(status: int, text: str) -> str:
    """The SDK's wording: "Error code: 429 - Rate limit reached" (the JSON error's message, when there is one)."""
    msg = f"Error code: {status}"
    try:
        body = json.loads(text)
    except ValueError:
        return msg
    error = body.get("error", body) if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else None
    return f"{msg} - {detail}" if isinstance(detail, str) and detail else msg


class ChatTransport:
    """One endpoint's HTTP session; made inside the running event loop (aiohttp binds to it). `observe` sees
    every answer's headers (the rate limiter reads the provider's limits from them)."""

    path = "/chat/completions"

    def __init__(self, endpoint: EndpointConfig, observe: Callable[[Mapping[str, str]], None] | None = None):
        import aiohttp

        self._aiohttp = aiohttp
        self.observe = observe
        self.url = endpoint.base_url + self.path
        key = endpoint.api_key.get_secret_value()
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"distill/{__version__}",
            **self.auth_headers(endpoint, key),
            **endpoint.headers,
        }
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s),
            connector=aiohttp.TCPConnector(limit=endpoint.concurrency),
            trust_env=True,  # HTTPS_PROXY / NO_PROXY from the environment, as the SDK's client honours them
        )

    def auth_headers(self, endpoint: EndpointConfig, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def post(self, body: dict[str, Any]) -> Any:
        """The parsed JSON answer; raises StatusError, ConnectFailed, AttemptTimeout or a JSON ValueError."""
        aiohttp = self._aiohttp
        try:
            async with self.session.post(self.url, data=json.dumps(body, ensure_ascii=False).encode(),
                                         headers=self.headers) as resp:
                text = await resp.text()
                status, headers = resp.status, resp.headers
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors (and some also ClientErrors): first
            raise AttemptTimeout() from None
        except aiohttp.ClientConnectorError as e:
            raise ConnectFailed(f"{type(e).__name__}: {e}",
                                refused=isinstance(e.os_error, ConnectionRefusedError)) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise ConnectFailed(f"{type(e).__name__}: {e}", refused=False) from None
        if self.observe is not None:
            self.observe(headers)
        if not 200 <= status < 300:
            raise StatusError(status, status_message(status, text), headers)
        return json.loads(text)

    async def close(self) -> None:
        await self.session.close()
