"""Import the reference study's six lm-eval files and re-analyze them (issue 5 "Must show")."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "reference" / "lm-eval-outputs"  # the project's copy (gzip), see reference/README.md
FILES = {  # (model, bench): (samples, results), as named inside the .gz
    ("distilled", "aime24"): ("samples_aime24_2026-02-21T18-01-15.400547.jsonl", "aime24_2026-02-21T18-01-15.400547.json"),
    ("distilled", "aime25"): ("samples_aime25_2026-02-21T18-00-36.367478.jsonl", "aime25_2026-02-21T18-00-36.367478.json"),
    ("distilled", "ifeval"): ("samples_ifeval_2026-02-21T18-52-43.750841.jsonl", "ifeval_2026-02-21T18-52-43.750841.json"),
    ("base", "aime24"): ("samples_aime24_2026-02-21T20-53-11.560634.jsonl", "qwen3-14b-aime24_2026-02-21T20-53-11.560634.json"),
    ("base", "aime25"): ("samples_aime25_2026-02-21T20-31-30.971709.jsonl", "qwen3-14b-aime25_2026-02-21T20-31-30.971709.json"),
    ("base", "ifeval"): ("samples_ifeval_2026-02-21T21-45-55.981090.jsonl", "qwen3-14b-ifeval_2026-02-21T21-45-55.981090.json"),
}
METRIC = {"aime24": "exact_match,none", "aime25": "exact_match,none", "ifeval": "prompt_level_strict_acc,none"}


def ref(name: str) -> Path:
    return REF / f"{name}.gz"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    if not REF.is_dir():
        pytest.fail(f"reference outputs missing at {REF}")
    run = tmp_path_factory.mktemp("ref") / "run"
    for (model, bench), (samples, results) in FILES.items():
        assert main(["import", "--run", str(run), "--model", model, "--benchmark", bench,
                     str(ref(samples)), str(ref(results))]) == 0
    assert main(["analyze", "--run", str(run), "--candidate", "distilled", "--baseline", "base",
                 "--training-data", str(REPO / "tests/fixtures/data/training_sample.jsonl")]) == 0
    return run, json.loads((run / "analysis" / "summary.json").read_text())


def test_files_copied_untouched(reference_run):
    run, _ = reference_run
    for (model, bench), names in FILES.items():
        for name in names:
            assert (run / "raw" / model / bench / name).read_bytes() == gzip.decompress(ref(name).read_bytes())


@pytest.mark.parametrize("model,bench", sorted(FILES))
def test_as_recorded_equals_lm_eval_results(reference_run, model, bench):
    _, s = reference_run
    recorded = json.loads(gzip.decompress(ref(FILES[(model, bench)][1]).read_bytes()))["results"][bench][METRIC[bench]]
    got = s["benchmarks"][bench]["protocols"]["as_recorded"][model]
    assert got["accuracy"] == pytest.approx(recorded, abs=5e-5)
    assert got["correct"] == round(recorded * got["n"])
    assert s["benchmarks"][bench]["protocol"] == "as_recorded"  # imported -> as_recorded is primary
    assert "reasoning_stripped" in s["benchmarks"][bench]["protocols"]


def test_base_ifeval_reasoning_stripped_rescore(reference_run):
    """The report's 63.6 % (344/541) is the base file re-scored without its reasoning.

    lm-eval's IFEval checkers draw random parameters for some prompts (invalid kwargs, unseeded
    langdetect), so a single re-score lands anywhere in a small range; the harness seeds per document
    and reports that range. 344 must lie in it, the seeded value too, far above the recorded 165.
    """
    _, s = reference_run
    stripped = s["benchmarks"]["ifeval"]["protocols"]["reasoning_stripped"]["base"]
    recorded = s["benchmarks"]["ifeval"]["protocols"]["as_recorded"]["base"]
    assert recorded["correct"] == 165 and stripped["n"] == 541
    info = next(r["rescored"] for r in s["validity"]["per_model_benchmark"] if r["model"] == "base" and r["benchmark"] == "ifeval")
    lo, hi = info["range_over_random_draws"]
    assert lo <= 344 <= hi
    assert lo <= stripped["correct"] <= hi
    assert hi - lo <= len(info["random_dependent_items"])
    assert abs(stripped["correct"] - 344) <= 2  # 63.4–63.8 %
    assert info["sentence_data"]["source"]
    # distilled IFEval had no reasoning blocks: stripping changes nothing beyond random draws
    dist = s["benchmarks"]["ifeval"]["protocols"]
    assert abs(dist["reasoning_stripped"]["distilled"]["correct"] - dist["as_recorded"]["distilled"]["correct"]) <= 1


def test_validity_flags_reasoning_scored_as_answer(reference_run):
    _, s = reference_run
    rows = {(r["model"], r["benchmark"]): r for r in s["validity"]["per_model_benchmark"]}
    assert rows[("base", "ifeval")]["share_scored_with_reasoning"] > 0.9
    assert rows[("distilled", "ifeval")]["share_scored_with_reasoning"] < 0.1
    cmp_ = {c["benchmark"]: c for c in s["validity"]["protocol_comparison"]}
    assert cmp_["ifeval"]["as_recorded"]["delta_pp"] > cmp_["ifeval"]["reasoning_stripped"]["delta_pp"] + 20


def test_import_wrong_benchmark_exits_2(tmp_path, capsys):
    rc = main(["import", "--run", str(tmp_path / "r"), "--model", "m", "--benchmark", "aime24",
               str(ref(FILES[("base", "ifeval")][0]))])
    assert rc == 2
    assert "ifeval" in capsys.readouterr().err
    # right task name in the file name, wrong documents inside
    bad = tmp_path / "samples_aime25_2026-01-01T00-00-00.000000.jsonl"
    bad.write_bytes(gzip.decompress(ref(FILES[("base", "aime24")][0]).read_bytes()))
    assert main(["import", "--run", str(tmp_path / "r"), "--model", "m", "--benchmark", "aime25", str(bad)]) == 2
    assert "schema" in capsys.readouterr().err
    assert not (tmp_path / "r" / "raw" / "m" / "aime25").exists()
