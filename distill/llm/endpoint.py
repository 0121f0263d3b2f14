"""Config of one OpenAI-compatible endpoint (a teacher API, or a student behind vLLM) and how to sample it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingParams(_Strict):
    """Request parameters; `None` means "not sent" (the server's default applies)."""

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    max_completion_tokens: int | None = Field(default=None, gt=0)
    n: int = Field(default=1, ge=1, description="samples per prompt; each is its own cached record")
    seed: int | None = None
    stop: list[str] | str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: str | None = Field(default=None, description="o-series / OpenAI-compatible reasoning effort")
    reasoning: dict[str, Any] | None = Field(default=None, description="OpenRouter's `reasoning` object, sent as is")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="passed to the API untouched")

    def request_kwargs(self) -> dict[str, Any]:
        """Everything sent with the request except `n` (which the runner sets per call) and messages."""
        out = self.model_dump(exclude={"n", "extra_body"}, exclude_none=True)
        if self.extra_body:
            out["extra_body"] = self.extra_body
        return out

    @property
    def max_output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class PriceConfig(_Strict):
    """$ per 1M tokens; batch prices default to half (OpenAI's Batch API discount)."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)
    cached_prompt: float | None = Field(default=None, ge=0)


class RetryConfig(_Strict):
    max_attempts: int = Field(default=6, ge=1, description="attempts per request, the first included")
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=30.0, ge=0)
    max_consecutive_failures: int = Field(
        default=20, ge=1, description="requests failing in a row (after their retries) that stop the run"
    )


class EndpointConfig(_Strict):
    """One model behind one OpenAI-compatible API."""

    name: str = Field(description="label used in records, reports and error messages")
    base_url: str = "https://api.openai.com/v1"
    api_key: SecretStr = Field(default=SecretStr("EMPTY"), description="use ${ENV_VAR}; never logged")
    model: str
    params: SamplingParams = Field(default_factory=SamplingParams)
    system_prompt: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers (OpenRouter's)")
    concurrency: int = Field(default=32, ge=1, description="requests in flight at most")
    rpm: float | None = Field(default=None, gt=0, description="requests per minute limit")
    tpm: float | None = Field(default=None, gt=0, description="tokens per minute limit (prompt + completion)")
    timeout_s: float = Field(default=300.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    price: PriceConfig | None = Field(default=None, description="overrides the built-in price table")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key(cls, v: SecretStr) -> SecretStr:
        """A key with a line break or a non-ASCII character cannot go into an HTTP header: say so now, without
        the key (the HTTP client would fail every attempt, after retries, with an unrelated-looking error)."""
        key = v.get_secret_value()
        bad = next((i for i, ch in enumerate(key) if not (32 <= ord(ch) < 127)), None)
        if bad is not None:
            what = {"\n": "a line feed", "\r": "a carriage return"}.get(key[bad], "a non-ASCII or control character")
            raise ValueError(f"the API key is malformed: {what} at character {bad + 1} of {len(key)} (check the "
                             "environment variable or .env entry it comes from; a key is printable ASCII)")
        return v

    @property
    def secrets(self) -> tuple[str, ...]:
        key = self.api_key.get_secret_value()
        return (key,) if key and key != "EMPTY" else ()
