"""HumanEval+ runner against the real llama-server (SmolLM2-135M): end to end, repeats, resume.

Between the runner and the server sits a tiny prefix-stripping forwarder (the proxy's URL shape,
`{proxy_url}/{model}/v1/chat/completions`) that records every request it passes upstream, so the
resume test can prove that finished generations are never requested again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import ClientSession, web
from chat_server import ThreadedChatServer

from harness.config import parse_config
from harness.hashing import prompt_key, request_hash
from harness.runners.humaneval import PROTOCOLS, load_tasks, run_humaneval

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "data" / "humaneval_plus.jsonl"


class Forwarder(ThreadedChatServer):
    """POST /{model}/v1/chat/completions -> upstream /v1/chat/completions."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.fail_task_prefix: str | None = None  # requests whose prompt holds this text get HTTP 500

    async def reply(self, body: dict) -> web.Response:
        if self.fail_task_prefix and self.fail_task_prefix in json.dumps(body["messages"]):
            return web.Response(status=500, text='{"error": {"message": "injected failure"}}',
                                content_type="application/json")
        async with ClientSession() as s:
            async with s.post(f"{self.upstream}/v1/chat/completions", json=body) as r:
                return web.Response(status=r.status, body=await r.read(), content_type="application/json")


@pytest.fixture(scope="module")
def forwarder(llama_server: str) -> Forwarder:
    return Forwarder(llama_server).start()


BENCH = "humaneval_plus"


def _cfg(max_tokens: int = 128, samples_per_item: int = 2, limit: int | None = None, slots: int = 4):
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["server"]["slots"] = slots
    raw["benchmarks"] = {"humaneval_plus": {"max_tokens": max_tokens, "samples_per_item": samples_per_item,
                                            "limit": limit, "dataset": {"path": str(FIXTURE)}}}
    raw.pop("training_data", None)
    return parse_config(raw, "test")


class Abort(Exception):
    pass


def test_run_resume_and_rerun(forwarder: Forwarder, tmp_path: Path) -> None:
    cfg = _cfg()
    model = "distilled"
    out = tmp_path / "raw" / model / "humaneval_plus"
    tasks = load_tasks(FIXTURE)
    seeds = cfg.repeat_seeds(model, "humaneval_plus")
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    key_of = {}  # prompt_key(messages, seed) -> (task_id, repeat)

    def progress_abort(done: int, total: int, tokens: int) -> None:
        if done >= 3:
            raise Abort  # a kill mid-run: in-flight requests are lost

    start = len(forwarder.requests)
    with pytest.raises(Abort):
        run_humaneval(cfg, model, forwarder.url, out, BENCH, on_progress=progress_abort)
    first_lines = (out / "generations.jsonl").read_text().splitlines()
    first = [json.loads(x) for x in first_lines]
    assert 3 <= len(first) < len(tasks) * 2
    assert not (out / "done.json").exists()
    finished = {(r["task_id"], r["repeat"]) for r in first if r["error"] is None}

    seen: list[tuple[int, int, int]] = []
    time.sleep(1.0)  # a request cut off by the abort may still reach the forwarder's log
    mid = len(forwarder.requests)
    summary = run_humaneval(cfg, model, forwarder.url, out, BENCH, on_progress=lambda d, t, k: seen.append((d, t, k)))
    second = forwarder.requests[mid:]
    # What was finished is never requested again, and its records are untouched.
    from harness.runners.humaneval import build_messages

    for t in tasks:
        for r, s in enumerate(seeds):
            key_of[prompt_key(build_messages(t["prompt"]), s)] = (t["task_id"], r)
    again = [key_of[prompt_key(q["body"]["messages"], q["body"]["seed"])] for q in second]
    assert not set(again) & finished
    assert sorted(again) == sorted({(t["task_id"], r) for t in tasks for r in range(2)} - finished)
    lines = (out / "generations.jsonl").read_text().splitlines()
    assert lines[:len(first_lines)] == first_lines
    assert seen[0][0] == len(finished) and seen[-1][:2] == (len(tasks) * 2, len(tasks) * 2)

    # Request shape: header, URL model, every sampling field from the config, hash = record's.
    for q in forwarder.requests[start:]:
        assert q["benchmark"] == "humaneval_plus" and q["model"] == model
        body = q["body"]
        assert body["max_tokens"] == 128 and body["stream"] is False and body["model"] == model
        for k, v in cfg.sampling.request_fields(body["seed"]).items():
            assert body[k] == v
    records = [json.loads(x) for x in lines]
    hashes = {request_hash(q["body"]) for q in forwarder.requests[start:]}
    assert {r["request_hash"] for r in records} <= hashes
    assert all(r["schema_version"] == 1 and r["usage"]["completion_tokens"] > 0 for r in records)

    done = json.loads((out / "done.json").read_text())
    for p in PROTOCOLS:
        samples = [json.loads(x) for x in (out / f"samples_{p}.jsonl").read_text().splitlines()]
        assert [s["task_id"] for s in samples] == [t["task_id"] for t in tasks for _ in seeds]
        res = json.loads((out / f"samples_{p}_eval_results.json").read_text())
        assert set(res["eval"]) == {t["task_id"] for t in tasks}
        assert all(len(v) == 2 for v in res["eval"].values())
        assert 0.0 <= done["protocols"][p]["plus_pass@1"] <= 1.0
        assert summary["pass@1"][p] == done["protocols"][p]["plus_pass@1"]
        assert done["protocols"][p]["sandbox"]["network"] == "netns"
    assert done["counts"]["generations"] == len(tasks) * 2

    # A third run has nothing left to request and rewrites nothing it generated.
    before = len(forwarder.requests)
    samples_before = (out / "samples_as_recorded.jsonl").read_text()
    run_humaneval(cfg, model, forwarder.url, out, BENCH)
    assert len(forwarder.requests) == before
    assert (out / "generations.jsonl").read_text().splitlines() == lines
    assert (out / "samples_as_recorded.jsonl").read_text() == samples_before


