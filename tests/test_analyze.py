"""`harness analyze` on small run directories written here in the raw formats (lm-eval file form,
evalplus 0.3.1 results, proxy logs), including bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.hashing import prompt_key, request_hash

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "data"
DATE = "2026-01-01T00-00-00.000000"
TS = "2026-01-01T00:00:00Z"
# The fields every proxy record has (harness.records.ProxyRecord); tests add the rest.
RECORD_BASE = {"schema_version": 1, "ts_start": TS, "ts_end": TS, "path": "/v1/chat/completions"}


def docs(bench: str) -> list[dict]:
    return [json.loads(line) for line in (FIX / f"{bench}.jsonl").read_text().splitlines() if line.strip()]


def write_lm_eval(run: Path, model: str, bench: str, seed: int, outcomes: dict[str, tuple[bool, bool]],
                  extra_lines: list[str] = (), reasoning: int = 100, proxy: list | None = None) -> None:
    """outcomes: item index -> (as_recorded correct, reasoning_stripped correct)."""
    d = run / "raw" / model / bench
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    ds = docs(bench)
    for idx, (ok_raw, ok_strip) in outcomes.items():
        doc = ds[int(idx)]
        msgs = [{"role": "user", "content": f"Question: {doc.get('Problem', doc.get('problem', doc.get('prompt')))}\nAnswer:"}]
        content = f"<think>{'r' * reasoning}</think>\nanswer"
        for filt, ok in (("as_recorded", ok_raw), ("reasoning_stripped", ok_strip)):
            rec = {"doc_id": int(idx), "doc": doc, "target": "0", "filter": filt, "resps": [[content]],
                   "filtered_resps": [content if filt == "as_recorded" else "answer"],
                   "arguments": {"gen_args_0": {"arg_0": [json.dumps(msgs)], "arg_1": {}}}}
            if bench == "ifeval":
                rec.update(prompt_level_strict_acc=ok, inst_level_strict_acc=[ok] * len(doc["instruction_id_list"]))
            else:
                rec["exact_match"] = int(ok)
            lines.append(json.dumps(rec))
        if proxy is not None:
            body = {"messages": msgs, "seed": seed, "model": model}
            proxy.append({**RECORD_BASE, "id": f"{model}-{bench}-{idx}", "model": model, "benchmark": bench, "status": 200, "request": body,
                          "request_hash": request_hash(body), "content": content, "reasoning": "r" * reasoning,
                          "answer": "answer", "think_closed": True, "finish_reason": "stop", "latency_s": 2.0,
                          "usage": {"completion_tokens": 50}, "cache_hit": False, "error": None})
    (d / f"samples_{bench}_{DATE}.jsonl").write_text("\n".join(lines + list(extra_lines)) + "\n")
    (d / f"results_{DATE}.json").write_text(json.dumps({"results": {bench: {}}, "config": {"model_args": {"seed": seed}}}))
    (d / "done.json").write_text("{}")


def write_humaneval(run: Path, model: str, passes: dict[int, list[bool]], proxy: list | None = None) -> None:
    d = run / "raw" / model / "humaneval_plus"
    d.mkdir(parents=True, exist_ok=True)
    ev = {}
    gens = []
    for i, oks in passes.items():
        tid = f"HumanEval/{i}"
        ev[tid] = [{"task_id": tid, "solution": "pass", "base_status": "pass" if ok else "fail",
                    "plus_status": "pass" if ok else "fail", "base_fail_tests": [], "plus_fail_tests": []} for ok in oks]
        for rep in range(len(oks)):
            body = {"messages": [{"role": "user", "content": tid}], "seed": rep}
            gens.append({"schema_version": 1, "ts": TS, "model": model, "task_id": tid, "repeat": rep, "request_hash": request_hash(body),
                         "content": "<think>abc</think>\ncode", "reasoning": "abc", "answer": "code", "think_closed": True,
                         "finish_reason": "length" if i == 0 else "stop", "usage": {"completion_tokens": 9}, "latency_s": 1.0})
            if proxy is not None:
                proxy.append({**RECORD_BASE, "id": f"{model}-{tid}-{rep}", "model": model, "benchmark": "humaneval_plus", "status": 200, "request": body,
                              "request_hash": request_hash(body), "reasoning": "abc", "answer": "code", "think_closed": True})
    for proto in ("as_recorded", "reasoning_stripped"):
        (d / f"samples_{proto}_eval_results.json").write_text(json.dumps({"date": "x", "hash": "h", "eval": ev}))
    (d / "generations.jsonl").write_text("\n".join(json.dumps(g) for g in gens) + "\n")
    (d / "done.json").write_text("{}")


def analyze(run: Path, *extra: str) -> dict:
    assert main(["analyze", "--run", str(run), "--candidate", "cand", "--baseline", "base", *extra]) == 0
    return json.loads((run / "analysis" / "summary.json").read_text())


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    r = tmp_path / "run"
    pc, pb = [], []
    # aime24: 5 items; candidate right on 0,1,2 stripped; baseline on 0,3
    write_lm_eval(r, "cand", "aime24", 11, {0: (0, 1), 1: (1, 1), 2: (0, 1), 3: (0, 0), 4: (0, 0)}, reasoning=50, proxy=pc)
    write_lm_eval(r, "base", "aime24", 22, {0: (1, 1), 1: (0, 0), 2: (0, 0), 3: (1, 1), 4: (0, 0)}, reasoning=500, proxy=pb)
    write_lm_eval(r, "cand", "aime25", 11, {i: (1, 1) for i in range(5)}, proxy=pc)
    write_lm_eval(r, "base", "aime25", 22, {i: (0, i < 2) for i in range(5)}, proxy=pb)
    write_humaneval(r, "cand", {0: [True, True], 1: [True, False], 2: [False, False]}, proxy=pc)
    write_humaneval(r, "base", {0: [False, True], 1: [False, False], 2: [True, True]}, proxy=pb)
    (r / "proxy").mkdir(parents=True)
    (r / "proxy" / "cand.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pc) + '{"torn": \n')
    (r / "proxy" / "base.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pb))
    return r


def test_summary_shape_and_numbers(run):
    s = analyze(run)
    assert s["candidate"] == "cand" and s["baseline"] == "base"
    b = s["benchmarks"]["aime24"]
    assert set(b) == {"metric", "protocol", "n", "scores", "paired", "protocols"}
    assert set(b["paired"]) >= {"both", "only_candidate", "only_baseline", "neither", "delta_pp", "test", "p_value", "cohens_h", "effect"}
    assert set(b["paired"]) >= {"n", "delta_ci95", "p_holm", "mde_pp", "items_needed"}  # issue 11
    assert set(b["scores"]["cand"]) == {"correct", "n", "accuracy", "ci95"}
    assert b["protocol"] == "reasoning_stripped"  # harness-made run
    assert b["scores"]["cand"]["correct"] == 3 and b["scores"]["base"]["correct"] == 2
    assert (b["paired"]["both"], b["paired"]["only_candidate"], b["paired"]["only_baseline"], b["paired"]["neither"]) == (1, 2, 1, 1)
    assert b["protocols"]["as_recorded"]["cand"]["correct"] == 1
    assert b["paired"]["test"] == "mcnemar_exact" and b["paired"]["p_value"] == pytest.approx(1.0)
    comb = s["benchmarks"]["aime_combined"]
    assert comb["n"] == 10 and comb["scores"]["cand"]["correct"] == 8 and comb["scores"]["base"]["correct"] == 4
    # humaneval: task passes iff base and plus pass; k = 2: scores are avg@k counted in samples (issue 11)
    he = s["benchmarks"]["humaneval_plus"]
    assert (he["scores"]["cand"]["correct"], he["scores"]["cand"]["n"], he["scores"]["cand"]["items"]) == (3, 6, 3)
    assert he["paired"]["test"] == "sign_flip_exact" and he["paired"]["delta_pp"] == pytest.approx(0.0)
    assert s["benchmark_notes"]["humaneval_plus"]["pass_at_k"]["cand"]["pass@1"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-4)
    assert s["benchmark_notes"]["humaneval_plus"]["pass_at_k"]["cand"]["pass@2"] == pytest.approx(2 / 3, abs=1e-4)
    for name in ("per_sample.csv", "scorecard.csv", "categories.csv", "reasoning_volume.csv"):
        assert (run / "analysis" / name).is_file()


def test_reasoning_volume_and_match(run):
    s = analyze(run)
    rows = {(r["model"], r["benchmark"]): r for r in s["reasoning_volume"]["rows"]}
    assert rows[("cand", "aime24")]["proxy_match"]["rate"] == 1.0
    assert rows[("base", "humaneval_plus")]["proxy_match"]["rate"] == 1.0
    assert rows[("cand", "aime24")]["mean_reasoning_chars"] == 50 and rows[("base", "aime24")]["mean_reasoning_chars"] == 500
    gap = {g["benchmark"]: g for g in s["reasoning_volume"]["gap"]}
    assert gap["aime24"]["ratio_candidate_to_baseline"] == pytest.approx(0.1)
    assert s["reasoning_volume"]["proxy_logs"]["cand"]["malformed_lines"] == 1
    assert s["inputs"]["malformed_lines"] >= 1
    v = {(r["model"], r["benchmark"]): r for r in s["validity"]["per_model_benchmark"]}
    assert v[("cand", "humaneval_plus")]["share_finish_length"] == pytest.approx(1 / 3, abs=1e-4)
    assert v[("cand", "aime24")]["share_scored_with_reasoning"] == 1.0


def test_malformed_and_duplicate_lines_are_reported(tmp_path):
    r = tmp_path / "run"
    dup = json.dumps({"doc_id": 0, "doc": docs("aime24")[0], "filter": "reasoning_stripped", "exact_match": 0, "resps": [["x"]]})
    write_lm_eval(r, "cand", "aime24", 1, {0: (1, 1), 1: (0, 0)}, extra_lines=['{"doc_id": 3, "doc": {', dup])
    write_lm_eval(r, "base", "aime24", 2, {0: (1, 1), 1: (1, 1)})
    s = analyze(r)
    assert s["benchmarks"]["aime24"]["scores"]["cand"]["correct"] == 1  # the duplicate did not override
    warnings = " ".join(s["inputs"]["warnings"])
    assert "malformed" in warnings and "duplicate" in warnings
    f = next(f for f in s["inputs"]["files"] if f["path"].startswith("raw/cand/aime24/samples"))
    assert f["malformed_lines"] == 1 and len(f["sha256"]) == 64


def test_item_mismatch_and_single_model_benchmark(tmp_path):
    r = tmp_path / "run"
    write_lm_eval(r, "cand", "aime24", 1, {0: (1, 1), 1: (1, 1), 2: (0, 0)})
    write_lm_eval(r, "base", "aime24", 2, {1: (0, 0), 2: (0, 0), 3: (1, 1)})
    write_lm_eval(r, "cand", "ifeval", 1, {0: (1, 1), 1: (0, 1)})
    s = analyze(r)
    b = s["benchmarks"]["aime24"]
    assert b["n"] == 2 and b["scores"]["cand"]["n"] == 3 and b["scores"]["base"]["n"] == 3
    assert b["paired"]["only_candidate"] == 1 and b["paired"]["neither"] == 1
    assert "common items" in s["benchmark_notes"]["aime24"]["item_mismatch"]
    ife = s["benchmarks"]["ifeval"]
    assert ife["paired"] is None and ife["scores"]["cand"]["correct"] == 2
    assert "not paired" in s["benchmark_notes"]["ifeval"]["unpaired"]


def test_training_composition_and_leakage(run):
    write_lm_eval(run, "cand", "ifeval", 11, {i: (1, 1) for i in range(3)})
    write_lm_eval(run, "base", "ifeval", 22, {i: (0, 1) for i in range(3)})
    s = analyze(run, "--training-data", str(FIX / "training_sample.jsonl"))
    td = s["training_data"]
    rows = [json.loads(x) for x in (FIX / "training_sample.jsonl").read_text().splitlines()]
    assert td["n"] == len(rows)
    assert td["with_reasoning"] == sum("<think>" in x["messages"][-1]["content"] for x in rows)
    assert sum(b["count"] for b in td["reasoning_buckets"]) + td["no_reasoning"] == td["n"]
    hits = s["leakage"]["hits"]
    aime25_first = docs("aime25")[0]["id"]
    assert any(h["benchmark"] == "aime25" and h["item"] == aime25_first and h["kind"] == "substring" for h in hits)
    assert all(h["benchmark"] != "aime24" for h in hits)
    assert s["transfer"]["available"] and sum(q["count"] for q in s["transfer"]["quadrants"].values()) == len(s["transfer"]["points"])
    ifc = s["categories"]["ifeval"]["categories"]
    n_inst = sum(len(d["instruction_id_list"]) for d in docs("ifeval")[:3])
    assert sum(r["n"] for r in ifc) == n_inst


def test_analyze_usage_errors(tmp_path, capsys):
    r = tmp_path / "run"
    write_lm_eval(r, "cand", "aime24", 1, {0: (1, 1)})
    assert main(["analyze", "--run", str(r)]) == 2
    assert "--candidate" in capsys.readouterr().err
    assert main(["analyze", "--run", str(r), "--candidate", "x", "--baseline", "y"]) == 2
    assert main(["analyze", "--run", str(tmp_path / "missing"), "--candidate", "a", "--baseline", "b"]) == 2


def test_prompt_key_join_uses_seed(tmp_path):
    """A proxy record with another seed must not match: the join is (messages, seed)."""
    r = tmp_path / "run"
    proxy: list = []
    write_lm_eval(r, "cand", "aime24", 5, {0: (1, 1)}, proxy=proxy)
    write_lm_eval(r, "base", "aime24", 6, {0: (1, 1)})
    proxy[0]["request"]["seed"] = 99
    (r / "proxy").mkdir()
    (r / "proxy" / "cand.jsonl").write_text(json.dumps(proxy[0]) + "\n")
    s = analyze(r)
    row = next(x for x in s["reasoning_volume"]["rows"] if x["model"] == "cand")
    assert row["proxy_match"]["matched"] == 0
    msgs = json.loads(json.loads((r / "raw/cand/aime24" / f"samples_aime24_{DATE}.jsonl").read_text().splitlines()[0])["arguments"]["gen_args_0"]["arg_0"][0])
    assert prompt_key(msgs, 5) != prompt_key(msgs, 99)


def test_errored_generation_makes_the_run_incomplete(run, capsys):
    """A generation whose last attempt failed is no sample: analyze exits 3 unless --allow-incomplete."""
    gen = run / "raw" / "base" / "humaneval_plus" / "generations.jsonl"
    failed = {"schema_version": 1, "ts": TS, "model": "base", "task_id": "HumanEval/9", "repeat": 0, "content": None,
              "error": {"type": "http_500", "message": "injected", "retriable": True}}
    gen.write_text(gen.read_text() + json.dumps(failed) + "\n")
    assert main(["analyze", "--run", str(run), "--candidate", "cand", "--baseline", "base"]) == 3
    err = capsys.readouterr().err
    assert "base/humaneval_plus" in err and "1 errored" in err and "--allow-incomplete" in err
    assert not (run / "analysis" / "summary.json").exists()
    s = analyze(run, "--allow-incomplete")
    rows = {(r["model"], r["benchmark"]): r for r in s["validity"]["per_model_benchmark"]}
    assert rows[("base", "humaneval_plus")]["errors"] == 1
    assert all(r["errors"] == 0 and r["missing"] == 0 for k, r in rows.items() if k != ("base", "humaneval_plus"))
    assert main(["report", "--run", str(run)]) == 0
    assert "INCOMPLETE" in (run / "report.md").read_text()


def test_missing_items_counted_against_the_config(run, tmp_path, capsys):
    """With a config, every dataset item x repeat is expected: an item without an outcome is missing."""
    import yaml

    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["candidate"], raw["baseline"] = "cand", "base"
    raw["models"] = {"cand": raw["models"]["distilled"], "base": raw["models"]["base"]}
    raw["benchmarks"] = {"aime24": raw["benchmarks"]["aime24"]}
    for b in raw["benchmarks"].values():
        b["dataset"]["path"] = str(REPO / b["dataset"]["path"])
    raw.pop("training_data")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    samples = next((run / "raw" / "base" / "aime24").glob("samples_*.jsonl"))
    kept = [line for line in samples.read_text().splitlines() if json.loads(line)["doc_id"] != 4]
    samples.write_text("\n".join(kept) + "\n")
    assert main(["analyze", "--run", str(run), "--config", str(cfg)]) == 3
    assert "base/aime24: 4 of 5 item x repeat scored, 1 missing" in capsys.readouterr().err
    assert main(["analyze", "--run", str(run), "--config", str(cfg), "--allow-incomplete"]) == 0
    s = json.loads((run / "analysis" / "summary.json").read_text())
    assert s["benchmarks"]["aime24"]["paired"]["both"] + s["benchmarks"]["aime24"]["paired"]["neither"] + \
        s["benchmarks"]["aime24"]["paired"]["only_candidate"] + s["benchmarks"]["aime24"]["paired"]["only_baseline"] == 4


def test_record_of_unknown_schema_version_is_refused(run, capsys):
    """A reader meets a proxy record written by a future harness: refused with a clear message, exit 2."""
    log = run / "proxy" / "base.jsonl"
    first, *rest = log.read_text().splitlines()
    log.write_text("\n".join([json.dumps({**json.loads(first), "schema_version": 7}), *rest]) + "\n")
    assert main(["analyze", "--run", str(run), "--candidate", "cand", "--baseline", "base"]) == 2
    assert "schema_version 7" in capsys.readouterr().err
