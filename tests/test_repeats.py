"""samples_per_item: k = 3 repeats with distinct seeds, each recorded, analysed as avg@k / pass@k /
maj@k with the item-level sign-flip test (issue 11)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def test_three_repeats_with_distinct_seeds(tmp_path: Path, smollm_gguf: Path, llama_server_binary: Path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["benchmarks"] = {
        "aime25": {**raw["benchmarks"]["aime25"], "samples_per_item": 3, "limit": 2, "max_tokens": 24},
        "humaneval_plus": {**raw["benchmarks"]["humaneval_plus"], "samples_per_item": 3, "max_tokens": 48},
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
        assert seeds == [seed, seed + 1, seed + 2]
        gens = read_jsonl(run / "raw" / model / "humaneval_plus" / "generations.jsonl")[0]
        assert sorted({(g["repeat"], g["seed"]) for g in gens}) == [(0, seed), (1, seed + 1), (2, seed + 2)]
        assert len(gens) == 3 * 5
    records = [r for m in ("distilled", "base") for r in read_jsonl(run / "proxy" / f"{m}.jsonl")[0]
               if r["path"].endswith("/chat/completions") and r["status"] == 200]
    assert len(records) == 2 * (3 * 2 + 3 * 5)  # every repeat went through the proxy once
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    aime = summary["benchmarks"]["aime25"]
    assert (aime["scores"]["base"]["items"], aime["scores"]["base"]["k"], aime["scores"]["base"]["n"]) == (2, 3, 6)
    # avg@k and the paired test recomputed from lm-eval's own samples files (reasoning_stripped filter)
    means = {}
    for model in ("distilled", "base"):
        per: dict[str, list[int]] = {}
        for f in (run / "raw" / model / "aime25").glob("samples_aime25_*.jsonl"):
            for r in read_jsonl(f)[0]:
                if r["filter"] == "reasoning_stripped":
                    per.setdefault(str(r["doc"]["id"]), []).append(int(r["exact_match"]))
        assert all(len(v) == 3 for v in per.values()) and len(per) == 2
        means[model] = {i: sum(v) / 3 for i, v in per.items()}
        rs = aime["repeats"]["models"][model]
        assert rs["avg_at_k"] == pytest.approx(sum(means[model].values()) / 2, abs=1e-4)
        assert set(rs["pass_at"]) == {"pass@1", "pass@2", "pass@3"}
        assert rs["maj_at_k"]["k"] == 3 and rs["maj_at_k"]["n"] == 2
        he = summary["benchmarks"]["humaneval_plus"]["repeats"]["models"][model]
        assert he["k"] == 3 and he["maj_at_k"]["available"] is False and "pass@3" in he["pass_at"]
    d = [means["distilled"][i] - means["base"][i] for i in sorted(means["base"])]
    p = aime["paired"]
    assert p["delta_pp"] == pytest.approx(100 * sum(d) / 2, abs=0.01)
    assert p["test"] == "sign_flip_exact" and p["p_holm"] is not None
    nz = [x for x in d if x]
    sums = [sum(s * x for s, x in zip(signs, nz, strict=True)) for signs in itertools.product((1, -1), repeat=len(nz))]
    brute = min(1.0, 2 * min(sum(t >= sum(nz) - 1e-9 for t in sums), sum(t <= sum(nz) + 1e-9 for t in sums)) / len(sums))
    assert p["p_value"] == pytest.approx(brute)
    assert p["both"] + p["only_candidate"] + p["only_baseline"] + p["neither"] == 2
    assert "difference" in aime["repeats"]
    # pass@j for HumanEval+ against evalplus' own per-repeat statuses (unbiased estimator, n = 3).
    for model in ("distilled", "base"):
        ev = json.loads((run / "raw" / model / "humaneval_plus" / "samples_reasoning_stripped_eval_results.json").read_text())["eval"]
        passed = [sum(e["base_status"] == "pass" and e["plus_status"] == "pass" for e in rows) for rows in ev.values()]
        want = sum(1 - math.comb(3 - c, 2) / math.comb(3, 2) for c in passed) / len(passed)
        got = summary["benchmarks"]["humaneval_plus"]["repeats"]["models"][model]["pass_at"]["pass@2"]
        assert (got["estimate"] if isinstance(got, dict) else got) == pytest.approx(want, abs=1e-4)
    report = (run / "report.md").read_text()
    assert "### 4.6 Repeats" in report and "sign-flip permutation" in report
