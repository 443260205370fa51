"""Replicas of one model behind the proxy (`--upstream NAME=URL` repeated), against real fake-upstream
processes: least-loaded routing, failover before the first byte, a replica dying mid-stream, the
cache across replica sets. Every record names the replica that answered in `upstream`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from fakeupstream import content_for
from test_proxy_support import Reply, arequest, by_id, fake_upstream, proxy, records, request

pytestmark = pytest.mark.timeout(120)


def body(i: int, *, stream: bool = False, **extra: object) -> dict:
    return {"messages": [{"role": "user", "content": f"replica question {i}"}], "seed": i, "temperature": 0.6,
            "max_tokens": 64, "stream": stream, **extra}


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fire(url: str, bodies: list[dict]) -> list[Reply]:
    async def go() -> list[Reply]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            return await asyncio.gather(*(arequest(s, "POST", f"{url}/m/v1/chat/completions", b) for b in bodies))

    return asyncio.run(go())


def test_requests_spread_over_replicas_by_load(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "a", "--slots", "4", "--delay-ms", "200") as a, \
            fake_upstream(tmp_path / "b", "--slots", "4", "--delay-ms", "200") as b, \
            proxy(tmp_path, {"m": [a.url, b.url]}, logs) as px:
        sent = [body(i) for i in range(16)]
        replies = fire(px.url, sent)
        served = {u: request("GET", f"{u}/stats").json["completions"] for u in (a.url, b.url)}
        health = request("GET", f"{px.url}/_proxy/health").json
    assert all(r.status == 200 for r in replies)
    # 16 at once over two equal replicas: least-in-flight routing splits them evenly
    assert served[a.url] == 8 and served[b.url] == 8, served
    recs, _ = records(logs, "m")
    assert Counter(r["upstream"] for r in recs) == {a.url: 8, b.url: 8}
    ids = by_id(recs)
    for reply, b_ in zip(replies, sent, strict=True):
        assert ids[reply.headers["X-Harness-Record-Id"]]["content"] == content_for(b_)
    assert [r["url"] for r in health["replicas"]["m"]] == [a.url, b.url]
    assert health["upstreams"]["m"] == [a.url, b.url]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_refused_replica_is_skipped_and_no_request_fails(tmp_path: Path, stream: bool) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "doomed") as doomed, fake_upstream(tmp_path / "live") as live, \
            proxy(tmp_path, {"m": [doomed.url, live.url]}, logs, "--health-interval", "600") as px:
        # the one health check at start saw both up; the next is 10 minutes away
        assert all(r["healthy"] for r in request("GET", f"{px.url}/_proxy/health").json["replicas"]["m"])
        os.kill(doomed.popen.pid, signal.SIGKILL)
        doomed.popen.wait()
        sent = [body(i, stream=stream) for i in range(12)]
        replies = fire(px.url, sent)
        health = request("GET", f"{px.url}/_proxy/health").json
    assert [r.status for r in replies] == [200] * 12 and all(r.complete for r in replies)
    recs, _ = records(logs, "m")
    assert len(recs) == 12 and all(r["error"] is None and r["upstream"] == live.url for r in recs)
    # the attempts that hit the dead replica first are written down with the record that answered
    failed_over = [r for r in recs if r.get("failover")]
    assert failed_over and all(f["upstream"] == doomed.url for r in failed_over for f in r["failover"])
    assert health["replicas"]["m"][0]["healthy"] is False and health["replicas"]["m"][0]["failures"] >= 1


def test_5xx_is_retried_on_another_replica(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "bad", "--fail-status", "500") as bad, fake_upstream(tmp_path / "good") as good, \
            proxy(tmp_path, {"m": [bad.url, good.url]}, logs) as px:
        replies = fire(px.url, [body(i, stream=i % 2 == 0) for i in range(8)])
        bad_seen = request("GET", f"{bad.url}/stats").json["completions"]
    assert all(r.status == 200 and r.complete for r in replies)
    assert bad_seen >= 1  # it was tried, and its 500s never reached a client
    recs, _ = records(logs, "m")
    assert all(r["upstream"] == good.url and r["error"] is None for r in recs)


def test_every_replica_failing_is_one_recorded_error(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "bad", "--fail-status", "503") as bad, \
            proxy(tmp_path, {"m": [bad.url, closed_port_url()]}, logs) as px:
        [reply] = fire(px.url, [body(1)])
    assert reply.status == 502
    [rec] = records(logs, "m")[0]
    assert rec["error"]["type"] in ("upstream_error", "upstream_unreachable") and len(rec["failover"]) == 1


def test_replica_dying_mid_stream_ends_that_stream_with_a_recorded_error(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "a") as a, fake_upstream(tmp_path / "b") as b, \
            proxy(tmp_path, {"m": [a.url, b.url]}, logs) as px:
        [reply] = fire(px.url, [body(1, stream=True, fake={"mode": "reset"})])
        tried = sum(request("GET", f"{u}/stats").json["completions"] for u in (a.url, b.url))
    # bytes had reached the client: no retry (it would duplicate text), the stream ends with an error event
    assert tried == 1
    assert reply.status == 200 and not reply.done and reply.content
    assert any("error" in e for e in reply.events)
    [rec] = records(logs, "m")[0]
    assert rec["error"]["type"] in ("upstream_unreachable", "upstream_stream_incomplete")
    assert rec["upstream"] in (a.url, b.url) and rec["status"] == 502


def test_killed_replica_under_load(tmp_path: Path) -> None:
    """kill -9 one of two replicas while streams are in flight: only streams that had already sent
    bytes from it may fail (recorded as errors); everything sent after the kill is answered."""
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "a") as a, fake_upstream(tmp_path / "b") as b, \
            proxy(tmp_path, {"m": [a.url, b.url]}, logs) as px:
        async def go() -> tuple[list[Reply], list[Reply]]:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
                first = [asyncio.create_task(arequest(s, "POST", f"{px.url}/m/v1/chat/completions",
                                                      body(i, stream=True, fake={"chunk_delay_ms": 20})))
                         for i in range(8)]
                await asyncio.sleep(0.4)
                os.kill(a.popen.pid, signal.SIGKILL)
                after = await asyncio.gather(*(arequest(s, "POST", f"{px.url}/m/v1/chat/completions",
                                                        body(100 + i, stream=i % 2 == 0)) for i in range(12)))
                return list(await asyncio.gather(*first)), list(after)

        first, after = asyncio.run(go())
    assert all(r.status == 200 and r.complete for r in after)
    assert any(r.complete for r in first)  # b's streams were untouched
    recs, _ = records(logs, "m")
    assert len(recs) == 20
    for r in recs:
        assert (r["error"] is None) == (r["status"] == 200)
        if r["error"] is not None:  # only streams cut by the kill, and they name the dead replica
            assert r["upstream"] == a.url
    assert sum(r.complete for r in first) == sum(1 for r in recs if r["request"]["seed"] < 100 and r["error"] is None)


def test_cache_does_not_depend_on_the_replica(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with fake_upstream(tmp_path / "a") as a, fake_upstream(tmp_path / "b") as b:
        with proxy(tmp_path / "p1", {"m": [a.url, b.url]}, logs) as px:
            first = fire(px.url, [body(i) for i in range(4)])
        # a different replica set (b alone) answers the same requests from the logs
        with proxy(tmp_path / "p2", {"m": b.url}, logs) as px:
            again = fire(px.url, [body(i) for i in range(4)])
        served_b = request("GET", f"{b.url}/stats").json["completions"]
        served_a = request("GET", f"{a.url}/stats").json["completions"]
    assert all(r.status == 200 for r in first + again)
    assert all(r.headers.get("X-Harness-Cache") == "hit" for r in again)
    assert served_a + served_b == 4
    assert [r.json["choices"] for r in again] == [r.json["choices"] for r in first]


def test_two_slot_limited_replicas_nearly_double_throughput() -> None:
    """benchmarks/replicas.py, fake part: 4 slots x 200 ms per replica at client concurrency 16;
    it exits 1 when two replicas give less than 1.8x one."""
    import subprocess
    import sys

    from test_proxy_support import REPO

    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "replicas.py"), "--quick", "--skip-demo"],
                         cwd=REPO, capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "two replicas / one" in out.stdout
