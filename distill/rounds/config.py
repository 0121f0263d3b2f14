"""The `rounds:` section: gap-driven collection in rounds (pool, per-round teacher budget, acquisition functions).

Light on purpose (pydantic only): loading a pipeline YAML must not import the stages it configures.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from distill.prompts import PromptSource
from distill.schema import Section

ACQUISITIONS = ("uncertainty", "failure_neighbours")


class Acquisition(Section):
    """One scoring function and its weight in the combined ranking (scores are rank-normalised before weighting)."""

    name: Literal["uncertainty", "failure_neighbours"] = Field(description="`uncertainty` (the served student's k "
                                                                           "sampled answers disagree) or "
                                                                           "`failure_neighbours` (n-gram sketch "
                                                                           "nearest to eval items the student "
                                                                           "fails and the teacher solves)")
    weight: float = Field(default=1.0, gt=0, description="weight of this function's rank in the combined score")


class UncertaintyConfig(Section):
    k: int = Field(default=4, ge=2, description="answers the student samples per pool prompt")
    temperature: float = Field(default=1.0, gt=0, description="sampling temperature of those answers")
    max_tokens: int = Field(default=256, gt=0, description="completion budget of each sampled answer")
    answer_kind: Literal["number", "choice", "math"] = Field(default="number", description="how `distill.answers` "
                                                                                         "reads a final answer out "
                                                                                         "of each sample")


class NeighboursConfig(Section):
    benchmark: str | None = Field(default=None, description="the `eval.benchmarks` entry whose failures are the "
                                                            "seeds (default: the first). Use a validation set, not "
                                                            "the benchmark you report: selecting on it leaks")
    ngram: int = Field(default=2, ge=1, description="word n-gram size of the sketch")
    num_perm: int = Field(default=64, ge=8, description="MinHash permutations of the sketch")


class DiversityConfig(Section):
    enabled: bool = Field(default=True, description="never pick two near-dups in one round, nor a "
                                                    "near-dup of a prompt an earlier round collected "
                                                    "(curate's MinHash)")
    threshold: float = Field(default=0.8, gt=0, le=1, description="Jaccard at which two prompts are near-dups")
    ngram: int = Field(default=3, ge=1, description="word n-gram size")
    num_perm: int = Field(default=128, ge=8, description="MinHash permutations")


class RoundsConfig(Section):
    """`distill rounds`: round 0 a random (stratified) slice of the pool; then each round the pool is scored by what
    the student does not know yet, and only the top slice goes to the teacher -> curate -> train -> eval."""

    pool: PromptSource | None = Field(default=None, description="the prompt pool (any prompt source; default: "
                                                                "`collect.prompts`)")
    rounds: int = Field(ge=1, description="number of rounds, round 0 included")
    requests_per_round: int = Field(gt=0, description="teacher requests per round (prompts x teachers x "
                                                      "`params.n`); picks = this / (teachers x n)")
    usd_per_round: float | None = Field(default=None, gt=0, description="hard $ cap on each round's collect (the "
                                                                        "spend cap of that round's run dir)")
    first_round: int | None = Field(default=None, gt=0, description="teacher requests in round 0 (default: "
                                                                    "`requests_per_round`)")
    stratify_field: str | None = Field(default=None, description="pool field (a prompt's metadata) round 0 "
                                                                 "stratifies on")
    candidates: int | None = Field(default=2000, gt=0, description="pool prompts scored per round (a random "
                                                                   "subset of those not yet collected; null: all)")
    acquisition: list[Acquisition] = Field(default_factory=lambda: [Acquisition(name="uncertainty"),
                                                                    Acquisition(name="failure_neighbours")],
                                           description="the functions that rank the pool from round 1 on "
                                                       "(`[]`: random slices, the baseline to compare with)")
    uncertainty: UncertaintyConfig = Field(default_factory=UncertaintyConfig)
    failure_neighbours: NeighboursConfig = Field(default_factory=NeighboursConfig)
    diversity: DiversityConfig = Field(default_factory=DiversityConfig)
    training: Literal["continue", "retrain"] = Field(default="continue", description="both train on the union of "
                                                                                    "every round's curated data: "
                                                                                    "`continue` from the last "
                                                                                    "round's student, `retrain` "
                                                                                    "from `train.student`")
    steps_per_round: int | None = Field(default=None, gt=0, description="training steps per round (default: "
                                                                        "`train.max_steps`)")
    student_model: str = Field(default="student", description="the `eval.models` entry (with `serve:`) that plays "
                                                              "each round's student")
    teacher_model: str | None = Field(default=None, description="the `eval.models` entry that plays the teacher "
                                                                "(evaluated once, in round 0; its solved items "
                                                                "bound the failure seeds)")
    seed: int = Field(default=0, description="seed of round 0's slice, the candidate subsets and tie-breaks")

    @model_validator(mode="after")
    def _unique(self) -> RoundsConfig:
        names = [a.name for a in self.acquisition]
        if len(set(names)) != len(names):
            raise ValueError(f"rounds.acquisition: each function once (got {', '.join(names)})")
        return self
