"""The `curate:` section of the pipeline YAML: every filter is a sub-section that can be switched off."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from distill.schema import Section

DEFAULT_REFUSAL_PATTERNS = [
    r"\bI(?:'m| am) (?:really |very )?(?:sorry|afraid),? (?:but )?I (?:can(?:not|'t|\s+not)|am unable|won't|will not)",
    r"\bI can(?:not|'t|\s+not) (?:help|assist|provide|comply|fulfill|do that)",
    r"\bI(?:'m| am) (?:not able|unable) to (?:help|assist|provide|comply|fulfill)",
    r"\bI (?:must|have to) (?:respectfully )?(?:decline|refuse)\b",
    r"\bas an AI(?: language| text-based)? (?:model|assistant)\b",
    r"\bI(?:'m| am) (?:just |only )?an AI\b",
    r"\bI don'?t have (?:access to )?(?:real-time|personal opinions|the ability to browse)",
    r"\bmy (?:training data|knowledge) (?:cutoff|only goes up to)\b",
]


class ErrorsFilter(Section):
    enabled: bool = True


class EmptyFilter(Section):
    enabled: bool = True


class FinishReasonFilter(Section):
    enabled: bool = True
    drop: list[str] = Field(default_factory=lambda: ["length", "content_filter"],
                            description="finish_reason values that mean the answer is cut off or censored")


class RefusalFilter(Section):
    enabled: bool = True
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSAL_PATTERNS),
                                description="case-insensitive regexes searched in the answer")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as err:
                raise ValueError(f"invalid regex {p!r}: {err}") from None
        return v


class TraceFilter(Section):
    """The teacher's reasoning trace (records without one pass, unless `require_trace`)."""

    enabled: bool = True
    require_trace: bool = Field(default=False, description="drop records without a full trace (reasoning-SFT sets)")
    min_tokens: int | None = Field(default=None, ge=0, description="trace length bounds, in student tokens")
    max_tokens: int | None = Field(default=None, gt=0)
    require_answer: bool = Field(default=True, description="a trace must be followed by a non-empty answer")


class TraceRatioFilter(Section):
    """A trace far longer than its answer (rambling, loops the repetition filter misses)."""

    enabled: bool = False
    max_ratio: float = Field(default=20.0, gt=0, description="drop when the trace is more than this many times the answer")
    unit: Literal["tokens", "chars"] = Field(default="tokens", description="tokens: student tokens (chars/4 without "
                                             "student_tokenizer); chars: characters")


class LengthFilter(Section):
    enabled: bool = True
    min_chars: int = Field(default=1, ge=0)
    max_chars: int | None = Field(default=None, gt=0)
    min_tokens: int | None = Field(default=None, ge=0, description="assistant turn, in student tokens")
    max_tokens: int | None = Field(default=None, gt=0, description="assistant turn, in student tokens")
    max_total_tokens: int | None = Field(default=None, gt=0, description="prompt + assistant, in student tokens")


class RepetitionFilter(Section):
    enabled: bool = True
    ngram: int = Field(default=4, ge=1, description="word n-gram size")
    max_ratio: float = Field(default=0.5, gt=0, le=1, description="drop when this share of n-grams are repeats")
    min_ngrams: int = Field(default=20, ge=1, description="shorter answers are not judged")


class LanguageFilter(Section):
    enabled: bool = False
    allowed: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes")
    keep_unknown: bool = Field(default=True, description="keep answers whose language is unclear (code, math)")


class VerifyConfig(Section):
    enabled: bool = True
    kind: Literal["auto", "numeric", "choice", "code"] = Field(
        default="auto", description="auto: code when metadata has tests, choice for a letter reference, else numeric")
    keep: Literal["first", "all", "shortest"] = Field(default="all", description="rejection sampling over samples")
    letters: str = "ABCDEFGHIJ"
    drop_unverifiable: bool = Field(default=False, description="drop records with no usable reference")
    timeout_s: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=512, gt=16)
    workers: int = Field(default=2, ge=1, description="sandboxes run at once")
    sandbox: Literal["bwrap", "unconfined"] = Field(
        default="bwrap", description="unconfined: run code tests without bubblewrap (no isolation; warned about)")


