"""The `curate:` section of the pipeline YAML: every filter is a sub-section that can be switched off."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from distill.llm.endpoint import EndpointConfig
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


class StructuredFilter(Section):
    """Answers collected with a `response_format` carry the parsed object (`structured` column): filter on it."""

    enabled: bool = Field(default=False, description="filter on the structured output (records need the "
                                                     "`structured` column: collect with `params.response_format`)")
    require_valid: bool = Field(default=True, description="drop records without a valid structured object")
    required_fields: list[str] = Field(default_factory=list, description="dotted paths (`answer`, `steps.0.text`) "
                                                                        "that must be present and not null")
    equals: dict[str, Any] = Field(default_factory=dict, description="path -> the value it must have (a list: any "
                                                                     "of them)")
    min: dict[str, float] = Field(default_factory=dict, description="path -> the smallest number kept")
    max: dict[str, float] = Field(default_factory=dict, description="path -> the largest number kept")


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


DEFAULT_RUBRIC = """You grade an AI assistant's answer to a user's request. Weigh:
- helpfulness: does it do what was asked, completely and directly?
- correctness: are its facts, reasoning and final answer right? Check them yourself; do not trust its confidence.
- honesty: does it avoid invented facts, and say so when it is unsure?
- instruction following: does it keep the format and constraints the request sets?
Score 1-10: 1-2 wrong, harmful or off-topic; 3-4 major errors or omissions; 5-6 partly right or incomplete;
7-8 correct and helpful with minor flaws; 9-10 correct, complete and clear, nothing important missing.
Write your reasoning briefly first, then the score."""


class JudgeConfig(Section):
    """A model scores answers on a rubric (for answers with no reference): through the same client, cache, prices
    and spend cap as a teacher."""

    enabled: bool = Field(default=False, description="judge every remaining answer with `endpoint` (a paid step: "
                                                     "it runs last, after every free filter)")
    endpoint: EndpointConfig | None = Field(default=None, description="the judge model: an endpoint like a "
                                                                      "teacher's (its `params.response_format` is "
                                                                      "set to the verdict schema)")
    rubric: str = Field(default=DEFAULT_RUBRIC, description="the judge's system prompt (default: an "
                                                            "UltraFeedback-style 1-10 helpfulness/correctness "
                                                            "rubric)")
    threshold: float = Field(default=7, ge=1, le=10, description="keep answers scored at least this (1-10)")
    keep: Literal["all", "best"] = Field(default="all", description="`all` answers at or above the threshold, or "
                                                                    "the `best` scored sample of each prompt "
                                                                    "(rejection sampling; ties: the earlier "
                                                                    "sample)")
    on_error: Literal["drop", "keep"] = Field(default="drop", description="an answer the judge could not score "
                                                                          "(failed after retries)")
    agreement: bool = Field(default=True, description="also judge the answers the reference grader (`verify`) "
                                                      "marked incorrect, to report the judge's agreement with it "
                                                      "(costs those requests; they stay removed)")
    budget_usd: float | None = Field(default=None, gt=0, description="$ cap on judge spend in this run dir (all "
                                                                     "curate runs; ledger `spend.jsonl`, stage "
                                                                     "`curate`)")

    @model_validator(mode="after")
    def _needs_endpoint(self) -> JudgeConfig:
        if self.enabled and self.endpoint is None:
            raise ValueError("judge.enabled needs `endpoint` (the judge model: name, base_url, api_key, model)")
        if self.budget_usd is not None and self.endpoint is not None and not self.endpoint.params.max_output_tokens:
            raise ValueError("judge.budget_usd needs endpoint.params.max_tokens: without it no verdict's cost has "
                             "an upper bound")
        return self


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
    structured: StructuredFilter = Field(default_factory=StructuredFilter)
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
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    push_to_hub: HubPush | None = None
    progress: bool = Field(default=True, description="live progress bars")
