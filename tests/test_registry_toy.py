"""A benchmark added through the registry alone: one spec file in a folder named by
$HARNESS_BENCHMARK_SPECS, no code change, carried from `harness import` to report.md.

The toy benchmark's rows are arithmetic questions in a made-up schema (`qid`, `question`, `answer`,
`level`); it reuses lm-eval's own AIME scorer (`lm_eval.tasks.aime.utils:process_results`, which reads
the doc's `answer`). Its lm-eval files are written here in lm-eval 0.4.13's samples/results format,
with reasoning inside the scored text, so that analysis re-scores the reasoning-stripped protocol
with the spec's scorer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TOY_SPEC = """\
key: toy_arith
label: Toy Arithmetic
section: reasoning
runner: lm_eval
scorer: answer_match
primary_metric: exact_match
answer_extraction: aime_integer
per_question: true
categories: {field: level}
default_max_tokens: 64
nominal_items: 8
dataset:
  required_fields: [qid, question, answer, level]
  item_id: qid
  text_field: question
  answer_field: answer
  category_field: level
lm_eval:
  doc_to_text: "{{question}}"
  doc_to_target: "{{answer}}"
  process_results: lm_eval.tasks.aime.utils:process_results
  metrics: [[exact_match, mean]]
"""

ROWS = [{"qid": f"t{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i), "level": "easy" if i < 4 else "hard"}
        for i in range(8)]


def _text(row: dict[str, str], right: bool, think_has_answer: bool) -> str:
    inside = f" maybe \\boxed{{{row['answer']}}}" if think_has_answer else ""
    final = row["answer"] if right else str(int(row["answer"]) + 1)
    return f"<think>adding{inside}</think>The answer is \\boxed{{{final}}}."


def _write_lm_eval(folder: Path, pattern: list[bool], seed: int) -> list[Path]:
    """lm-eval 0.4.13-shaped samples + results files; `exact_match` as lm-eval scored the raw text."""
    sys.path.insert(0, str(REPO))
    from lm_eval.tasks.aime.utils import process_results

    folder.mkdir(parents=True, exist_ok=True)
    stamp = "2026-11-28T10-00-00.000000"
    lines, total = [], 0
    for i, (row, right) in enumerate(zip(ROWS, pattern, strict=True)):
        text = _text(row, right, think_has_answer=i % 3 == 0)
        em = process_results(row, [text])["exact_match"]
        total += em
        msgs = json.dumps([{"role": "user", "content": row["question"]}])
        lines.append({"doc_id": i, "doc": row, "target": row["answer"],
                      "arguments": {"gen_args_0": {"arg_0": [msgs], "arg_1": {}}},
                      "resps": [[text]], "filtered_resps": [text], "filter": "none", "metrics": ["exact_match"],
                      "exact_match": em})
    samples = folder / f"samples_toy_arith_{stamp}.jsonl"
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    results = folder / f"results_{stamp}.json"
    results.write_text(json.dumps({
        "results": {"toy_arith": {"alias": "toy_arith", "exact_match,none": total / len(ROWS)}},
        "n-samples": {"toy_arith": {"original": len(ROWS), "effective": len(ROWS)}},
        "config": {"model_args": {"seed": seed}}, "lm_eval_version": "0.4.13"}), encoding="utf-8")
    return [samples, results]


def _harness(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_toy_benchmark_from_import_to_report(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "toy_arith.yaml").write_text(TOY_SPEC, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_BENCHMARK_SPECS": str(specs)}
    run = tmp_path / "run"
    patterns = {"cand": [True, True, True, True, True, False, True, False],
                "base": [True, False, False, True, False, False, True, False]}
    for seed, (model, pattern) in enumerate(patterns.items(), start=1):
        files = _write_lm_eval(tmp_path / "outside" / model, pattern, seed)
        res = _harness("import", "--run", str(run), "--model", model, "--benchmark", "toy_arith", *map(str, files), env=env)
        assert res.returncode == 0, res.stdout + res.stderr

    res = _harness("analyze", "--run", str(run), "--candidate", "cand", "--baseline", "base", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    toy = summary["benchmarks"]["toy_arith"]
    # Both protocols scored; the reasoning-stripped one re-scored with the spec's scorer: every final answer counts.
    stripped = toy["protocols"]["reasoning_stripped"]
    assert stripped["cand"]["correct"] == sum(patterns["cand"]) and stripped["base"]["correct"] == sum(patterns["base"])
    assert toy["metric"] == "exact_match" and toy["n"] == len(ROWS)
    assert toy["paired"]["only_candidate"] == 3 and toy["paired"]["only_baseline"] == 0
    # Categories from the spec's dataset field, per-question rows from the spec's id / text / answer fields.
    levels = {r["category"]: r["n_items"] for r in summary["categories"]["toy_arith"]["table"]}
    assert levels == {"easy": 4, "hard": 4}
    spec_inputs = [f for f in summary["inputs"]["files"] if f.get("role") == "benchmark_spec:toy_arith"]
    assert [f["path"] for f in spec_inputs] == [str(specs / "toy_arith.yaml")]  # which spec the numbers came from
    rows = summary["per_question"]["toy_arith"]["rows"]
    assert [r["id"] for r in rows] == [r["qid"] for r in ROWS] and rows[3]["answer"] == "6"

    res = _harness("report", "--run", str(run), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "## 5. Toy Arithmetic Results" in report
    assert "Toy Arithmetic per-question breakdown" in report and "Performance by category (dataset field `level`)" in report


def test_toy_benchmark_unknown_without_its_spec(tmp_path: Path) -> None:
    """Without the spec folder the key is unknown, and the error says where benchmarks come from."""
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_BENCHMARK_SPECS"} | {"PYTHONPATH": str(REPO)}
    f = tmp_path / "samples_toy_arith_2026-11-28T10-00-00.000000.jsonl"
    f.write_text("{}\n")
    res = _harness("import", "--run", str(tmp_path / "run"), "--model", "m", "--benchmark", "toy_arith", str(f), env=env)
    assert res.returncode == 2 and "toy_arith" in res.stderr and "known:" in res.stderr


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.replace("runner: lm_eval", "runner: vllm"), "runner"),
    (lambda s: s.replace("key: toy_arith", "key: other"), "must match the file name"),
    (lambda s: s.replace("  required_fields: [qid, question, answer, level]\n", ""), "required_fields"),
])
def test_bad_spec_names_file_and_field(tmp_path: Path, edit, message: str) -> None:
    from harness.benchmarks import RegistryError, _read_spec

    path = tmp_path / "toy_arith.yaml"
    path.write_text(edit(TOY_SPEC), encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        _read_spec(path)
    assert str(path) in str(err.value) and message in str(err.value)
