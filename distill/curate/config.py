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
    enabled: bool = Field(default=True, description="drop records without a completion (or `finish_reason: error`)")


class EmptyFilter(Section):
    enabled: bool = Field(default=True, description="drop answers that are blank once reasoning is stripped")


class FinishReasonFilter(Section):
    enabled: bool = Field(default=True, description="run this step")
    drop: list[str] = Field(default_factory=lambda: ["length", "content_filter"],
                            description="finish reasons that mean cut off or censored")


class RefusalFilter(Section):
    enabled: bool = Field(default=True, description="run this step")
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSAL_PATTERNS),
                                description="case-insensitive regexes (refusals, \"as an AI language model\", ...) "
                                            "(default: built-in list)")

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

    enabled: bool = Field(default=True, description="trace filters (records without a trace pass unless "
                                                    "`require_trace`)")
    require_trace: bool = Field(default=False, description="drop records without a full trace")
    min_tokens: int | None = Field(default=None, ge=0, description="shortest trace kept, in student tokens")
    max_tokens: int | None = Field(default=None, gt=0, description="longest trace kept, in student tokens")
    require_answer: bool = Field(default=True, description="drop a trace with no answer after it")


class TraceRatioFilter(Section):
    """A trace far longer than its answer (rambling, loops the repetition filter misses)."""

    enabled: bool = Field(default=False, description="drop a trace far longer than its answer (records without a "
                                                     "trace pass)")
    max_ratio: float = Field(default=20.0, gt=0, description="drop when trace > `max_ratio` x answer (an empty "
                                                             "answer counts as 1)")
    unit: Literal["tokens", "chars"] = Field(default="tokens", description="`tokens`: student tokens (chars/4 "
                                                                           "without `student_tokenizer`); `chars`: "
                                                                           "characters")


class LengthFilter(Section):
    enabled: bool = Field(default=True, description="run this step")
    min_chars: int = Field(default=1, ge=0, description="shortest answer kept, in characters")
    max_chars: int | None = Field(default=None, gt=0, description="longest answer kept, in characters")
    min_tokens: int | None = Field(default=None, ge=0, description="shortest assistant turn kept, in student tokens")
    max_tokens: int | None = Field(default=None, gt=0, description="longest assistant turn kept, in student tokens")
    max_total_tokens: int | None = Field(default=None, gt=0, description="prompt + assistant in student tokens")


class RepetitionFilter(Section):
    enabled: bool = Field(default=True, description="run this step")
    ngram: int = Field(default=4, ge=1, description="word n-gram size")
    max_ratio: float = Field(default=0.5, gt=0, le=1, description="drop when more than this share of word n-grams "
                                                                  "repeat")
    min_ngrams: int = Field(default=20, ge=1, description="answers with fewer n-grams are not judged")


class LanguageFilter(Section):
    enabled: bool = Field(default=False, description="language filter (ISO 639-1)")
    allowed: list[str] = Field(default_factory=lambda: ["en"], description="ISO 639-1 codes kept")
    keep_unknown: bool = Field(default=True, description="keep answers whose language is unclear (code, math)")


class VerifyConfig(Section):
    enabled: bool = Field(default=True, description="run this step")
    kind: Literal["auto", "numeric", "choice", "code"] = Field(default="auto",
                                                               description="`auto`, `numeric`, `choice`, `code`")
    keep: Literal["first", "all", "shortest"] = Field(default="all",
                                                      description="rejection sampling over a prompt's samples: "
                                                                  "`all`, `first`, `shortest` correct")
    letters: str = Field(default="ABCDEFGHIJ", description="choice letters")
    drop_unverifiable: bool = Field(default=False, description="drop records with no usable reference")
    timeout_s: float = Field(default=10.0, gt=0, description="seconds per code test in the sandbox")
    memory_mb: int = Field(default=512, gt=16, description="memory per code test, MB")
    workers: int = Field(default=2, ge=1, description="sandboxes at once")
    sandbox: Literal["bwrap", "unconfined"] = Field(default="bwrap",
                                                    description="`unconfined` runs code tests without bubblewrap: "
                                                                "no isolation, warned about ([Sandbox](#sandbox))")


class ExactDedupConfig(Section):
    enabled: bool = Field(default=True, description="run this step")
    on: Literal["prompt", "completion", "both"] = Field(default="both",
                                                        description="`prompt`, `completion` or `both`")


