# Compose targets. `include docker/Makefile.compose.mk` from the top Makefile, or use it alone:
#   make -f docker/Makefile.compose.mk demo-compose
#
# GPU box:  cp .env.example .env; edit; make all        (= doctor, build, serve, eval, analyze, report)
# No GPU:   make demo-compose                            (CPU images, SmolLM2, configs/demo.yaml)
#
# CONFIG and RUN come from the make command line, else from $(ENV_FILE), else the defaults below.
# Stages run in the harness container; results land in ./results/$(RUN)/ (bind-mounted volume).

ENV_FILE      ?= .env
PROJECT       ?= distill-eval
env_get        = $(shell sed -n 's/^[[:space:]]*$(1)=//p' $(ENV_FILE) 2>/dev/null | tail -n 1)
CONFIG        ?= $(or $(call env_get,CONFIG),configs/study.yaml)
RUN           ?= $(or $(call env_get,RUN),study)
DEMO_CONFIG   ?= configs/demo.yaml
DEMO_RUN      ?= demo-compose
RENDER_DIR    ?= .cache/compose
LLM_ARGS       = $(RENDER_DIR)/llm-args.$(notdir $(basename $(CONFIG))).yaml
DEMO_LLM_ARGS  = $(RENDER_DIR)/llm-args.$(notdir $(basename $(DEMO_CONFIG))).yaml
# The local CPU llama-server image (docker/llama-cpu.Dockerfile) for machines that cannot pull.
LLAMA_CPU_LOCAL ?= distill-eval/llama-cpu:b11434

# images.lock (from `make lock`) first, so a pin in .env still wins over it.
ENV_ARGS = $(if $(wildcard images.lock),--env-file images.lock) $(if $(wildcard $(ENV_FILE)),--env-file $(ENV_FILE))
COMPOSE  = docker compose -p $(PROJECT) $(ENV_ARGS)
DC_BASE  = CONFIG=$(CONFIG) RUN=$(RUN) $(COMPOSE) -f compose.yaml
DC       = $(DC_BASE) -f $(LLM_ARGS)
DC_CPU_BASE = CONFIG=$(DEMO_CONFIG) RUN=$(DEMO_RUN) $(COMPOSE) -f compose.yaml -f compose.cpu.yaml
DC_CPU   = $(DC_CPU_BASE) -f $(DEMO_LLM_ARGS)

# GPU_<MODEL KEY>=... lines of the env file, passed to the renderer so a list ("0,1,2,3") gives each
# replica its own card(s) (harness.serve.gpu_groups); compose itself cannot split a variable.
GPU_VARS = $(shell sed -n 's/^[[:space:]]*\(GPU_[A-Za-z0-9_]*\)=.*/\1/p' $(ENV_FILE) 2>/dev/null | sort -u)
GPU_ENV_ARGS = $(foreach v,$(GPU_VARS),-e $(v)=$(call env_get,$(v)))

# Host Python with the harness and the Docker SDK (for doctor / lock / record); empty if none.
HOST_PY ?= $(shell for p in .venv/bin/python python3; do $$p -c 'import harness, docker' >/dev/null 2>&1 && { echo $$p; break; }; done)
need_host_py = @test -n "$(HOST_PY)" || { echo "error: $(1) needs Python 3.11+ with the harness: python3 -m venv .venv && .venv/bin/pip install -e ." >&2; exit 2; }

.PHONY: check-env doctor doctor-cpu build render serve manifest eval analyze report all down logs lock record \
        demo-compose demo-compose-down llama-cpu-image

check-env:
	@test -f $(ENV_FILE) || { echo "error: $(ENV_FILE) not found: cp .env.example .env, then set HF_TOKEN and GPU_<MODEL KEY> per model" >&2; exit 2; }

## doctor: Docker engine, compose v2, NVIDIA runtime, .env, HF_TOKEN, disk, ports (GPU path)
doctor:
	$(call need_host_py,make doctor)
	@$(HOST_PY) -m harness doctor --gpu --env-file $(ENV_FILE) --config $(CONFIG)

doctor-cpu:
	$(call need_host_py,make doctor-cpu)
	@$(HOST_PY) -m harness doctor --no-env-file --env-file $(ENV_FILE) --config $(DEMO_CONFIG)

build:
	$(DC_BASE) build

