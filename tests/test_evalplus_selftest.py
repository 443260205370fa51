"""evalplus 0.3.1 through our wrapper: canonical solutions score exactly 1.0 (HumanEval/32 included).

Unpatched 0.3.1 scores HumanEval/32's canonical solution as `fail` (notes/evalplus.md §0), so on
this five-task fixture it would give 0.8, not 1.0.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from harness.runners.evalplus_eval import FIND_ZERO_LINE, PatchError, evaluate_in_sandbox, patched_unsafe_execute_source, results_path
from harness.runners.humaneval import score_results

FIXTURE = Path(__file__).parent / "fixtures" / "data" / "humaneval_plus.jsonl"


def _rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.open()]


def _write(path: Path, samples: list[dict]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def test_canonical_solutions_score_one(tmp_path: Path) -> None:
    rows = _rows()
    assert "HumanEval/32" in {r["task_id"] for r in rows}
    samples = _write(tmp_path / "samples_canonical.jsonl",
                     [{"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]} for r in rows])
    stale = results_path(samples)
    stale.write_text(json.dumps({"date": "", "hash": "stale", "eval": {}}))  # would be reused by evalplus
    info = evaluate_in_sandbox(samples, FIXTURE)
    result = json.loads(stale.read_text())
    assert result["hash"] != "stale"
    for task_id, rs in result["eval"].items():
        assert (rs[0]["base_status"], rs[0]["plus_status"]) == ("pass", "pass"), task_id
    scores = score_results(stale, 1)
    assert scores["base_pass@1"] == 1.0 and scores["plus_pass@1"] == 1.0 and scores["n_tasks"] == len(rows)
    assert info["isolation"]["network"] in {"netns", "none"}


def test_wrong_find_zero_still_fails(tmp_path: Path) -> None:
    """The patch records passes; it must not make every find_zero answer pass."""
    rows = _rows()
    samples = [{"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]} for r in rows]
    fz = next(r for r in rows if r["task_id"] == "HumanEval/32")
    samples.append({"task_id": "HumanEval/32", "solution": fz["prompt"] + "    return 0.123\n"})
    path = _write(tmp_path / "samples.jsonl", samples)
    evaluate_in_sandbox(path, FIXTURE)
    rs = json.loads(results_path(path).read_text())["eval"]["HumanEval/32"]
    assert [r["base_status"] for r in rs] == ["pass", "fail"]


def test_patch_asserts_the_exact_line_pair() -> None:
    import evalplus.eval as ev

    src = inspect.getsource(ev.unsafe_execute)
    patched = patched_unsafe_execute_source(src)
    lines = [ln.strip() for ln in patched.splitlines()]
    i = lines.index(FIND_ZERO_LINE)
    assert lines[i + 1:i + 4] == ["details[i] = True", "progress.value += 1", "continue"]
    with pytest.raises(PatchError):
        patched_unsafe_execute_source(src.replace(FIND_ZERO_LINE, "assert True"))
    dup = src.replace(FIND_ZERO_LINE, FIND_ZERO_LINE + "\n                            continue\n                            "
                      + FIND_ZERO_LINE)
    with pytest.raises(PatchError):
        patched_unsafe_execute_source(dup)