class NearDedupConfig(Section):
    enabled: bool = Field(default=True, description="run this step")
    on: Literal["prompt", "completion", "both"] = Field(default="both",
                                                        description="`prompt`, `completion` or `both`")
    ngram: int = Field(default=5, ge=1, description="word shingle size")
    num_perm: int = Field(default=128, ge=8, description="MinHash permutations")
    threshold: float = Field(default=0.8, gt=0, le=1, description="Jaccard similarity that makes a duplicate")
    bands: int | None = Field(default=None, ge=1, description="LSH bands (bands x rows <= num_perm) (default: "
                                                              "chosen for recall)")
    rows: int | None = Field(default=None, ge=1, description="LSH rows per band (bands x rows <= num_perm) "
                                                             "(default: chosen for recall)")
    seed: int = Field(default=1, description="seed of the MinHash permutations")

    @model_validator(mode="after")
    def _fits(self) -> NearDedupConfig:
        if self.bands and self.rows and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands} x {self.rows}) must be <= num_perm ({self.num_perm})")
        return self


class BenchmarkRef(Section):
    name: str = Field(description="a benchmark name (`gsm8k`, `mmlu`, `humaneval`, `math500`, `aime_2024`, "
                                  "`gpqa_diamond`) or your label")
    kind: str | None = Field(default=None, description="the benchmark kind when `name` is not one (e.g. `local`)")
    source: str | None = Field(default=None, description="a local file (default: the hub)")
    split: str | None = Field(default=None, description="the benchmark's: `test`, `train` for aime_2024 / "
                                                        "gpqa_diamond")
    options: dict = Field(default_factory=dict, description="passed to the benchmark (as in "
                                                            "`eval.benchmarks[].options`)")


class DecontamConfig(Section):
    enabled: bool = Field(default=True, description="run this step")
    benchmarks: list[BenchmarkRef] = Field(
        default_factory=lambda: [BenchmarkRef(name="gsm8k"), BenchmarkRef(name="mmlu"), BenchmarkRef(name="humaneval")],
        description="benchmarks whose texts are checked (default: gsm8k, mmlu, humaneval)")
    ngram: int = Field(default=13, ge=3, description="shared word n-gram length that marks a leak")
    min_words: int = Field(default=8, ge=3, description="benchmark texts shorter than ngram but this long match whole")
    on: Literal["prompt", "completion", "both"] = Field(default="both",
                                                        description="check the prompt, the answer or both")


class HubPush(Section):
    repo_id: str = Field(description="also push the DatasetDict and card to this hub dataset repo (default: none)")
    private: bool = Field(default=True, description="create the dataset repo private")
    token: str | None = Field(default=None, description="hub write token (use `${HF_TOKEN}`) (default: login)")


class CurateConfig(Section):
    input: str | None = Field(default=None, description="the collect stage dir to read (default: "
                                                        "`<run_dir>/collect`)")
    validation_fraction: float = Field(default=0.05, ge=0, lt=1, description="share of prompts in `validation`")
    seed: int = Field(default=0, description="the split hash's salt")
    reasoning: Literal["think", "field", "drop"] = Field(default="think",
                                                         description="how the trace enters the assistant turn: "
                                                                     "`think` = `<think>\\n...\\n</think>\\n\\n` + "
                                                                     "answer (R1-style students), `field` = the "
                                                                     "assistant message's `reasoning_content` (for "
                                                                     "student templates that render it), `drop` = "
                                                                     "answer only")
    allow_partial_traces: bool = Field(default=False, description="train on `summarized`/`redacted` traces (refused "
                                                                  "by default with an error saying so)")
    student_tokenizer: str | None = Field(default=None, description="local tokenizer dir for token counts (else "
                                                                    "chars/4)")
    num_proc: int = Field(default=2, ge=1, description="processes for the per-record filters (used from 20k records)")
    executor: Literal["local", "ray"] = Field(default="local", description="where the data-parallel work runs: "
                                              "`local` (this process) or `ray` (a Ray cluster, the `scale` "
                                              "extra; same kept records)")
    ray_address: str | None = Field(default=None, description="the Ray cluster to join when `executor: ray` "
                                    "(`ray start --head` prints it); default `RAY_ADDRESS`, else a local Ray "
                                    "instance started for the run")
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
    progress: bool = Field(default=True, description="live progress bars")
