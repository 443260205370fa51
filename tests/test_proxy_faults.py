"""The proxy under load and failure, against a fake upstream (tests/fakeupstream.py) whose
answers are a pure function of the request, so every record can be checked against what it must
hold: concurrency, kill -9, resume from the cache, bad input, fail-closed, secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest
from fakeupstream import answer_for, content_for
from test_proxy_support import (
    PY,
    RECORD_FIELDS,
    Reply,
    arequest,
    by_id,
    fake_upstream,
    files_containing,
    proxy,
    records,
    request,
    start_proxy,
    start_ready,
)

from harness.hashing import request_hash
from harness.io import JsonlReadStats, iter_jsonl

pytestmark = pytest.mark.timeout(120)


def body(i: int, *, stream: bool = False, tag: str = "q", **extra: object) -> dict:
    return {"messages": [{"role": "system", "content": "Think first."}, {"role": "user", "content": f"{tag} {i}"}],
            "seed": 1000 + i, "temperature": 0.6, "max_tokens": 64, "stream": stream, **extra}


def check_fake_record(rec: dict, sent: dict) -> None:
    reasoning, answer = answer_for(sent)
    assert RECORD_FIELDS <= set(rec)
    assert rec["status"] == 200 and rec["error"] is None
    assert rec["request"] == sent and rec["request_hash"] == request_hash(sent)
    assert rec["content"] == content_for(sent)
    assert rec["reasoning"] == reasoning and rec["answer"] == answer and rec["think_closed"] is True


def test_64_concurrent_streams_all_answered_and_recorded(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    # 64 chunks 2 ms apart: the 64 streams really are in flight together
    with fake_upstream(tmp_path / "up", "--chunks", "64") as up, proxy(tmp_path, {"m": up.url}, logs) as px:
        async def go() -> list[Reply]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                return await asyncio.gather(*(
                    arequest(s, "POST", f"{px.url}/m/v1/chat/completions", body(i, stream=True, fake={"chunk_delay_ms": 2}),
                             headers={"X-Harness-Benchmark": "aime25"})
                    for i in range(64)))

        replies = asyncio.run(go())
        upstream_saw = request("GET", f"{up.url}/stats").json["last_headers"]
        assert px.stop() == 0  # SIGTERM: a clean exit
    assert "X-Harness-Benchmark" not in upstream_saw  # ours, not forwarded
    sent = [body(i, stream=True, fake={"chunk_delay_ms": 2}) for i in range(64)]
    for reply, b in zip(replies, sent, strict=True):
        assert reply.status == 200 and reply.done
        assert reply.content == content_for(b)  # each client got its own stream, whole
        assert len(reply.events) == 65  # 64 content chunks + the final one, forwarded one by one
    recs, stats = records(logs, "m")
    assert stats.skipped == 0 and len(recs) == 64  # every line is whole JSON: nothing interleaved
    ids = by_id(recs)
    for reply, b in zip(replies, sent, strict=True):
        rec = ids[reply.headers["X-Harness-Record-Id"]]
        check_fake_record(rec, b)
        assert rec["stream"] is True and rec["benchmark"] == "aime25" and rec["n_chunks"] == 65


def test_kill_9_under_load_loses_no_received_response(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "up", "--delay-ms", "5", "--chunks", "16") as up:
        px = start_proxy(tmp_path, {"m": up.url}, logs)
        received: list[tuple[Reply, dict]] = []
        counter = iter(range(100_000))

        async def client(stop_at: float) -> None:
            async with aiohttp.ClientSession() as s:
                while time.monotonic() < stop_at:
                    i = next(counter)
                    b = body(i, stream=i % 2 == 0, tag="kill")
                    try:
                        reply = await arequest(s, "POST", f"{px.url}/m/v1/chat/completions", b)
                    except (TimeoutError, aiohttp.ClientError):
                        return  # the proxy is gone
                    received.append((reply, b))

        async def load_then_kill() -> None:
            stop_at = time.monotonic() + 30
            tasks = [asyncio.create_task(client(stop_at)) for _ in range(24)]
            await asyncio.sleep(1.5)
            os.kill(px.popen.pid, signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*tasks), 30)

        asyncio.run(load_then_kill())
        px.popen.wait()
        complete = [(r, b) for r, b in received if r.complete]
        assert len(complete) > 50, "the load ran long enough to matter"
        stats = JsonlReadStats(str(logs / "m.jsonl"))
        ids = by_id(list(iter_jsonl(logs / "m.jsonl", stats)))
        for reply, b in complete:
            rec = ids.get(reply.headers["X-Harness-Record-Id"])
            assert rec is not None, "a response the client fully received has no record"
            check_fake_record(rec, b)
        assert stats.skipped <= 1  # at most the one line torn by the kill

        # A restarted proxy reads the same logs (a torn line is skipped) and appends cleanly after it.
        n_before = stats.records
        with proxy(tmp_path / "again", {"m": up.url}, logs) as px2:
            fresh = request("POST", f"{px2.url}/m/v1/chat/completions", body(10**6, tag="after"))
            replay = request("POST", f"{px2.url}/m/v1/chat/completions", complete[0][1])
        assert fresh.status == 200 and replay.headers.get("X-Harness-Cache") == "hit"
        recs, stats2 = records(logs, "m")
        assert stats2.skipped == stats.skipped and len(recs) == n_before + 2
        check_fake_record(by_id(recs)[fresh.headers["X-Harness-Record-Id"]], body(10**6, tag="after"))


def test_second_run_is_served_from_the_logs_with_full_reasoning(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    work = [body(i, stream=i % 2 == 1, tag="resume") for i in range(10)]
    with fake_upstream(tmp_path / "up") as up:
        with proxy(tmp_path / "run1", {"m": up.url}, logs, "--cache-mode", "readwrite") as px:
            first = [request("POST", f"{px.url}/m/v1/chat/completions", b) for b in work]
        upstream_after_first = request("GET", f"{up.url}/stats").json["completions"]
        assert upstream_after_first == 10
        with proxy(tmp_path / "run2", {"m": up.url}, logs, "--cache-mode", "readwrite") as px:
            second = [request("POST", f"{px.url}/m/v1/chat/completions", b) for b in work]
        assert request("GET", f"{up.url}/stats").json["completions"] == upstream_after_first  # zero upstream requests
        # `off` really bypasses it; `read` uses it but adds nothing
        with proxy(tmp_path / "run3", {"m": up.url}, logs, "--cache-mode", "off") as px:
            off = request("POST", f"{px.url}/m/v1/chat/completions", work[0])
        with proxy(tmp_path / "run4", {"m": up.url}, logs, "--cache-mode", "read") as px:
            read_hit = request("POST", f"{px.url}/m/v1/chat/completions", work[1])
            new = body(99, tag="resume")
            read_miss1 = request("POST", f"{px.url}/m/v1/chat/completions", new)
            read_miss2 = request("POST", f"{px.url}/m/v1/chat/completions", new)
        assert request("GET", f"{up.url}/stats").json["completions"] == upstream_after_first + 3
    assert off.headers.get("X-Harness-Cache") is None and read_hit.headers.get("X-Harness-Cache") == "hit"
    assert read_miss1.headers.get("X-Harness-Cache") is None and read_miss2.headers.get("X-Harness-Cache") is None
    recs, _ = records(logs, "m")
    ids = by_id(recs)
    for a, b, sent in zip(first, second, work, strict=True):
        assert b.headers.get("X-Harness-Cache") == "hit"
        if sent["stream"]:
            assert a.done and b.done and a.content == b.content == content_for(sent)
        else:
            assert a.json["choices"] == b.json["choices"]
        rec = ids[b.headers["X-Harness-Record-Id"]]
        check_fake_record(rec, sent)
        assert rec["cache_hit"] is True and rec["stream"] is sent["stream"]
        assert rec["cache_source"] == a.headers["X-Harness-Record-Id"]


def test_bad_input_gets_a_json_error_and_a_record(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    url = "/m/v1/chat/completions"
    with fake_upstream(tmp_path / "up", "--chunks", "8") as up, \
            proxy(tmp_path, {"m": up.url}, logs, "--max-body-bytes", "4096") as px:
        cases = {
            "not_json": request("POST", px.url + url, data=b"{this is not json"),
            "too_large": request("POST", px.url + url, body(1, tag="x" * 5000)),
            "unknown": request("POST", px.url + "/nobody/v1/chat/completions", body(2)),
            "malformed": request("POST", px.url + url, body(3, fake={"mode": "malformed"})),
            "upstream_500": request("POST", px.url + url, body(4, fake={"mode": "error500"})),
            "half_closed": request("POST", px.url + url, body(5, stream=True, fake={"mode": "halfclose"})),
            "reset": request("POST", px.url + url, body(6, stream=True, fake={"mode": "reset"})),
            "bad_chunk": request("POST", px.url + url, body(7, stream=True, fake={"mode": "badchunk"})),
            "error_event": request("POST", px.url + url, body(9, stream=True, fake={"mode": "errorevent"})),
        }
        still_fine = request("POST", px.url + url, body(8))
        assert px.popen.poll() is None  # none of it crashed the proxy
    expect = {  # case -> (HTTP status the client sees, error type)
        "not_json": (400, "invalid_json"), "too_large": (413, "request_too_large"), "unknown": (404, "unknown_upstream"),
        "malformed": (502, "malformed_upstream_response"), "upstream_500": (502, "upstream_error"),
        "half_closed": (200, "upstream_stream_incomplete"), "reset": (200, "upstream_unreachable"),
        "bad_chunk": (200, "malformed_upstream_response"), "error_event": (200, "upstream_stream_error"),
    }
    recs, stats = records(logs, "m")
    other, _ = records(logs, "_proxy")
    ids = by_id(recs + other)
    assert stats.skipped == 0 and len(recs) + len(other) == len(cases) + 1
    for case, reply in cases.items():
        status, kind = expect[case]
        assert reply.status == status, case
        if status == 200:  # a stream already under way: the error arrives as the last event, no [DONE]
            assert not reply.done and reply.events[-1]["error"]["type"] == kind, case
        else:
            assert reply.json["error"]["type"] == kind, case
        rec = ids[reply.headers["X-Harness-Record-Id"]]
        assert rec["error"]["type"] == kind and rec["status"] != 200, case
    assert ids[cases["unknown"].headers["X-Harness-Record-Id"]]["requested_upstream"] == "nobody"
    assert "this is not json" in ids[cases["not_json"].headers["X-Harness-Record-Id"]]["request_text"]
    partial = ids[cases["half_closed"].headers["X-Harness-Record-Id"]]
    assert partial["status"] == 502 and partial["content"] == cases["half_closed"].content != ""
    assert "fake mid-stream failure" in ids[cases["error_event"].headers["X-Harness-Record-Id"]]["error"]["message"]
    assert still_fine.status == 200


def test_unwritable_log_fails_closed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "m.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    with fake_upstream(tmp_path / "up") as up:
        px = start_proxy(tmp_path, {"m": up.url}, logs)
        try:
            reply = request("POST", f"{px.url}/m/v1/chat/completions", body(1))
            streamed = request("POST", f"{px.url}/m/v1/chat/completions", body(2, stream=True))
        except aiohttp.ClientError:
            streamed = None  # the proxy may already be gone for the second one
        code = px.popen.wait(timeout=20)
    assert reply.status == 500 and reply.json["error"]["type"] == "proxy_log_unwritable"
    assert streamed is None or not streamed.complete
    assert code == 3


def test_no_secret_reaches_any_file(tmp_path: Path) -> None:
    from harness.config import parse_config
    from harness.provenance import write_manifest

    secret = "sk-test-7f3a9c1e5b"
    logs = tmp_path / "run" / "proxy"
    with fake_upstream(tmp_path / "up", "--api-key", secret) as up, proxy(tmp_path, {"m": up.url}, logs) as px:
        auth = {"Authorization": f"Bearer {secret}", "api-key": secret, "X-Api-Key": secret}
        ok = request("POST", f"{px.url}/m/v1/chat/completions?api_key={secret}", body(1), headers=auth)
        ok_stream = request("POST", f"{px.url}/m/v1/chat/completions", body(2, stream=True, api_key=secret), headers=auth)
        denied = request("POST", f"{px.url}/m/v1/chat/completions", body(3))
        hit = request("POST", f"{px.url}/m/v1/chat/completions", body(1), headers=auth)
        cfg = parse_config({
            "study": "secret-test", "candidate": "a", "baseline": "b", "data_dir": str(tmp_path / "data"),
            "models": {"a": {"path": __file__, "file": "x.gguf"}, "b": {"path": __file__, "file": "x.gguf"}},
            "benchmarks": {"aime24": {"max_tokens": 8, "dataset": {"path": __file__}}},
        }, "inline")
        cfg_file = tmp_path / "run" / "config.yaml"
        cfg_file.write_text("study: secret-test\n")
        manifest = write_manifest(tmp_path / "run", cfg, cfg_file, {"a": up.url, "b": up.url.replace("//", f"//user:{secret}@")},
                                  extra={"note": "x", "token": secret}, api_key=secret)
    assert ok.status == 200 and ok_stream.done and hit.headers.get("X-Harness-Cache") == "hit"
    assert denied.status == 401  # the key really was needed, and forwarded
    assert manifest["servers"]["a"]["props"] is not None
    assert (logs / "m.jsonl").exists() and (tmp_path / "run" / "manifest.json").exists()
    # logs, manifest, sha cache, the proxy's own stderr: nothing anywhere holds the key
    assert files_containing(tmp_path, secret) == []


def test_client_leaving_mid_stream_is_recorded(tmp_path: Path) -> None:
    run = tmp_path / "run"  # --run alone: records go to RUN/proxy
    with fake_upstream(tmp_path / "up", "--chunks", "64") as up:
        px = start_ready([PY, "-m", "harness", "proxy", "--upstream", f"m={up.url}", "--run", str(run),
                          "--ready-file", str(tmp_path / "px.json")], tmp_path / "px.json", tmp_path / "px.log")
        try:
            async def leave_early() -> str:
                async with aiohttp.ClientSession() as s:
                    resp = await s.post(f"{px.url}/m/v1/chat/completions",
                                        json=body(1, stream=True, fake={"chunk_delay_ms": 20}))
                    await resp.content.readline()  # first bytes of the stream, then hang up
                    rid = resp.headers["X-Harness-Record-Id"]
                    resp.close()
                    return rid

            rid = asyncio.run(leave_early())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not records(run / "proxy", "m")[0]:
                time.sleep(0.05)
            after = request("POST", f"{px.url}/m/v1/chat/completions", body(1, stream=True))
        finally:
            px.stop()
    recs, _ = records(run / "proxy", "m")
    rec = by_id(recs)[rid]
    assert rec["status"] == 499 and rec["error"]["type"] == "client_disconnected"
    assert 0 < len(rec["content"]) < len(content_for(body(1)))  # what was sent before the client left
    # a disconnected exchange is not a cached answer: the retry goes upstream and completes
    assert after.complete and after.headers.get("X-Harness-Cache") is None and after.content == content_for(body(1))


def test_identical_requests_in_flight_go_upstream_once(tmp_path: Path) -> None:
    """A resumed eval sends again what a killed one left in flight: the second identical request waits
    for the first one's answer and replays it (one upstream generation), plain or streamed; a request
    whose first copy failed still goes upstream itself."""
    logs = tmp_path / "logs"
    slow = {"delay_ms": 400}
    with fake_upstream(tmp_path / "up") as up, proxy(tmp_path, {"m": up.url}, logs, "--cache-mode", "readwrite") as px:
        async def go(sent: list[dict]) -> list[Reply]:
            async with aiohttp.ClientSession() as s:
                return await asyncio.gather(*(arequest(s, "POST", f"{px.url}/m/v1/chat/completions", b) for b in sent))

        same = [body(1, fake=slow), body(1, fake=slow), body(2, stream=True, fake=slow), body(2, stream=True, fake=slow)]
        replies = asyncio.run(go(same))
        assert request("GET", f"{up.url}/stats").json["completions"] == 2
        failing = [body(3, fake={"mode": "error500", "delay_ms": 300})] * 2
        failed = asyncio.run(go(failing))
        assert request("GET", f"{up.url}/stats").json["completions"] == 4
    assert [r.status for r in replies] == [200] * 4 and [r.status for r in failed] == [502, 502]
    assert replies[0].json["choices"] == replies[1].json["choices"] and replies[2].content == replies[3].content
    hits = [r.headers.get("X-Harness-Cache") for r in replies]
    assert sorted(hits, key=str) == sorted([None, "hit", None, "hit"], key=str)
    recs, _ = records(logs, "m")
    assert sum(r["cache_hit"] for r in recs) == 2 and len(recs) == 6
