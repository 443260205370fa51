"""The demo study end to end with real parts: llama-server (CPU), SmolLM2-135M, the proxy,
lm-eval, our evalplus client + evalplus (HumanEval+, MBPP+), analysis and report: six benchmarks. Then the resume test: kill
`harness eval` mid-run, rerun it, and check nothing finished is generated again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.benchmarks import registry
from harness.config import load_config
from harness.hashing import prompt_key
from harness.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
pytestmark = pytest.mark.e2e
BENCHES = list(load_config(DEMO).benchmarks)  # six: four of the reference study, MATH-500 and MBPP+
LM_EVAL = [b for b in BENCHES if registry()[b].runner == "lm_eval"]
EVALPLUS = [b for b in BENCHES if registry()[b].runner == "evalplus"]


def harness(*argv: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def generations(run: Path) -> list[dict]:
    """Proxy records of completed chat generations, all models."""
    records = []
    for path in sorted((run / "proxy").glob("*.jsonl")):
        rows, stats = read_jsonl(path)
        assert stats.skipped == 0, f"torn lines in {path}"
        records += [r for r in rows if r["path"].endswith("/chat/completions") and r["status"] == 200]
    return records


def fixture_items(bench: str) -> int:
    path = REPO / "tests" / "fixtures" / "data" / f"{bench}.jsonl"
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def lm_eval_samples(run: Path, model: str, bench: str) -> list[dict]:
    (path,) = sorted((run / "raw" / model / bench).glob("samples_*.jsonl"))
    return read_jsonl(path)[0]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, smollm_gguf: Path, llama_server_binary: Path) -> Path:
    run = tmp_path_factory.mktemp("e2e") / "demo"
    proc = harness("run", "--config", str(DEMO), "--run", str(run), "--skip-fetch")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return run


def test_demo_produces_report_summary_and_logs(demo_run: Path) -> None:
    assert (demo_run / "report.md").stat().st_size > 0
    summary = json.loads((demo_run / "analysis" / "summary.json").read_text())
    assert summary["candidate"] == "distilled" and summary["baseline"] == "base"
    assert len(BENCHES) == 6 and set(BENCHES) <= set(summary["benchmarks"])
    for bench in BENCHES:
        entry = summary["benchmarks"][bench]
        assert entry["protocol"] == "reasoning_stripped"
        assert set(entry["scores"]) == {"distilled", "base"}
        for model in ("distilled", "base"):
            assert entry["scores"][model]["n"] > 0
            assert set(entry["protocols"]) >= {"as_recorded", "reasoning_stripped"}
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert "Authorization" not in json.dumps(manifest)


def test_one_proxy_record_per_generation(demo_run: Path) -> None:
    records = generations(demo_run)
    assert not [r for r in records if r["cache_hit"]], "a fresh run must not be served from cache"
    per = Counter((r["model"], r["benchmark"]) for r in records)
    for model in ("distilled", "base"):
        for bench in LM_EVAL:
            assert per[(model, bench)] == fixture_items(bench), (model, bench, per)
        for bench in EVALPLUS:
            gens = read_jsonl(demo_run / "raw" / model / bench / "generations.jsonl")[0]
            assert per[(model, bench)] == len(gens) > 0


def test_every_scored_sample_joins_its_proxy_record(demo_run: Path) -> None:
    records = generations(demo_run)
    by_key = {}
    for r in records:
        by_key[(r["model"], prompt_key(r["request"]["messages"], r["request"].get("seed")))] = r["request_hash"]
    hashes = {r["request_hash"] for r in records}
    for model in ("distilled", "base"):
        results = next((demo_run / "raw" / model / "aime24").glob("results_*.json"))
        seed = json.loads(results.read_text())["config"]["model_args"]["seed"]
        for bench in LM_EVAL:
            for sample in lm_eval_samples(demo_run, model, bench):
                messages = json.loads(sample["arguments"]["gen_args_0"]["arg_0"][0])
                assert (model, prompt_key(messages, seed)) in by_key, (model, bench, sample["doc_id"])
        for bench in EVALPLUS:
            for gen in read_jsonl(demo_run / "raw" / model / bench / "generations.jsonl")[0]:
                assert gen["request_hash"] in hashes


def test_both_protocols_scored_from_one_generation(demo_run: Path) -> None:
    for model in ("distilled", "base"):
        for bench in LM_EVAL:
            filters = Counter(s["filter"] for s in lm_eval_samples(demo_run, model, bench))
            assert set(filters) == {"as_recorded", "reasoning_stripped"}
            assert filters["as_recorded"] == filters["reasoning_stripped"]
        for bench in EVALPLUS:
            for protocol in ("as_recorded", "reasoning_stripped"):
                assert (demo_run / "raw" / model / bench / f"samples_{protocol}_eval_results.json").exists()


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_eval_resumes_without_regenerating(tmp_path: Path, smollm_gguf: Path, llama_server_binary: Path) -> None:
    run = tmp_path / "resume"
    up = harness("serve", "--config", str(DEMO), "--run", str(run), "--detach", timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        argv = [sys.executable, "-m", "harness", "eval", "--config", str(DEMO), "--run", str(run)]
        first = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        # Kill once some benchmarks have finished and others are mid-flight.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and len(generations(run)) < 14:
            time.sleep(0.2)
        _kill_tree(first)
        before = generations(run)
        total = 2 * sum(fixture_items(b) for b in BENCHES)
        assert 0 < len(before) < total, "kill must land mid-run"
        finished_files = {p: p.read_bytes() for p in (run / "raw").rglob("*") if p.is_file()
                          if (p.parent / "done.json").exists()}
        he_before = {(m, b): (run / "raw" / m / b / "generations.jsonl") for m in ("distilled", "base") for b in EVALPLUS}
        he_prefix = {m: p.read_bytes() if p.exists() else b"" for m, p in he_before.items()}

        second = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    finally:
        harness("down", "--run", str(run))

    after = generations(run)
    upstream = Counter(r["request_hash"] for r in after if not r["cache_hit"])
    assert max(upstream.values()) == 1, "a finished generation was requested upstream again"
    resumed = [r for r in after if r["cache_hit"]]
    assert resumed, "the rerun should have answered finished generations from the proxy cache"
    # Each replayed answer was generated upstream exactly once (possibly finishing after the kill:
    # the proxy completes and records an in-flight generation even when its client is gone).
    assert all(upstream[r["request_hash"]] == 1 for r in resumed)
    for path, content in finished_files.items():
        assert path.read_bytes() == content, f"{path} was rewritten"
    for key, prefix in he_prefix.items():
        assert he_before[key].read_bytes().startswith(prefix), f"finished {key[1]} generations changed"
    for model in ("distilled", "base"):
        for bench in BENCHES:
            assert (run / "raw" / model / bench / "done.json").exists()