class ExactDedupConfig(Section):
    enabled: bool = True
    on: Literal["prompt", "completion", "both"] = "both"


class NearDedupConfig(Section):
    enabled: bool = True
    on: Literal["prompt", "completion", "both"] = "both"
    ngram: int = Field(default=5, ge=1, description="word shingle size")
    num_perm: int = Field(default=128, ge=8)
    threshold: float = Field(default=0.8, gt=0, le=1, description="estimated Jaccard for a verified pair")
    bands: int | None = Field(default=None, ge=1, description="default: chosen for >= 0.99 recall at threshold")
    rows: int | None = Field(default=None, ge=1)
    seed: int = 1

    @model_validator(mode="after")
    def _fits(self) -> NearDedupConfig:
        if self.bands and self.rows and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands} x {self.rows}) must be <= num_perm ({self.num_perm})")
        return self


class BenchmarkRef(Section):
    name: str
    kind: str | None = Field(default=None, description="registry kind when name is not a built-in (e.g. local)")
    source: str | None = Field(default=None, description="local JSONL/Parquet/CSV path; default: the hub")
    split: str | None = Field(default=None, description="default: the benchmark's own (test; train for aime_2024, "
                              "gpqa_diamond)")
    options: dict = Field(default_factory=dict, description="passed to the benchmark (e.g. local answer type)")


class DecontamConfig(Section):
    enabled: bool = True
    benchmarks: list[BenchmarkRef] = Field(
        default_factory=lambda: [BenchmarkRef(name="gsm8k"), BenchmarkRef(name="mmlu"), BenchmarkRef(name="humaneval")])
    ngram: int = Field(default=13, ge=3, description="shared word n-gram length that marks a leak")
    min_words: int = Field(default=8, ge=3, description="benchmark texts shorter than ngram but this long match whole")
    on: Literal["prompt", "completion", "both"] = "both"


class HubPush(Section):
    repo_id: str
    private: bool = True
    token: str | None = Field(default=None, description="default: the huggingface_hub login / HF_TOKEN")


class CurateConfig(Section):
    input: str | None = Field(default=None, description="collect stage dir; default <run_dir>/collect")
    validation_fraction: float = Field(default=0.05, ge=0, lt=1, description="share of prompts in validation")
    seed: int = 0
    reasoning: Literal["think", "field", "drop"] = Field(
        default="think",
        description="how the teacher's trace enters the assistant turn: think = '<think>\\n...\\n</think>\\n\\n' + answer "
                    "(R1-style students); field = the message's `reasoning_content` (templates that render it); "
                    "drop = answer only")
    allow_partial_traces: bool = Field(
        default=False, description="train on summarized/redacted traces (refused by default: a summary is not the reasoning)")
    student_tokenizer: str | None = Field(default=None, description="local tokenizer dir for token counts")
    num_proc: int = Field(default=2, ge=1, description="processes for per-record filters on large data")
    errors: ErrorsFilter = Field(default_factory=ErrorsFilter)
    empty: EmptyFilter = Field(default_factory=EmptyFilter)
    finish_reason: FinishReasonFilter = Field(default_factory=FinishReasonFilter)
    trace: TraceFilter = Field(default_factory=TraceFilter)
    trace_ratio: TraceRatioFilter = Field(default_factory=TraceRatioFilter)
    refusal: RefusalFilter = Field(default_factory=RefusalFilter)
    length: LengthFilter = Field(default_factory=LengthFilter)
    repetition: RepetitionFilter = Field(default_factory=RepetitionFilter)
    language: LanguageFilter = Field(default_factory=LanguageFilter)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    exact_dedup: ExactDedupConfig = Field(default_factory=ExactDedupConfig)
    near_dedup: NearDedupConfig = Field(default_factory=NearDedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    push_to_hub: HubPush | None = None
    progress: bool = True
