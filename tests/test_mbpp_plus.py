"""MBPP+ (evalplus MbppPlus v0.2.0) through the evalplus runner: the registry spec, the fixture, and
scoring in the sandbox with evalplus' `mbpp` dataset (input deserialization, MBPP special oracles).

No llama-server: the end-to-end run talks to a small chat server in this file that answers each
task's canonical solution.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from aiohttp import web
from chat_server import ThreadedChatServer

from harness.benchmarks import registry, spec
from harness.datasets import check_schema
from harness.runners import humaneval as he
from harness.runners.evalplus_eval import evaluate_in_sandbox, results_path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "data" / "mbpp_plus.jsonl"
BENCH = "mbpp_plus"
# The MBPP+ v0.2.0 release rows' fields (evalplus/mbppplus_release).
MBPP_PLUS_FIELDS = {"task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol",
                    "contract", "assertion"}


def _rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.open()]


def _canonical(row: dict) -> str:
    return row["prompt"] + row["canonical_solution"]


def _answer(code: str, think: bool = False) -> str:
    """A chat answer as a model writes it: prose around a fenced block (optionally after a think)."""
    head = "<think>\nSo I need a function.\ndef draft(:\n</think>\n" if think else ""
    return f"{head}Here is the solution:\n```python\n{code.strip()}\n```\nIt passes the example."


def _evaluate(tmp_path: Path, samples: list[dict], name: str = "samples.jsonl") -> dict:
    path = tmp_path / name
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    evaluate_in_sandbox(path, FIXTURE, dataset=he.evalplus_dataset(BENCH))
    return json.loads(results_path(path).read_text())


# ----------------------------------------------------------------------------------------------
# Spec and fixture


def test_spec_is_an_evalplus_mbpp_benchmark() -> None:
    s = spec(BENCH)
    assert (s.runner, s.scorer, s.section, s.primary_metric) == ("evalplus", "code_execution", "code", "pass@1")
    assert s.evalplus is not None and s.evalplus.dataset == "mbpp" and s.evalplus.id_prefix == "Mbpp/"
    assert he.evalplus_dataset(BENCH) == "mbpp"
    assert BENCH in registry().where(runner="evalplus")
    assert set(s.dataset.required_fields) <= MBPP_PLUS_FIELDS
    assert s.dataset.item_id == "task_id" and s.dataset.text_field == "prompt"


def test_fixture_in_the_real_schema() -> None:
    assert check_schema(BENCH, FIXTURE) == 4
    rows = _rows()
    for row in rows:
        assert set(row) == MBPP_PLUS_FIELDS, row["task_id"]
        assert row["task_id"].startswith(spec(BENCH).evalplus.id_prefix)  # type: ignore[union-attr]
        assert row["prompt"].startswith('"""\n') and row["prompt"].rstrip().endswith('"""')
        assert f"def {row['entry_point']}(" in row["canonical_solution"]
        # The original asserts hold for the canonical solution (a whole program after the docstring).
        exec("import math\n" + _canonical(row) + row["assertion"], {})  # noqa: S102 - our own fixture
    assert [t["task_id"] for t in he.load_tasks(FIXTURE, 2, bench=BENCH)] == [r["task_id"] for r in rows[:2]]


def test_evalplus_loads_the_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """evalplus' own loader (override path, completeness check, input deserialization) accepts it."""
    import evalplus.data.mbpp as mbpp

    monkeypatch.setattr(mbpp, "MBPP_OVERRIDE_PATH", str(FIXTURE))
    problems = mbpp.get_mbpp_plus(err_incomplete=True)
    assert list(problems) == [r["task_id"] for r in _rows()]
    assert all(isinstance(a, tuple) for inp in problems["Mbpp/2"]["base_input"] for a in inp)  # Mbpp/2: tuples


def test_missing_field_is_refused(tmp_path: Path) -> None:
    row = {k: v for k, v in _rows()[0].items() if k != "plus_input"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n")
    assert he.load_tasks(bad)  # the runner's own fields are there
    with pytest.raises(ValueError, match=r"MBPP\+ schema, missing \['plus_input'\]"):
        he.load_tasks(bad, bench=BENCH)


def test_messages_equal_what_evalplus_031_sends_for_mbpp() -> None:
    """evalplus codegen sends an MBPP+ task like a HumanEval+ one: its `prompt`, fenced, after the prefix."""
    from evalplus.provider.openai import OpenAIChatDecoder

    captured: dict = {}

    def create(**kwargs):
        captured.update(kwargs)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="x"))])

    task = _rows()[0]
    decoder = OpenAIChatDecoder("m", base_url="http://127.0.0.1:9/v1", batch_size=1, temperature=0.5,
                                instruction_prefix=he.INSTRUCTION_PREFIX)
    decoder.client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    decoder.codegen(task["prompt"].strip() + "\n", do_sample=True, num_samples=1)
    assert he.build_messages(task["prompt"]) == captured["messages"]


# ----------------------------------------------------------------------------------------------
# Scoring in the sandbox


