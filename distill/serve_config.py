"""The `serve:` section (also the shape of an eval model's `serve:`). Light: no server code."""

from __future__ import annotations

from pydantic import Field

from distill.schema import Section


class ServeConfig(Section):
    """How to serve a trained student with vLLM (`serve:` section; also an eval model's `serve:`)."""

    model: str | None = Field(default=None, description="merged model dir or hub id (the base model when `adapter` "
                                                        "is set) (default: `<run_dir>/train/merged`)")
    revision: str | None = Field(default=None, description="hub branch, tag or commit of `model`, resolved to one "
                                                           "commit (see \"Hub models\") (default: the hub's default "
                                                           "branch)")
    adapter: str | None = Field(default=None, description="PEFT LoRA adapter dir: served with LoRA enabled, "
                                                          "requested as `served_name`")
    served_name: str | None = Field(default=None, description="model id clients send (an eval model: its `name`) "
                                                              "(default: `student`)")
    host: str = Field(default="127.0.0.1", description="`distill serve` only: the address to bind (0.0.0.0 inside a "
                                                       "container)")
    port: int = Field(default=8000, ge=0, le=65535, description="`distill serve` only; eval serves on a free "
                                                                "loopback port")
    max_model_len: int | None = Field(default=None, gt=0, description="context length (`--max-model-len`) (default: "
                                                                      "the model's)")
    max_lora_rank: int | None = Field(default=None, gt=0, description="`--max-lora-rank` (default: the adapter's "
                                                                      "`r`, rounded up to a rank vLLM accepts)")
    dtype: str | None = Field(default=None, description="vLLM `--dtype`, passed when set (default: vLLM's)")
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1,
                                                 description="vLLM `--gpu-memory-utilization`, passed when set "
                                                             "(default: vLLM's)")
    tensor_parallel_size: int = Field(default=1, gt=0, description="GPUs one model is split over "
                                                                   "(`--tensor-parallel-size`): a student too big "
                                                                   "for one GPU")
    kv_cache_gib: int = Field(default=1, gt=0, description="CPU only: `VLLM_CPU_KVCACHE_SPACE`")
    extra_args: list[str] = Field(default_factory=list, description="more vLLM server arguments, as-is")
    ready_timeout_s: float = Field(default=900.0, gt=0, description="how long to wait for the server to answer")

