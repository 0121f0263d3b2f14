"""Config of one OpenAI-compatible endpoint (a teacher API, or a student behind vLLM) and how to sample it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from distill.schema import Section


class SamplingParams(Section):
    """Request parameters; `None` means "not sent" (the server's default applies)."""

    temperature: float | None = Field(default=None, ge=0, description="sent when set")
    top_p: float | None = Field(default=None, gt=0, le=1, description="sent when set")
    max_tokens: int | None = Field(default=None, gt=0, description="sent when set")
    max_completion_tokens: int | None = Field(default=None, gt=0, description="sent when set")
    n: int = Field(default=1, ge=1, description="samples per prompt (sent as `n`; each sample is its own cached "
                                                "record)")
    seed: int | None = Field(default=None, description="sent when set")
    stop: list[str] | str | None = Field(default=None, description="sent when set")
    presence_penalty: float | None = Field(default=None, description="sent when set")
    frequency_penalty: float | None = Field(default=None, description="sent when set")
    reasoning_effort: str | None = Field(default=None, description="o-series / OpenAI-compatible reasoning effort")
    reasoning: dict[str, Any] | None = Field(default=None, description="OpenRouter's `reasoning` object (`{effort: "
                                                                       "high}`, `{max_tokens: N}`), sent as is")
    response_format: dict[str, Any] | str | None = Field(
        default=None, description="structured output: a JSON schema (a mapping), a pydantic model as `module:Model`, "
                                  "`{schema, name, strict}`, `{type: json_object}`, or OpenAI's own `{type: json_schema, "
                                  "json_schema: {...}}`; sent as OpenAI's `json_schema` (strict when the schema "
                                  "meets strict mode's rules), every answer parsed and validated (an "
                                  "invalid one is retried up to `retry.max_attempts`, then recorded failed with the "
                                  "validation error); valid answers carry the parsed object in the `structured` "
                                  "column")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="passed to the API untouched")

    def request_kwargs(self) -> dict[str, Any]:
        """Everything sent with the request except `n` (which the runner sets per call) and messages."""
        out = self.model_dump(exclude={"n", "extra_body", "response_format"}, exclude_none=True)
        if self.extra_body:
            out["extra_body"] = self.extra_body
        return out

    @property
    def max_output_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class PriceConfig(Section):
    """$ per 1M tokens; batch prices default to half (OpenAI's Batch API discount)."""

    prompt: float = Field(ge=0, description="$ per 1M prompt tokens; an unknown model under a `budget_usd` refuses "
                                            "to start (set this); without a budget it costs $0 and a warning says "
                                            "so (default: built-in table)")
    completion: float = Field(ge=0, description="$ per 1M completion tokens (default: built-in table)")
    cache_read: float | None = Field(default=None, ge=0, description="$ per 1M prompt tokens read from the "
                                                                     "provider's prompt cache (Anthropic "
                                                                     "`cache_read_input_tokens`; default 0.1 x "
                                                                     "`prompt`)")
    cache_write: float | None = Field(default=None, ge=0, description="$ per 1M prompt tokens written to the "
                                                                      "provider's prompt cache (Anthropic "
                                                                      "`cache_creation_input_tokens`; default 1.25 x "
                                                                      "`prompt`)")


class RetryConfig(Section):
    max_attempts: int = Field(default=6, ge=1, description="attempts per request (a connection refused on the first "
                                                           "3 before any success stops the run)")
    base_delay_s: float = Field(default=1.0, ge=0, description="backoff: the first delay")
    max_delay_s: float = Field(default=30.0, ge=0, description="backoff: the longest delay")
    max_consecutive_failures: int = Field(default=20, ge=1, description="requests failing in a row (after their "
                                                                       "retries) that stop the run")


ANTHROPIC_URL = "https://api.anthropic.com"
# SamplingParams the Anthropic Messages API has no field for: refused at load, not silently dropped
ANTHROPIC_UNSUPPORTED = ("seed", "presence_penalty", "frequency_penalty", "reasoning_effort", "reasoning")


