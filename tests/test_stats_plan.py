"""`harness plan --config C` (issue 11): generations, token budget and GPU hours before a run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]


def plan_json(capsys, *args: str) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_study_and_k8(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here: item counts are the benchmarks' published sizes
    sizes = {"aime24": 30, "aime25": 30, "ifeval": 541, "humaneval_plus": 164}
    for name, aime_k in (("study.yaml", 1), ("study-k8.yaml", 8)):
        cfg = yaml.safe_load((REPO / "configs" / name).read_text())
        p = plan_json(capsys, "--config", str(REPO / "configs" / name), "--tokens-per-s", "200")
        rows = {r["benchmark"]: r for r in p["benchmarks"]}
        budget = 0
        for bench, n in sizes.items():
            k = aime_k if bench.startswith("aime") else 1
            mt = cfg["benchmarks"][bench]["max_tokens"]
            assert (rows[bench]["items"], rows[bench]["k"], rows[bench]["generations"]) == (n, k, 2 * n * k)
            assert rows[bench]["token_budget"] == 2 * n * k * mt
            budget += 2 * n * k * mt
        assert p["token_budget"] == budget
        assert p["gpu_hours"] == round(budget / 200 / 3600, 2)
    # k8 adds 7 x 60 AIME generations per model
    assert plan_json(capsys, "--config", str(REPO / "configs" / "study-k8.yaml"))["generations"] - \
        plan_json(capsys, "--config", str(REPO / "configs" / "study.yaml"))["generations"] == 2 * 7 * 60


def test_plan_reads_dataset_files_and_limit(capsys, tmp_path):
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for b in raw["benchmarks"].values():
        b["dataset"]["path"] = str(REPO / b["dataset"]["path"])
    raw["benchmarks"]["aime25"].update(limit=2, samples_per_item=3)
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    p = plan_json(capsys, "--config", str(cfg), "--fill", "0.5")
    rows = {r["benchmark"]: r for r in p["benchmarks"]}
    n_ifeval = sum(1 for line in (REPO / "tests/fixtures/data/ifeval.jsonl").read_text().splitlines() if line.strip())
    assert rows["ifeval"]["items"] == n_ifeval and rows["ifeval"]["items_source"].startswith("file")
    assert (rows["aime25"]["items"], rows["aime25"]["generations"]) == (2, 2 * 2 * 3)
    assert p["tokens_per_server"] == round(0.5 * sum(r["token_budget_per_model"] for r in rows.values()))
    assert main(["plan", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "GPU time at 150 tokens/s per server" in text and "total" in text


def test_plan_rejects_bad_arguments(capsys):
    assert main(["plan", "--config", str(REPO / "configs" / "study.yaml"), "--tokens-per-s", "0"]) == 2
    assert "--tokens-per-s" in capsys.readouterr().err
    assert main(["plan", "--config", str(REPO / "configs" / "nope.yaml")]) == 2


def test_plan_from_run_uses_observed_tokens(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "prev"
    (run / "analysis").mkdir(parents=True)
    tok = lambda m: {"n": 30, "mean": m, "median": m, "p90": m}  # noqa: E731
    rows = [{"model": "distilled", "benchmark": "aime24", "completion_tokens": tok(12000.0)},
            {"model": "base", "benchmark": "aime24", "completion_tokens": tok(15000.0)},
            {"model": "base", "benchmark": "ifeval", "completion_tokens": tok(99999.0)}]  # capped at max_tokens
    (run / "analysis" / "summary.json").write_text(json.dumps({"cost": {"rows": rows}}))
    p = plan_json(capsys, "--config", str(REPO / "configs" / "study.yaml"), "--from-run", str(run))
    r = {x["benchmark"]: x for x in p["benchmarks"]}
    assert r["aime24"]["expected_tokens_per_generation"] == 15000.0  # the larger model mean
    assert r["ifeval"]["expected_tokens_per_generation"] == 32768  # never above the budget
    assert r["aime25"]["expected_tokens_per_generation"] == 38912  # not observed: fill x budget
    assert p["tokens_per_server"] == 30 * 15000 + 541 * 32768 + 30 * 38912 + 164 * 32768
    (run / "analysis" / "summary.json").write_text(json.dumps({"cost": {"rows": []}}))
    assert main(["plan", "--config", str(REPO / "configs" / "study.yaml"), "--from-run", str(run)]) == 2
    assert "cost.rows" in capsys.readouterr().err
