"""Helpers shared by the proxy tests: start the proxy / fake upstream as real subprocesses, talk HTTP.

(No tests here; the file name only keeps it among the proxy's own test files.)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from harness.io import JsonlReadStats, read_jsonl

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_ready(cmd: list[str], ready: Path, log: Path, timeout_s: float = 30.0) -> Proc:
    ready.unlink(missing_ok=True)
    with open(log, "ab") as fh:
        popen = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready.exists():
            return Proc(popen, json.loads(ready.read_text())["url"], log)
        if popen.poll() is not None:
            raise RuntimeError(f"{cmd[:4]} exited {popen.returncode}: {log.read_text()[-3000:]}")
        time.sleep(0.05)
    popen.kill()
    raise TimeoutError(f"{cmd[:4]} not ready after {timeout_s}s: {log.read_text()[-3000:]}")


@contextmanager
def fake_upstream(tmp: Path, *args: str) -> Iterator[Proc]:
    tmp.mkdir(parents=True, exist_ok=True)
    proc = start_ready([PY, str(REPO / "tests" / "fakeupstream.py"), "--ready-file", str(tmp / "fake.json"), *args],
                       tmp / "fake.json", tmp / "fake.log")
    try:
        yield proc
    finally:
        proc.stop()


def start_proxy(tmp: Path, upstreams: dict[str, str | list[str]], log_dir: Path, *args: str) -> Proc:
    """A list of URLs for a name makes replicas of that model."""
    tmp.mkdir(parents=True, exist_ok=True)
    cmd = [PY, "-m", "harness", "proxy", "--listen", "127.0.0.1:0", "--log-dir", str(log_dir),
           "--ready-file", str(tmp / "proxy.json")]
    for name, urls in upstreams.items():
        for url in [urls] if isinstance(urls, str) else urls:
            cmd += ["--upstream", f"{name}={url}"]
    return start_ready(cmd + list(args), tmp / "proxy.json", tmp / "proxy.log")


@contextmanager
def proxy(tmp: Path, upstreams: dict[str, str | list[str]], log_dir: Path, *args: str) -> Iterator[Proc]:
    proc = start_proxy(tmp, upstreams, log_dir, *args)
    try:
        yield proc
    finally:
        proc.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes
    json: Any = None
    # for SSE replies
    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    done: bool = False
    events: list[Any] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """The client got a whole, successful answer."""
        if self.status != 200:
            return False
        return self.done if self.headers.get("Content-Type", "").startswith("text/event-stream") else self.json is not None


def parse_sse(raw: bytes, reply: Reply) -> None:
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            reply.done = True
            continue
        obj = json.loads(payload)
        reply.events.append(obj)
        for ch in obj.get("choices") or []:
            delta = ch.get("delta") or {}
            reply.content += delta.get("content") or ""
            reply.reasoning += delta.get("reasoning_content") or ""
            if ch.get("finish_reason"):
                reply.finish_reason = ch["finish_reason"]


async def arequest(session: aiohttp.ClientSession, method: str, url: str, body: Any = None, *,
                   data: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    elif data is not None:
        kwargs["data"] = data
    async with session.request(method, url, **kwargs) as resp:
        raw = await resp.read()
        reply = Reply(resp.status, dict(resp.headers), raw)
    if reply.headers.get("Content-Type", "").startswith("text/event-stream"):
        parse_sse(raw, reply)
    else:
        try:
            reply.json = json.loads(raw) if raw else None
        except ValueError:
            reply.json = None
    return reply


def request(method: str, url: str, body: Any = None, **kw: Any) -> Reply:
    async def go() -> Reply:
        async with aiohttp.ClientSession() as s:
            return await arequest(s, method, url, body, **kw)

    return asyncio.run(go())


def records(log_dir: Path, name: str) -> tuple[list[dict[str, Any]], JsonlReadStats]:
    path = log_dir / f"{name}.jsonl"
    if not path.exists():
        return [], JsonlReadStats(str(path))
    return read_jsonl(path)


def by_id(recs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in recs}


# The fields DESIGN.md §3 requires in every record.
RECORD_FIELDS = {
    "schema_version", "id", "ts_start", "ts_end", "model", "benchmark", "path", "status", "request",
    "request_hash", "response", "content", "reasoning", "answer", "think_closed", "finish_reason", "usage",
    "timings", "latency_s", "cache_hit", "error", "method", "ttft_s",
}


def files_containing(root: Path, needle: str) -> list[Path]:
    hits = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            try:
                if needle.encode() in p.read_bytes():
                    hits.append(p)
            except OSError:
                pass
    return hits
