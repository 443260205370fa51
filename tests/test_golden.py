"""Golden test: the reference study's summary.json, field by field, against tests/golden/reference-summary.json.

Any change of a number the report prints is then a visible diff in review. Only `make golden`
(HARNESS_UPDATE_GOLDEN=1) rewrites the golden file. Paths are normalised (<run>, <repo>, <prefix>, <home>) so the
file does not depend on where the test runs; the keys below are the only ones not compared.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "reference-summary.json"
# Not compared: when the summary was written, and which harness commit / files wrote it.
SKIPPED_KEYS = {"generated_at", "imported_at", "provenance"}
SKIPPED_PATHS = {("inputs", "files")}  # sha256 of inputs includes files whose bytes hold absolute paths
FLOAT_TOLERANCE = 1e-9


def normalised(summary: dict[str, Any], run: Path) -> Any:
    text = json.dumps(summary, sort_keys=True)
    places = {str(run): "<run>", str(REPO): "<repo>", sys.prefix: "<prefix>", str(Path.home()): "<home>"}
    for real in sorted(places, key=len, reverse=True):  # the longest (most specific) first
        text = text.replace(real, places[real])
    return json.loads(text)


def differences(want: Any, got: Any, path: tuple[str, ...] = ()) -> list[str]:
    if path[-1:] and path[-1] in SKIPPED_KEYS or path in SKIPPED_PATHS:
        return []
    where = ".".join(path) or "(root)"
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}.{k}: missing" for k in want.keys() - got.keys() if k not in SKIPPED_KEYS]
        out += [f"{where}.{k}: new field" for k in got.keys() - want.keys() if k not in SKIPPED_KEYS]
        for k in want.keys() & got.keys():
            out += differences(want[k], got[k], (*path, k))
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: {len(want)} entries in golden, {len(got)} now"]
        return [d for i, (a, b) in enumerate(zip(want, got, strict=True)) for d in differences(a, b, (*path, str(i)))]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return [] if abs(want - got) <= FLOAT_TOLERANCE else [f"{where}: golden {want!r}, now {got!r}"]
    return [] if want == got else [f"{where}: golden {want!r}, now {got!r}"]


def test_reference_summary_matches_golden(reference_run) -> None:
    run, summary = reference_run
    got = normalised(summary, run)
    if os.environ.get("HARNESS_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"golden file rewritten: {GOLDEN.relative_to(REPO)} (review the diff)")
    assert GOLDEN.is_file(), "no golden file: run `make golden` and review it"
    diffs = differences(json.loads(GOLDEN.read_text(encoding="utf-8")), got)
    assert not diffs, f"{len(diffs)} field(s) differ from the golden file (if intended: `make golden`):\n" + "\n".join(diffs[:40])


def test_golden_comparison_sees_a_changed_number() -> None:
    """The comparison itself can fail: one changed count is reported with its path."""
    want = {"benchmarks": {"ifeval": {"scores": {"base": {"correct": 344, "accuracy": 0.6359}}}}, "generated_at": "x"}
    got = json.loads(json.dumps(want))
    got["benchmarks"]["ifeval"]["scores"]["base"]["correct"] = 345
    got["generated_at"] = "y"
    assert differences(want, got) == ["benchmarks.ifeval.scores.base.correct: golden 344, now 345"]
