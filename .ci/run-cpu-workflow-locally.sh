#!/usr/bin/env bash
# Run the CPU workflow (.github/workflows/demo-compose.yml) here, as its self-hosted runner would: its
# `run:` steps, in order, read from the workflow file (.ci/workflow_local.py), timed. A random sentinel
# HF_TOKEN is in every step's environment (compose hands it to the fetch container); afterwards no file
# the workflow uploads, and no file anywhere in the run directory, may contain it.
#
#   bash .ci/run-cpu-workflow-locally.sh            (needs Docker Engine + compose v2 running)
#
# What a runner host would provide, this script provides the same way (its environment, like a
# runner's .env file): where local images built by .ci/compose-e2e.sh exist (nothing can be pulled
# here), BASE_IMAGE and LLAMA_CPU_IMAGE point at them and the host CA bundle goes to docker/certs/;
# free host ports, since other work on this machine may hold the default ones.
# Exit: 0 ok, 1 a step failed or an expected file is missing, 2 no Docker, 3 the sentinel leaked.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKFLOW=.github/workflows/demo-compose.yml
PY="${PYTHON:-python3}"

docker info >/dev/null 2>&1 || { echo "run-cpu-workflow-locally: no Docker engine (bash .ci/compose-e2e.sh installs and starts one)" >&2; exit 2; }
docker compose version >/dev/null 2>&1 || { echo "run-cpu-workflow-locally: no compose v2 plugin (bash .ci/compose-e2e.sh installs it)" >&2; exit 2; }

# Local images in place of pulls, as a runner's .env would set them.
if docker image inspect "${E2E_BASE_IMAGE:-distill-eval/base:bookworm}" >/dev/null 2>&1; then
  export BASE_IMAGE="${BASE_IMAGE:-${E2E_BASE_IMAGE:-distill-eval/base:bookworm}}"
  cp /etc/ssl/certs/ca-certificates.crt docker/certs/host-ca-bundle.crt
fi
if docker image inspect "${E2E_LLAMA_CPU_IMAGE:-distill-eval/llama-cpu:b11434}" >/dev/null 2>&1; then
  export LLAMA_CPU_IMAGE="${LLAMA_CPU_IMAGE:-${E2E_LLAMA_CPU_IMAGE:-distill-eval/llama-cpu:b11434}}"
fi
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export PROXY_PORT="${PROXY_PORT:-$(free_port)}" LLM_DISTILLED_PORT="${LLM_DISTILLED_PORT:-$(free_port)}" \
       LLM_BASE_PORT="${LLM_BASE_PORT:-$(free_port)}"

# The checkout step starts the runner from a clean tree: drop what a previous run left in the run dir.
RUN_NAME=$("$PY" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); (j,) = d["jobs"].values(); print(j["env"]["DEMO_RUN"])' "$WORKFLOW")
RUN_DIR="results/$RUN_NAME"
rm -rf "$RUN_DIR" .cache/compose

rc=0
"$PY" .ci/workflow_local.py "$WORKFLOW" --sentinel HF_TOKEN --scan-also "$RUN_DIR" --scan-also .cache/compose || rc=$?

for f in report.md analysis/summary.json manifest.json; do
  [ -s "$RUN_DIR/$f" ] || { echo "run-cpu-workflow-locally: $RUN_DIR/$f missing or empty" >&2; [ "$rc" -ne 0 ] || rc=1; }
done
ls "$RUN_DIR"/figures/*.png >/dev/null 2>&1 || { echo "run-cpu-workflow-locally: no figures in $RUN_DIR/figures" >&2; [ "$rc" -ne 0 ] || rc=1; }
[ "$rc" -eq 0 ] && echo "run-cpu-workflow-locally: PASSED" || echo "run-cpu-workflow-locally: exit $rc" >&2
exit "$rc"
