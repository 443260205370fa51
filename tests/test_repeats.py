"""samples_per_item: k repeats with distinct seeds, each recorded, analysed as avg@k / pass@k."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_two_repeats_with_distinct_seeds(tmp_path: Path, smollm_gguf: Path, llama_server_binary: Path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["benchmarks"] = {
        "aime25": {**raw["benchmarks"]["aime25"], "samples_per_item": 2, "limit": 2, "max_tokens": 24},
        "humaneval_plus": {**raw["benchmarks"]["humaneval_plus"], "samples_per_item": 2, "max_tokens": 48},
    }
    config = tmp_path / "repeats.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--config", str(config), "--run", str(run),
                           "--skip-fetch"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    for model, seed in (("distilled", 11), ("base", 22)):
        seeds = sorted(json.loads(p.read_text())["config"]["model_args"]["seed"]
                       for p in (run / "raw" / model / "aime25").glob("results_*.json"))
        assert seeds == [seed, seed + 1]
        gens = read_jsonl(run / "raw" / model / "humaneval_plus" / "generations.jsonl")[0]
        assert sorted({(g["repeat"], g["seed"]) for g in gens}) == [(0, seed), (1, seed + 1)]
        assert len(gens) == 2 * 5
    records = [r for m in ("distilled", "base") for r in read_jsonl(run / "proxy" / f"{m}.jsonl")[0]
               if r["path"].endswith("/chat/completions") and r["status"] == 200]
    assert len(records) == 2 * (2 * 2 + 2 * 5)  # every repeat went through the proxy once
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert summary["benchmarks"]["aime25"]["scores"]["base"]["n"] == 2
    # pass@2 checked against evalplus' own per-repeat statuses: with n = k = 2 a task counts when either passes.
    for model in ("distilled", "base"):
        ev = json.loads((run / "raw" / model / "humaneval_plus" / "samples_reasoning_stripped_eval_results.json").read_text())["eval"]
        either = [any(e["base_status"] == "pass" and e["plus_status"] == "pass" for e in rows) for rows in ev.values()]
        got = summary["benchmark_notes"]["humaneval_plus"]["pass_at_k"][model]["pass@2"]
        assert got == pytest.approx(sum(either) / len(either), abs=1e-4)