# llama-server and proxy flags from the study config -> compose override (the same functions as
# `harness serve`: harness.serve.llama_server_args / proxy_args). The proxy's cache mode and timeouts
# are the config's `proxy:` section, never environment variables.
render:
	@mkdir -p $(RENDER_DIR)
	$(DC_BASE) run --rm --no-deps -T $(GPU_ENV_ARGS) harness python -m harness.compose_render --config $(CONFIG) > $(LLM_ARGS).tmp
	@mv $(LLM_ARGS).tmp $(LLM_ARGS)

## serve: fetch models/datasets, start the llama-servers (every model, every replica), proxy and sandbox; wait until healthy
serve: render
	@mkdir -p results
	$(DC) up --wait --remove-orphans

# Provenance (config + sha256, GGUF hashes, each server's /props, package versions) written from
# inside the stack with the servers' direct URLs; `record` then adds the image digests actually run.
MANIFEST_PY = import sys; from pathlib import Path; from harness.config import load_config; \
  from harness.provenance import write_manifest; c = Path(sys.argv[1]); \
  from harness.compose_render import upstream_urls; cfg = load_config(c); \
  write_manifest(Path(sys.argv[2]), cfg, c, {m: u[0] for m, u in upstream_urls(cfg).items()}, {"mode": "compose"})

manifest:
	$(DC) run --rm --no-deps harness python -c '$(MANIFEST_PY)' $(CONFIG) results/$(RUN)
	-@$(call record_images,$(RUN))

## eval: every benchmark for every model, through the proxy; generated code runs in the sandbox.
## --no-deps: the stack is `make serve`'s job (re-running the one-shot fetch would re-hash the GGUFs).
eval:
	$(DC) run --rm --no-deps harness python -c '$(MANIFEST_PY)' $(CONFIG) results/$(RUN)
	$(DC) run --rm --no-deps harness harness eval --config $(CONFIG) --run results/$(RUN)
	-@$(call record_images,$(RUN))

analyze:
	$(DC) run --rm --no-deps harness harness analyze --run results/$(RUN)

report:
	$(DC) run --rm --no-deps harness harness report --run results/$(RUN)

## all: the whole study on a GPU box
all: check-env doctor build serve eval analyze report
	@echo "report: results/$(RUN)/report.md"

down:
	$(DC_BASE) --profile tools down --remove-orphans

logs:
	$(DC_BASE) logs --tail=200 -f

## lock: resolve the pinned image tags to registry digests -> images.lock (only verified digests)
lock:
	$(call need_host_py,make lock)
	$(HOST_PY) -m harness.lock_images lock --out images.lock

# The images actually run (ids, repo digests) -> results/$(RUN)/images.json (+ manifest.json "images").
record_images = if [ -n "$(HOST_PY)" ]; then $(HOST_PY) -m harness.lock_images record --run results/$(1) --project $(PROJECT); \
	else echo "warning: no host Python with the harness and the docker SDK; image digests not recorded" >&2; fi
record:
	@$(call record_images,$(RUN))

llama-cpu-image:
	docker build -f docker/llama-cpu.Dockerfile --build-arg BASE_IMAGE=$(or $(BASE_IMAGE),$(call env_get,BASE_IMAGE),debian:bookworm-slim) -t $(LLAMA_CPU_LOCAL) .

## demo-compose: the demo study, whole pipeline in containers, CPU only (no .env needed)
demo-compose:
	@mkdir -p results $(RENDER_DIR)
	$(DC_CPU_BASE) build
	$(DC_CPU_BASE) run --rm --no-deps -T harness python -m harness.compose_render --config $(DEMO_CONFIG) --cpu > $(DEMO_LLM_ARGS).tmp
	@mv $(DEMO_LLM_ARGS).tmp $(DEMO_LLM_ARGS)
	$(DC_CPU) up --wait --remove-orphans
	$(DC_CPU) run --rm --no-deps harness python -c '$(MANIFEST_PY)' $(DEMO_CONFIG) results/$(DEMO_RUN)
	$(DC_CPU) run --rm --no-deps harness harness eval --config $(DEMO_CONFIG) --run results/$(DEMO_RUN)
	-@$(call record_images,$(DEMO_RUN))
	$(DC_CPU) run --rm --no-deps harness harness analyze --run results/$(DEMO_RUN)
	$(DC_CPU) run --rm --no-deps harness harness report --run results/$(DEMO_RUN)
	@echo "report: results/$(DEMO_RUN)/report.md  (stop the stack: make demo-compose-down)"

demo-compose-down:
	$(DC_CPU_BASE) --profile tools down --remove-orphans