def test_canonical_answers_score_one_through_the_runner_path(tmp_path: Path) -> None:
    """Model-style answers holding the canonical solutions -> write_samples (sanitize) -> sandbox -> 1.0."""
    tasks = he.load_tasks(FIXTURE, bench=BENCH)
    final = {(t["task_id"], 0): {"content": _answer(_canonical(t), think=True), "finish_reason": "stop", "error": None}
             for t in tasks}
    for protocol in he.PROTOCOLS:
        samples = tmp_path / f"samples_{protocol}.jsonl"
        counts = he.write_samples(tasks, 1, final, protocol, samples)
        assert counts["no_answer"] == 0 and counts["sanitize_errors"] == 0
        info = evaluate_in_sandbox(samples, FIXTURE, dataset=he.evalplus_dataset(BENCH))
        res = json.loads(results_path(samples).read_text())
        assert set(res["eval"]) == {t["task_id"] for t in tasks}
        for task_id, rs in res["eval"].items():
            assert (rs[0]["base_status"], rs[0]["plus_status"]) == ("pass", "pass"), (protocol, task_id, rs[0])
        scores = he.score_results(results_path(samples), 1)
        assert scores == {"n_tasks": 4, "base_pass@1": 1.0, "plus_pass@1": 1.0}
        assert info["isolation"]["network"] in {"netns", "none"}


def test_wrong_solutions_fail_and_mbpp_semantics_apply(tmp_path: Path) -> None:
    rows = {r["task_id"]: r for r in _rows()}
    samples = [{"task_id": t, "solution": _canonical(r)} for t, r in rows.items()]
    samples += [
        # wrong on the base inputs
        {"task_id": "Mbpp/127", "solution": "def multiply_int(x, y):\n    return x + y\n"},
        # right on base, wrong on a plus input (1 is not prime)
        {"task_id": "Mbpp/3", "solution": "def is_not_prime(n):\n    return any(n % i == 0 for i in range(2, n))\n"},
        # passes only if evalplus turned Mbpp/2's JSON lists back into tuples (dataset mbpp, not humaneval);
        # a list in another order passes too (MBPP+'s set-equality oracle for this task)
        {"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n    assert type(a) is tuple and type(b) is tuple\n"
                                          "    return sorted(set(a) & set(b), reverse=True)\n"},
        # a float off by more than evalplus' tolerance (atol 0 becomes 1e-6 for floats) fails
        {"task_id": "Mbpp/606", "solution": "def radian_degree(d):\n    return d * 3.14159 / 180\n"},
    ]
    res = _evaluate(tmp_path, samples)["eval"]
    status = {t: [(r["base_status"], r["plus_status"]) for r in rs] for t, rs in res.items()}
    assert status["Mbpp/127"] == [("pass", "pass"), ("fail", "fail")]
    assert status["Mbpp/3"] == [("pass", "pass"), ("pass", "fail")]
    assert status["Mbpp/2"] == [("pass", "pass"), ("pass", "pass")]
    assert status["Mbpp/606"] == [("pass", "pass"), ("fail", "fail")]
    assert res["Mbpp/3"][1]["plus_fail_tests"] == [[1]]


# ----------------------------------------------------------------------------------------------
# The runner end to end (a canned chat server instead of a model)


class CannedChat(ThreadedChatServer):
    """POST /{model}/v1/chat/completions -> the canonical solution of the task in the prompt."""

    def __init__(self, rows: list[dict]) -> None:
        super().__init__()
        self.rows = rows

    async def reply(self, body: dict) -> web.Response:
        user = body["messages"][-1]["content"]
        row = next(r for r in self.rows if r["prompt"].strip() in user)
        return web.json_response({"choices": [{"message": {"content": _answer(_canonical(row), think=True)},
                                               "finish_reason": "stop"}],
                                  "usage": {"completion_tokens": 7}})


def test_run_humaneval_runs_mbpp_plus_end_to_end(tmp_path: Path) -> None:
    from harness.config import parse_config

    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["benchmarks"] = {BENCH: {"max_tokens": 77, "samples_per_item": 1, "dataset": {"path": str(FIXTURE)}}}
    raw.pop("training_data", None)
    cfg = parse_config(raw, "test")
    model = next(iter(cfg.models))
    server = CannedChat(_rows()).start()
    out = tmp_path / "raw" / model / BENCH
    summary = he.run_humaneval(cfg, model, server.url, out, bench=BENCH)

    assert len(server.requests) == 4
    assert {q["benchmark"] for q in server.requests} == {BENCH}
    assert {q["body"]["max_tokens"] for q in server.requests} == {77}
    assert summary["benchmark"] == BENCH and summary["n_tasks"] == 4
    assert summary["pass@1"] == {p: 1.0 for p in he.PROTOCOLS}
    done = json.loads((out / "done.json").read_text())
    assert done["benchmark"] == BENCH and done["tool"]["evalplus_dataset"] == "mbpp"
    # A rerun has nothing left to request.
    he.run_humaneval(cfg, model, server.url, out, bench=BENCH)
    assert len(server.requests) == 4
