"""The `collect:` section (and its `estimate:`), apart from the stage's code so that reading a config stays light."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from distill.llm.batch import BatchConfig
from distill.llm.endpoint import EndpointConfig
from distill.prompts import PromptSource
from distill.schema import Section, require_unique_names


class EstimateConfig(Section):
    pilot: int = Field(default=20, ge=0, description="real requests per teacher to measure answer length in a dry "
                                                     "run; `0` = none")
    tokenizer: str | None = Field(default=None, description="local tokenizer dir to count prompt tokens for "
                                                            "non-OpenAI models")


DEFAULT_USER_PROMPT = (
    "You play the user in a conversation with an AI assistant. Read the conversation and write the user's next "
    "message: a natural follow-up a curious, demanding person would send (ask for a detail, challenge a step, "
    "extend the task). Reply with that message only, no preamble.")


class ConversationConfig(Section):
    """Multi-turn generation: after each teacher answer, a simulated user (a model or your function) replies."""

    turns: int = Field(default=1, ge=1, le=50, description="assistant turns per conversation; above 1, `user` or "
                                                           "`user_function` writes each next user message "
                                                           "(online mode, `n: 1`)")
    user: EndpointConfig | None = Field(default=None, description="a model that plays the user (an endpoint like "
                                                                  "a teacher's; cached, priced and held to "
                                                                  "`budget_usd` like one)")
    user_prompt: str = Field(default=DEFAULT_USER_PROMPT, description="the user model's system prompt (default: "
                                                                      "write a natural follow-up)")
    user_function: str | None = Field(default=None, description="`module:function` called as `(row, messages)` "
                                                                "-> the next user message, or None to end the "
                                                                "conversation")

    @model_validator(mode="after")
    def _one_user(self) -> ConversationConfig:
        if self.turns > 1 and (self.user is None) == (self.user_function is None):
            raise ValueError("turns > 1 needs exactly one of `user` (a model) or `user_function` (module:function)")
        if self.user_function is not None:
            from distill.userfn import check_ref

            check_ref(self.user_function)
        return self


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
    conversation: ConversationConfig = Field(default_factory=ConversationConfig)
    parser: str | None = Field(default=None, description="`module:function` called as `(row, completion)` on every "
                                                         "answer as it is written out: returns a dict of extra record "
                                                         "columns, or raises to mark that record failed (in "
                                                         "failures.jsonl, with its message); re-run after an edit, it "
                                                         "re-parses the cached answers without asking again")

    @model_validator(mode="after")
    def _multi_turn(self) -> CollectConfig:
        if self.conversation.turns > 1:
            if self.mode != "online":
                raise ValueError("conversation.turns > 1 needs mode: online (each turn waits for the one before)")
            many = [t.name for t in self.teachers if t.params.n > 1]
            if many:
                raise ValueError(f"conversation.turns > 1 needs params.n: 1 (teacher {', '.join(many)}): each "
                                 "conversation continues one answer")
        return self

    @field_validator("parser")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        from distill.userfn import check_ref

        return check_ref(v) if v is not None else v

    @field_validator("teachers")
    @classmethod
    def _unique(cls, v: list[EndpointConfig]) -> list[EndpointConfig]:
        return require_unique_names(v, "teacher")

