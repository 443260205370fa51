"""The logging proxy against the real llama-server (SmolLM2-135M): plain, streaming, cache-hit,
error and timeout exchanges each leave one complete, correct record."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_proxy_support import RECORD_FIELDS, by_id, proxy, records, request

from harness import SCHEMA_VERSION
from harness.hashing import request_hash
from harness.reasoning import split_reasoning

pytestmark = pytest.mark.timeout(180)


def chat(seed: int, text: str = "Name one prime number.", **extra: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 24, "temperature": 0.6,
            "top_k": 20, "top_p": 0.95, "seed": seed, **extra}


def check_generation_record(rec: dict, body: dict, content: str, benchmark: str | None) -> None:
    assert RECORD_FIELDS <= set(rec), RECORD_FIELDS - set(rec)
    assert rec["schema_version"] == SCHEMA_VERSION
    assert rec["model"] == "smol" and rec["method"] == "POST" and rec["path"] == "/v1/chat/completions"
    assert rec["benchmark"] == benchmark
    assert rec["status"] == 200 and rec["error"] is None
    assert rec["request"] == body
    assert rec["request_hash"] == request_hash(body)
    assert rec["content"] == content
    split = split_reasoning(content)
    assert (rec["reasoning"], rec["answer"], rec["think_closed"]) == (split.reasoning, split.answer, split.think_closed)
    assert rec["finish_reason"] in ("stop", "length")
    assert rec["timings"]["predicted_n"] >= 1  # llama.cpp's own timings survive
    assert rec["ts_start"] <= rec["ts_end"] and rec["latency_s"] > 0


def test_plain_stream_and_cache_hit_records(llama_server: str, tmp_path: Path) -> None:
    logs = tmp_path / "proxy"
    with proxy(tmp_path, {"smol": llama_server}, logs, "--cache-mode", "readwrite") as px:
        base = f"{px.url}/smol"
        # plain
        body = chat(7)
        plain = request("POST", f"{base}/v1/chat/completions", body, headers={"X-Harness-Benchmark": "aime24"})
        assert plain.status == 200, plain.raw
        content = plain.json["choices"][0]["message"]["content"]
        assert content, "the model produced text"
        # streaming (another seed: a different request, so not a cache hit)
        sbody = chat(8, stream=True)
        streamed = request("POST", f"{base}/v1/chat/completions", sbody, headers={"X-Harness-Benchmark": "ifeval"})
        assert streamed.status == 200 and streamed.done and streamed.content
        assert len(streamed.events) > 2, "forwarded as a stream of chunks"
        # cache hits: the same plain request, then the same request streamed (stream is not part of the key)
        again = request("POST", f"{base}/v1/chat/completions", body, headers={"X-Harness-Benchmark": "aime24"})
        again_streamed = request("POST", f"{base}/v1/chat/completions", {**body, "stream": True})
        # non-generation endpoints pass through and are recorded too
        models = request("GET", f"{base}/v1/models")
        metrics = request("GET", f"{base}/metrics")
    assert again.status == 200 and again.headers.get("X-Harness-Cache") == "hit"
    assert again.json["choices"][0]["message"]["content"] == content
    assert again_streamed.done and again_streamed.content == content
    assert models.status == 200 and models.json["data"]
    assert metrics.status == 200 and b"llamacpp:" in metrics.raw

    recs, stats = records(logs, "smol")
    assert stats.skipped == 0 and len(recs) == 6
    ids = by_id(recs)
    r_plain = ids[plain.headers["X-Harness-Record-Id"]]
    check_generation_record(r_plain, body, content, "aime24")
    assert r_plain["response"] == plain.json and r_plain["cache_hit"] is False and r_plain["stream"] is False

    r_stream = ids[streamed.headers["X-Harness-Record-Id"]]
    check_generation_record(r_stream, sbody, streamed.content, "ifeval")
    assert r_stream["stream"] is True and r_stream["cache_hit"] is False
    assert r_stream["finish_reason"] == streamed.finish_reason
    assert 0 < r_stream["ttft_s"] <= r_stream["latency_s"]
    assert r_stream["n_chunks"] == len(streamed.events)

    for reply, sent in ((again, body), (again_streamed, {**body, "stream": True})):
        hit = ids[reply.headers["X-Harness-Record-Id"]]
        check_generation_record(hit, sent, content, "aime24" if reply is again else None)
        assert hit["cache_hit"] is True and hit["cache_source"] == r_plain["id"]
        assert hit["request_hash"] == r_plain["request_hash"]

    r_models = ids[models.headers["X-Harness-Record-Id"]]
    assert r_models["method"] == "GET" and r_models["path"] == "/v1/models" and r_models["response"] == models.json
    assert r_models["request"] is None and r_models["content"] is None
    r_metrics = ids[metrics.headers["X-Harness-Record-Id"]]
    assert isinstance(r_metrics["response"], str) and "llamacpp:" in r_metrics["response"]


def test_error_and_timeout_records(llama_server: str, tmp_path: Path) -> None:
    logs = tmp_path / "proxy"
    dead = "http://127.0.0.1:9"  # discard port: nothing listens, connection refused
    with proxy(tmp_path, {"smol": llama_server, "dead": dead}, logs, "--upstream-timeout", "1.5",
               "--cache-mode", "readwrite") as px:
        base = f"{px.url}/smol"
        bad = {"messages": "not a list", "max_tokens": 4}
        rejected = request("POST", f"{base}/v1/chat/completions", bad)
        # a generation far longer than 1.5 s (ignore_eos: it cannot stop early; 900 tokens fit a 1024-token slot)
        long = chat(3, max_tokens=900, ignore_eos=True)
        timed_out = request("POST", f"{base}/v1/chat/completions", long)
        long_stream = chat(4, max_tokens=900, ignore_eos=True, stream=True)
        timed_out_stream = request("POST", f"{base}/v1/chat/completions", long_stream)
        refused = request("POST", f"{px.url}/dead/v1/chat/completions", chat(5))
        # errors and timeouts are never cached: the same request goes upstream again
        timed_out_again = request("POST", f"{base}/v1/chat/completions", long)
        health = request("GET", f"{px.url}/_proxy/health")

    assert rejected.status == 400 and "array" in rejected.json["error"]["message"]
    assert timed_out.status == 504 and timed_out.json["error"]["type"] == "upstream_timeout"
    assert timed_out_again.status == 504
    assert timed_out_stream.status == 200 and not timed_out_stream.done
    assert timed_out_stream.events[-1]["error"]["type"] == "upstream_timeout"
    assert refused.status == 502 and refused.json["error"]["type"] == "upstream_unreachable"
    assert health.status == 200 and health.json["status"] == "ok"

    recs, stats = records(logs, "smol")
    assert stats.skipped == 0
    ids = by_id(recs)
    r = ids[rejected.headers["X-Harness-Record-Id"]]
    assert r["status"] == 400 and r["error"]["upstream_status"] == 400 and r["request"] == bad
    assert r["response"] == rejected.json and r["content"] is None
    r = ids[timed_out.headers["X-Harness-Record-Id"]]
    assert r["status"] == 504 and r["error"]["type"] == "upstream_timeout" and r["request"] == long
    assert r["request_hash"] == request_hash(long) and r["cache_hit"] is False
    assert 1.5 <= r["latency_s"] < 8
    r = ids[timed_out_stream.headers["X-Harness-Record-Id"]]
    assert r["status"] == 504 and r["error"]["type"] == "upstream_timeout" and r["stream"] is True
    # what did arrive before the deadline is kept, exactly as the client saw it
    assert r["content"] == timed_out_stream.content
    assert ids[timed_out_again.headers["X-Harness-Record-Id"]]["cache_hit"] is False
    dead_recs, _ = records(logs, "dead")
    assert len(dead_recs) == 1 and dead_recs[0]["status"] == 502 and dead_recs[0]["error"]["type"] == "upstream_unreachable"
    assert dead_recs[0]["request"] == chat(5)
