# distill on a GPU: vLLM's official image (CUDA, torch, vllm) + this project with its extras; runs any stage.
#
#   docker build -t distill .
#   docker run --gpus all --ipc=host --rm -v "$PWD:/work" --env-file .env distill collect -c pipelines/my.yaml
#
# The working directory /work is where pipelines/ and runs/ live: mount your project there.
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0
FROM ${VLLM_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/root/.cache/huggingface

WORKDIR /opt/distill
COPY pyproject.toml README.md ./
COPY distill ./distill
# Keep the image's torch and vllm exactly as built for its CUDA: pin them while the extras resolve.
RUN python3 -m pip freeze | grep -iE '^(torch|vllm|xformers|flashinfer[-_a-z]*)==' > /tmp/pins.txt \
 && python3 -m pip install -c /tmp/pins.txt ".[train,curate,eval,estimate]" \
 && python3 -c "import distill.cli, vllm, torch, trl, peft, transformers; print('distill image: torch', torch.__version__, 'vllm', vllm.__version__, 'trl', trl.__version__)"
COPY pipelines ./pipelines
COPY configs ./configs
COPY notebooks ./notebooks

WORKDIR /work
# vLLM (distill serve / eval of a served model) must listen on 0.0.0.0 to be reachable from outside: --host 0.0.0.0
EXPOSE 8000
ENTRYPOINT ["distill"]
CMD ["--help"]
