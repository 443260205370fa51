"""GPQA-Diamond through the real pipeline: two llama-servers (SmolLM2-135M), the proxy, lm-eval with
the task the registry spec generates (CoT zero-shot prompt, flexible-extract, choices in a fixed
order from the spec's recorded seed), analysis under both protocols. The fixture is made-up text in
the real CSV schema (tests/fixtures/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.datasets import load_rows
from harness.io import read_jsonl
from harness.runners.lm_eval_tasks import gpqa_doc

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "data" / "gpqa_diamond.csv"
pytestmark = pytest.mark.e2e


def test_gpqa_both_models_see_the_same_choice_order(tmp_path: Path, smollm_gguf: Path, llama_server_binary: Path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["benchmarks"] = {"gpqa_diamond": {"max_tokens": 32, "dataset": {"path": str(FIXTURE)}}}
    config = tmp_path / "gpqa.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--config", str(config), "--run", str(run), "--skip-fetch"],
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads((run / "analysis" / "summary.json").read_text())
    entry = summary["benchmarks"]["gpqa_diamond"]
    rows = load_rows(FIXTURE)
    assert entry["n"] == len(rows) and entry["metric"] == "exact_match"
    assert set(entry["protocols"]) == {"as_recorded", "reasoning_stripped"}
    assert {r["category"] for r in summary["categories"]["gpqa_diamond"]["table"]} == {r["High-level domain"] for r in rows}

    # The seed is recorded with the run's task, and the order it gives is what both models were asked.
    task = (run / "tasks" / "gpqa_diamond" / "gpqa_diamond.yaml").read_text()
    assert "process_docs_args:\n    seed: 0" in task
    asked: dict[str, list[str]] = {}
    for model in ("distilled", "base"):
        recs = [r for r in read_jsonl(run / "proxy" / f"{model}.jsonl")[0] if r.get("benchmark") == "gpqa_diamond"]
        asked[model] = sorted(r["request"]["messages"][-1]["content"] for r in recs)
    assert asked["distilled"] == asked["base"] and len(asked["base"]) == len(rows)
    for row in rows:
        doc = gpqa_doc(row, seed=0)
        choices = "".join(f"({letter}) {doc[f'choice{i}']}\n" for i, letter in enumerate("ABCD", start=1))
        assert any(row["Question"] in a and choices in a for a in asked["base"]), row["Record ID"]
