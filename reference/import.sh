#!/usr/bin/env bash
# Import the reference study's lm-eval files (reference/import.tsv) into a run directory, analyze it
# and write its report: `make reference` (RUN defaults to results/reference).
#   reference/import.sh RUN_DIR [HARNESS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
run="${1:?usage: reference/import.sh RUN_DIR [HARNESS]}"
harness="${2:-harness}"
rm -rf "$run/raw" "$run/analysis"  # a fresh import: the files are the input, everything else is derived
while IFS=$'\t' read -r model bench samples results; do
  [[ -z "$model" || "$model" == \#* ]] && continue
  "$harness" import --run "$run" --model "$model" --benchmark "$bench" \
    "$here/lm-eval-outputs/$samples" "$here/lm-eval-outputs/$results"
done < "$here/import.tsv"
"$harness" analyze --run "$run" --candidate distilled --baseline base
"$harness" report --run "$run"
