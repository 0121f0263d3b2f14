"""The `push:` section. Light: no hub code."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from distill.schema import Section


class PushConfig(Section):
    """The `push:` section: where the student goes and what its card declares."""

    repo_id: str = Field(pattern=r"^[\w.\-]+/[\w.\-]+$", description="hub model repo, `org/name`")
    private: bool = Field(default=True, description="create the repo private")
    what: Literal["merged", "adapter"] = Field(default="merged",
                                               description="`merged` (base + adapter in one model) or `adapter` "
                                                           "(the LoRA adapter; its base named in the card and "
                                                           "config)")
    token: SecretStr | None = Field(default=None, description="write token (use `${HF_TOKEN}`, never a literal) "
                                                              "(default: the huggingface_hub login / `HF_TOKEN`)")
    license: str = Field(default="other", description="the card's license id (e.g. `apache-2.0`)")
    license_name: str | None = Field(default=None, description="with `license: other`: a name for the terms")
    license_link: str | None = Field(default=None, description="with `license: other`: a URL to the terms")
    dataset: str | None = Field(default=None, description="hub dataset id the card links; none: the dataset card "
                                                          "ships as `DATASET_CARD.md` (default: "
                                                          "`curate.push_to_hub.repo_id`)")
    train_gpu_usd_per_hour: float | None = Field(default=None, ge=0,
                                                 description="$ per GPU hour: the card's training cost = this x "
                                                             "wall time x processes")
    tags: list[str] = Field(default_factory=list, description="extra card tags (beside `distill`, `distillation`, "
                                                              "`sft`, the method)")
    commit_message: str = Field(default="distill: upload student", description="the hub commit's message")

