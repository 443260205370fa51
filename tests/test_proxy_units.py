"""The proxy's parts on their own: stream reassembly, redaction, group commit, the log-backed cache,
and the command line's handling of bad arguments."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_proxy_support import REPO

from harness.io import read_jsonl
from harness.proxy.cache import ResponseCache
from harness.proxy.records import StreamAssembler, build_record, public_url, redact_body, redact_query
from harness.proxy.server import _next_event, _replay_events
from harness.proxy.writer import GroupCommitWriter, LogWriteError

pytestmark = pytest.mark.timeout(60)


def chunk(delta: dict, finish: str | None = None, **extra: object) -> str:
    return json.dumps({"id": "c1", "created": 1, "model": "m", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


def test_stream_assembler_rebuilds_a_split_reasoning_stream() -> None:
    asm = StreamAssembler("/v1/chat/completions", started=0.0)
    for payload in [chunk({"role": "assistant", "content": None}), chunk({"reasoning_content": "Two is "}),
                    chunk({"reasoning_content": "prime."}), chunk({"content": "The answer"}), chunk({"content": " is 2."}),
                    chunk({}, "stop", timings={"predicted_n": 5}, usage={"completion_tokens": 5}), "[DONE]"]:
        asm.feed(payload)
    assert asm.done and asm.n_chunks == 6 and asm.ttft_s is not None
    resp = asm.response()
    assert resp["choices"][0]["message"] == {"role": "assistant", "content": "The answer is 2.",
                                             "reasoning_content": "Two is prime."}
    rec = build_record(record_id="x", ts_start="t", started=0.0, model="m", benchmark=None, method="POST",
                       path="/v1/chat/completions", query="", upstream=None, status=200, request={"stream": True},
                       request_hash="h", response=resp, stream=True, cache_hit=False, error=None)
    # reasoning comes from reasoning_content when the server split it (DESIGN §3)
    assert (rec["reasoning"], rec["answer"], rec["think_closed"]) == ("Two is prime.", "The answer is 2.", True)
    assert rec["timings"] == {"predicted_n": 5} and rec["finish_reason"] == "stop"
    # and a cache replay of that record streams the same text back
    replay = StreamAssembler("/v1/chat/completions", started=0.0)
    for event in _replay_events("/v1/chat/completions", resp):
        replay.feed(event.decode()[len("data: "):].strip())
    assert replay.done and replay.response()["choices"] == resp["choices"]


def test_unclosed_think_block_is_recorded_as_not_closed() -> None:
    resp = {"choices": [{"index": 0, "message": {"content": "<think>still going"}, "finish_reason": "length"}]}
    rec = build_record(record_id="x", ts_start="t", started=0.0, model="m", benchmark=None, method="POST",
                       path="/v1/chat/completions", query="", upstream=None, status=200, request={}, request_hash="h",
                       response=resp, stream=False, cache_hit=False, error=None)
    assert rec["think_closed"] is False and rec["answer"] == "" and rec["reasoning"] == "still going"


def test_sse_framing_lf_and_crlf() -> None:
    assert _next_event(b"data: a\n\ndata: b") == (b"data: a\n\n", b"data: b")
    assert _next_event(b"data: a\r\n\r\ndata: b\n\n") == (b"data: a\r\n\r\n", b"data: b\n\n")
    assert _next_event(b"data: partial") == (None, b"data: partial")


def test_redaction() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "api_key": "s3", "nested": {"Authorization": "Bearer s3"}}
    out = redact_body(body)
    assert "s3" not in json.dumps(out) and out["messages"] == body["messages"]
    plain = {"messages": [], "max_tokens": 5}
    assert redact_body(plain) is plain  # no copy when nothing needs hiding
    assert "s3" not in redact_query("api_key=s3&x=1") and "x=1" in redact_query("api_key=s3&x=1")
    assert public_url("http://u:s3@host:8080/v1?token=s3") == "http://host:8080/v1?token=%5Bredacted%5D"


def test_group_commit_batches_fsyncs_and_keeps_every_line_whole(tmp_path: Path) -> None:
    async def go() -> GroupCommitWriter:
        w = GroupCommitWriter(tmp_path)
        w.start()
        results = await asyncio.gather(*(w.append("m" if i % 3 else "n", {"i": i, "pad": "x" * (i % 50)})
                                         for i in range(300)))
        for (path, offset, length), i in zip(results, range(300), strict=True):  # offsets point at each record's line
            with open(path, "rb") as fh:
                fh.seek(offset)
                assert json.loads(fh.read(length))["i"] == i
        await w.close()
        return w

    w = asyncio.run(go())
    assert w.records_written == 300
    assert w.commits < 300 / 10, "concurrent appends share fsyncs"
    m, sm = read_jsonl(tmp_path / "m.jsonl")
    n, sn = read_jsonl(tmp_path / "n.jsonl")
    assert sm.skipped == sn.skipped == 0 and len(m) + len(n) == 300
    assert sorted(r["i"] for r in m + n) == list(range(300))


def test_writer_starts_on_a_fresh_line_after_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"torn": ')

    async def go() -> None:
        w = GroupCommitWriter(tmp_path)
        w.start()
        await w.append("m", {"b": 2})
        await w.close()

    asyncio.run(go())
    recs, stats = read_jsonl(path)
    assert recs == [{"a": 1}, {"b": 2}] and stats.bad_lines == [2]


def test_write_failure_fails_every_waiter_and_reports(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").symlink_to("/dev/full")
    fatal: list[BaseException] = []

    async def go() -> list[object]:
        w = GroupCommitWriter(tmp_path, on_fatal=fatal.append)
        w.start()
        out = await asyncio.gather(*(w.append("m", {"i": i}) for i in range(5)), return_exceptions=True)
        with pytest.raises(LogWriteError):
            await w.append("m", {"late": True})
        await w.close()
        return out

    out = asyncio.run(go())
    assert all(isinstance(o, LogWriteError) for o in out) and len(fatal) == 1


def test_cache_index_from_logs_skips_torn_lines_and_non_cacheable(tmp_path: Path) -> None:
    good = {"id": "a", "status": 200, "error": None, "method": "POST", "path": "/v1/chat/completions",
            "request_hash": "h1", "content": "hello", "response": {"choices": []}}
    failed = {**good, "id": "b", "request_hash": "h2", "status": 504, "error": {"type": "upstream_timeout"}}
    newer = {**good, "id": "c", "content": "hello again"}
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in (good, failed, newer)) + '\n{"id": "torn')
    cache = ResponseCache("readwrite")
    cache.load(tmp_path, ["m"])
    assert len(cache) == 1 and cache.read_stats[0].bad_lines == [4]
    assert cache.get("m", "h1")["id"] == "c"  # the latest successful record wins
    assert cache.get("m", "h2") is None and cache.get("other", "h1") is None
    off = ResponseCache("off")
    off.load(tmp_path, ["m"])
    assert off.get("m", "h1") is None


def _harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "proxy", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["--upstream", "nourl", "--log-dir", "x"], "NAME=URL"),
    (["--upstream", "_bad=http://h", "--log-dir", "x"], "NAME"),
    (["--upstream", "a=ftp://h", "--log-dir", "x"], "http://"),
    (["--upstream", "a=http://h", "--upstream", "a=http://h/", "--log-dir", "x"], "twice"),
    (["--upstream", "a=http://h", "--log-dir", "x", "--listen", "nohost"], "HOST:PORT"),
])
def test_bad_arguments_exit_2_with_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    res = _harness(*args)
    assert res.returncode == 2 and message in res.stderr


def test_busy_port_exits_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = _harness("--upstream", "a=http://127.0.0.1:9", "--log-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert res.returncode == 2 and "cannot listen" in res.stderr
