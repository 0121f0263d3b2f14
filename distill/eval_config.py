"""The `eval:` section: models (endpoints, or local models eval serves) x benchmarks. Light: no stage code."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from distill.llm.endpoint import EndpointConfig
from distill.schema import Section, require_unique_names
from distill.serve_config import ServeConfig


Role = Literal["teacher", "student", "base", "other"]


class EvalBenchmark(Section):
    """One benchmark to run: a built-in (gsm8k, mmlu, humaneval) or a `kind: local` / `kind: agreement` set."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="`gsm8k`, `mmlu`, `humaneval`, `math500`, "
                                                                 "`aime_2024`, `gpqa_diamond`, or your label for a "
                                                                 "`kind: local` / `kind: agreement` set")
    kind: str | None = Field(default=None, description="`gsm8k`, `mmlu`, `humaneval`, `math500`, `aime_2024`, "
                                                       "`gpqa_diamond`, `local`, `agreement` (default: the name)")
    source: str | None = Field(default=None, description="local JSONL / Parquet / CSV / saved HF dataset dir / MMLU "
                                                         "CSV dir, or a hub name (default: hub / bundled / "
                                                         "`<run_dir>/curate/dataset`)")
    split: str | None = Field(default=None, description="split to read (default: `test` (`aime_2024`, "
                                                        "`gpqa_diamond`: `train`; `agreement`: `validation`))")
    limit: int | None = Field(default=None, gt=0, description="first N items (default: `eval.limit`)")
    k_shot: int | None = Field(default=None, ge=0, description="shots (gsm8k / mmlu / others; math500, aime_2024, "
                                                               "gpqa_diamond, humaneval are zero-shot only) "
                                                               "(default: 8 / 5 / 0)")
    max_tokens: int | None = Field(default=None, gt=0, description="completion budget (gsm8k / mmlu / humaneval / "
                                                                   "math500 / aime_2024 / gpqa_diamond / local) "
                                                                   "(default: the model's `params.max_tokens`, else "
                                                                   "512 / 256 / 768 / 4096 / 8192 / 2048 / 256)")
    options: dict[str, Any] = Field(default_factory=dict, description="`fewshot_source` (mmlu, local), "
                                                                      "`answer_type` (`numeric`/`choice`; "
                                                                      "agreement: "
                                                                      "`auto`/`numeric`/`choice`/`text`), "
                                                                      "`prompt_template`, `question_field`, "
                                                                      "`answer_field`, `choices_field`, `id_field`, "
                                                                      "`subject_field` (local), `timeout_s`, "
                                                                      "`memory_mb`, `sandbox` (humaneval: `bwrap`, "
                                                                      "or `unconfined` to opt out of isolation), "
                                                                      "`seed` (gpqa_diamond option order, default "
                                                                      "0)")


class EvalModel(EndpointConfig):
    """A model to score: an OpenAI-compatible endpoint, or a local model that eval serves with vLLM (`serve:`)."""

    max_tokens_at_load: ClassVar[bool] = False  # each benchmark sets its own

    model: str | None = None  # type: ignore[assignment]  # required unless `serve` is set
    role: Role = Field(default="other", description="`teacher`, `student`, `base` (the report's gap roles), or "
                                                    "`other`")
    serve: ServeConfig | None = Field(default=None, description="a local model eval serves with vLLM (keys as in "
                                                                "`serve:`)")
    gpu_usd_per_hour: float | None = Field(default=None, ge=0, description="GPU price: $/1M tokens = this / "
                                                                           "measured output tokens per hour x 1e6")

    @model_validator(mode="after")
    def _endpoint_or_serve(self) -> EvalModel:
        if self.serve is None and not self.model:
            raise ValueError("set `model` (an endpoint's model id) or `serve: {model: DIR}` (a local model)")
        return self


class EvalEstimateConfig(Section):
    """`eval --dry-run`: the pilot that measures answer length, and the tokenizers that count prompts exactly."""

    pilot: int = Field(default=5, ge=0, description="real requests per API model x benchmark, spread over its "
                                                    "items, to measure answer length (and the provider's token "
                                                    "count) before the run; their answers are the run's cache hits; "
                                                    "`0` = none (completion = 0 .. max_tokens)")
    tokenizers: dict[str, str] = Field(default_factory=dict, description="eval model name -> local tokenizer dir "
                                                                         "that counts its prompts exactly (default: "
                                                                         "tiktoken for OpenAI models, a served "
                                                                         "model's own files, else chars/4 "
                                                                         "corrected by the pilot)")


class EvalConfig(Section):
    models: list[EvalModel] = Field(min_length=1, description="endpoint keys (see the endpoint table; `model` "
                                                              "required unless `serve` is set) plus the three below")
    benchmarks: list[EvalBenchmark] = Field(min_length=1, description="the benchmarks every model is scored on")
    limit: int | None = Field(default=None, gt=0, description="first N items of every benchmark (`--limit` "
                                                              "overrides) (default: all)")
    temperature: float = Field(default=0.0, ge=0, description="for models whose `params.temperature` is unset")
    budget_usd: float | None = Field(default=None, gt=0, description="hard $ cap on all eval spend in this run dir "
                                                                     "(all API models, all runs; the ledger "
                                                                     "`runs/<name>/spend.jsonl`)")
    estimate: EvalEstimateConfig = Field(default_factory=EvalEstimateConfig)
    scoring_workers: int = Field(default=0, ge=0, description="threads scoring outputs (HumanEval sandbox runs) "
                                                              "(default: CPU count)")
    progress: bool = Field(default=True, description="live progress bars")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @field_validator("models")
    @classmethod
    def _unique_models(cls, v: list[EvalModel]) -> list[EvalModel]:
        return require_unique_names(v, "model")

    @field_validator("benchmarks")
    @classmethod
    def _unique_benchmarks(cls, v: list[EvalBenchmark]) -> list[EvalBenchmark]:
        return require_unique_names(v, "benchmark")

    @model_validator(mode="after")
    def _tokenizers_name_models(self) -> EvalConfig:
        """A misspelled model name under estimate.tokenizers would silently fall back to chars/4."""
        unknown = sorted(set(self.estimate.tokenizers) - set(self.model_names))
        if unknown:
            raise ValueError(f"estimate.tokenizers: {', '.join(unknown)} is not an eval model (models: "
                             f"{', '.join(self.model_names)})")
        return self