class EndpointConfig(Section):
    """One model behind one API: OpenAI-compatible (`provider: openai`) or Anthropic's Messages API."""

    # Anthropic requires max_tokens; an eval model gets its benchmark's when none is set, so it may load without
    max_tokens_at_load: ClassVar[bool] = True

    name: str = Field(description="label in records and reports")
    provider: Literal["openai", "anthropic"] = Field(
        default="openai", description="wire format: `openai` (any OpenAI-compatible API) or `anthropic` (the "
                                      "Messages API and its Message Batches API; needs `max_tokens`)")
    base_url: str = Field(default="https://api.openai.com/v1", description="any OpenAI-compatible API (default for "
                                                                          "`provider: anthropic`: "
                                                                          "https://api.anthropic.com)")
    api_key: SecretStr = Field(default=SecretStr("EMPTY"), description="write `${OPENAI_API_KEY}` (or "
                                                                       "`${ANTHROPIC_API_KEY}`); never logged")
    model: str = Field(description="model id sent to the API")
    params: SamplingParams = Field(default_factory=SamplingParams)
    system_prompt: str | None = Field(default=None, description="system message for this endpoint")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers (e.g. OpenRouter's "
                                                                      "`HTTP-Referer`, `X-Title`)")
    concurrency: int = Field(default=32, ge=1, description="requests in flight at most")
    rpm: float | None = Field(default=None, gt=0, description="requests per minute at most (optional ceiling: the "
                                                              "provider's `x-ratelimit-*` / `anthropic-ratelimit-*` "
                                                              "headers pace the run anyway)")
    tpm: float | None = Field(default=None, gt=0, description="tokens per minute at most (prompt + completion; "
                                                              "optional ceiling, as `rpm`)")
    input_tpm: float | None = Field(default=None, gt=0, description="prompt tokens per minute at most (optional "
                                                                    "ceiling; Anthropic limits input and output "
                                                                    "tokens separately)")
    output_tpm: float | None = Field(default=None, gt=0, description="completion tokens per minute at most "
                                                                     "(optional ceiling, charged `max_tokens` up "
                                                                     "front and corrected by the true usage)")
    limit_share: float = Field(default=1.0, gt=0, le=1, description="the share of the provider's announced "
                                                                     "limits (rate-limit headers) this process "
                                                                     "paces to; `collect --shard i/n` sets 1/n so "
                                                                     "n workers on one key stay inside them together")
    prompt_cache: bool = Field(default=False, description="`provider: anthropic`: mark the system prompt "
                                                          "`cache_control: ephemeral`, so requests sharing it read "
                                                          "it from Anthropic's prompt cache (priced at `cache_read`)")
    anthropic_version: str = Field(default="2023-06-01", description="`anthropic-version` header "
                                                                     "(`provider: anthropic`)")
    timeout_s: float = Field(default=300.0, gt=0, description="per request")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    price: PriceConfig | None = Field(default=None, description="overrides the built-in price table")
    price_source: Literal["auto", "openrouter", "table"] = Field(
        default="auto", description="where the price comes from when `price` is unset: `auto` (OpenRouter's "
                                    "model list `GET {base_url}/models` when base_url is on openrouter.ai, else "
                                    "the built-in table), `openrouter` (that list at any base_url: a proxy), "
                                    "`table`")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _provider(self) -> EndpointConfig:
        """Anthropic: its own default URL (a trailing /v1 is dropped: paths are /v1/messages...), a required
        max_tokens, and no OpenAI-only parameters (one error naming the teacher and the field)."""
        if self.provider != "anthropic":
            return self
        if "base_url" not in self.model_fields_set:
            self.base_url = ANTHROPIC_URL
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[: -len("/v1")]
        bad = [k for k in ANTHROPIC_UNSUPPORTED if getattr(self.params, k) is not None]
        if bad:
            raise ValueError(f"'{self.name}' (provider: anthropic): params.{bad[0]} has no Anthropic Messages API "
                             "equivalent; remove it (or pass a provider field through params.extra_body)")
        if self.params.max_output_tokens is None and self.max_tokens_at_load:
            raise ValueError(f"'{self.name}' (provider: anthropic): params.max_tokens is required by the Messages API")
        return self

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
