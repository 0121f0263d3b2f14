"""The `collect:` section (and its `estimate:`), apart from the stage's code so that reading a config stays light."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from distill.llm.batch import BatchConfig
from distill.llm.endpoint import EndpointConfig
from distill.prompts import PromptSource
from distill.schema import Section, require_unique_names


class EstimateConfig(Section):
    pilot: int = Field(default=20, ge=0, description="real requests per teacher to measure answer length in a dry "
                                                     "run; `0` = none")
    tokenizer: str | None = Field(default=None, description="local tokenizer dir to count prompt tokens for "
                                                            "non-OpenAI models")


class CollectConfig(Section):
    prompts: PromptSource
    teachers: list[EndpointConfig] = Field(min_length=1, description="one or more endpoints, collected concurrently "
                                                                     "(see below)")
    budget_usd: float | None = Field(default=None, gt=0, description="hard $ cap on all collect spend in this run "
                                                                     "dir (all teachers, all runs, dry-run pilots; "
                                                                     "ledger `runs/<name>/spend.jsonl`); needs "
                                                                     "`max_tokens` and a known price")
    output_format: Literal["parquet", "jsonl"] = Field(default="parquet", description="`parquet` or `jsonl` shards")
    shard_size: int = Field(default=100_000, gt=0, description="records per shard")
    progress: bool = Field(default=True, description="live progress bar")
    on_truncated: Literal["keep", "drop", "retry"] = Field(default="keep",
                                                           description="`keep`, `drop` or `retry` answers cut at "
                                                                       "`max_tokens`")
    truncated_retry_factor: float = Field(default=2.0, gt=1, description="`max_tokens` multiplier for that retry")
    estimate: EstimateConfig = Field(default_factory=EstimateConfig)
    mode: Literal["online", "batch"] = Field(default="online", description="`online` or `batch` (OpenAI Batch API, or "
                                                                               "Anthropic's Message Batches API for "
                                                                               "`provider: anthropic`)")
    batch: BatchConfig = Field(default_factory=BatchConfig)

    @field_validator("teachers")
    @classmethod
    def _unique(cls, v: list[EndpointConfig]) -> list[EndpointConfig]:
        return require_unique_names(v, "teacher")