def test_length_cutoff_and_dead_upstream(forwarder: Forwarder, tmp_path: Path) -> None:
    """finish_reason=length is counted and scored as no answer; an unreachable server gives error
    records after bounded retries (no infinite loop), and the run still completes and scores."""
    cfg = _cfg(max_tokens=4, samples_per_item=1, limit=2)
    out = tmp_path / "len"
    s = run_humaneval(cfg, "base", forwarder.url, out, BENCH)
    assert s["counts"]["finish_length"] == 2 and s["n_tasks"] == 2
    done = json.loads((out / "done.json").read_text())
    assert done["protocols"]["as_recorded"]["no_answer"] == 2
    assert s["pass@1"] == {"as_recorded": 0.0, "reasoning_stripped": 0.0}

    raw = cfg.model_dump()
    raw["request"] = {"timeout_s": 5, "max_retries": 2}
    dead_cfg = parse_config(raw, "test")
    from conftest import free_port

    from harness.runners.humaneval import IncompleteError

    out2 = tmp_path / "dead"
    with pytest.raises(IncompleteError, match="2 of 2 generations have no final answer"):
        run_humaneval(dead_cfg, "base", f"http://127.0.0.1:{free_port()}", out2, BENCH)
    recs = [json.loads(x) for x in (out2 / "generations.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["attempts"] == 2 for r in recs)
    assert all(set(r["error"]) >= {"type", "message", "retriable"} and r["error"]["retriable"] for r in recs)
    assert not (out2 / "done.json").exists() and not list(out2.glob("samples_*"))  # nothing scored


def test_one_failed_request_is_not_scored_and_a_rerun_completes_it(forwarder: Forwarder, tmp_path: Path) -> None:
    """An error is never a wrong answer: the pair stays unfinished and the rerun requests exactly that item."""
    raw = _cfg(max_tokens=48, samples_per_item=1, limit=3).model_dump()
    raw["request"] = {"timeout_s": 60, "max_retries": 2}
    cfg = parse_config(raw, "test")
    tasks = load_tasks(FIXTURE, 3)
    victim = tasks[1]
    out = tmp_path / "one-fails"
    marker = f"def {victim['entry_point']}("  # in this task's prompt only
    forwarder.fail_task_prefix = marker
    try:
        from harness.runners.humaneval import IncompleteError

        with pytest.raises(IncompleteError, match=victim["task_id"]):
            run_humaneval(cfg, "base", forwarder.url, out, BENCH)
    finally:
        forwarder.fail_task_prefix = None
    assert not (out / "done.json").exists() and not list(out.glob("samples_*"))
    recs = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    failed = [r for r in recs if r["error"] is not None]
    assert [r["task_id"] for r in failed] == [victim["task_id"]] and failed[0]["error"]["type"] == "http_500"

    before = len(forwarder.requests)
    summary = run_humaneval(cfg, "base", forwarder.url, out, BENCH)
    asked = [q["body"]["messages"][1]["content"] for q in forwarder.requests[before:]]
    assert len(asked) == 1 and marker in asked[0]
    done = json.loads((out / "done.json").read_text())
    assert done["counts"]["generations"] == 3 and done["counts"]["errors"] == 0
    assert summary["n_tasks"] == 3
