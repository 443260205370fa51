"""A small OpenAI-shaped fake of llama-server for the proxy's load and fault tests and its benchmark.

Not a model: the answer is a pure function of the request, so a test can derive what each record
must contain. Everything that needs a real model is tested against the real llama-server instead.

    python tests/fakeupstream.py --port 0 --ready-file up.json [--delay-ms 50] [--chunks 64]
        [--api-key KEY] [--slots N]

`--slots N` works on at most N completions at once and queues the rest, like llama-server's
`--parallel N`; `GET /slots` then reports them in llama-server's shape (`is_processing` per slot).

Per-request knobs go in the body as
`"fake": {"mode": ..., "delay_ms": ..., "chunks": ..., "chunk_delay_ms": ...}`.
Modes: `ok` (default), `malformed` (200 with a non-JSON body), `error500`, `halfclose` (the stream
ends cleanly without `[DONE]`), `errorevent` (an error event mid-stream, then the end), `reset` (the
connection is dropped mid-stream), `badchunk` (a non-JSON stream event).
`GET /stats` reports how many completions were requested.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

if __name__ == "__main__":  # run as a script from the tests/benchmarks: make the worktree's harness importable
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def answer_for(body: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, answer) the fake produces for a request: derived from its last message and seed."""
    messages = body.get("messages") or [{"content": body.get("prompt", "")}]
    last = str(messages[-1].get("content", "")) if isinstance(messages[-1], dict) else str(messages[-1])
    seed = body.get("seed")
    return f"Let me think about {last!r} with seed {seed}.", f"The answer to {last!r} is {len(last)}."


def content_for(body: dict[str, Any]) -> str:
    reasoning, answer = answer_for(body)
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def split_chunks(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text)))
    size, rem = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < rem else 0)
        out.append(text[pos:pos + step])
        pos += step
    return out


class FakeUpstream:
    def __init__(self, delay_ms: float = 0.0, chunks: int = 64, api_key: str | None = None,
                 slots: int = 0, fail_status: int = 0) -> None:
        self.fail_status = fail_status  # answer every completion with this HTTP status (a broken replica)
        self.delay_s = delay_ms / 1000.0
        self.slots = slots
        self.busy = 0
        self.sem = asyncio.Semaphore(slots) if slots else None
        self.chunks = chunks
        self.api_key = api_key
        self.completions = 0
        self.last_headers: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/stats", self.stats)
        if self.slots:
            app.router.add_get("/slots", lambda r: web.json_response(
                [{"id": i, "is_processing": i < self.busy} for i in range(self.slots)]))
        app.router.add_get("/health", lambda r: web.json_response({"status": "ok"}))
        app.router.add_get("/v1/models", lambda r: web.json_response(
            {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "harness-tests"}]}))
        app.router.add_get("/props", lambda r: web.json_response(
            {"build_info": "fake", "model_path": "/fake/model.gguf", "total_slots": 64}))
        return app

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"completions": self.completions, "last_headers": self.last_headers})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if self.sem is None:
            return await self._chat(request)
        async with self.sem:  # the rest wait here, as llama-server queues tasks beyond its slots
            self.busy += 1
            try:
                return await self._chat(request)
            finally:
                self.busy -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"code": 401, "message": "Invalid API Key",
                                                "type": "authentication_error"}}, status=401)
        body = await request.json()
        self.completions += 1
        self.last_headers = dict(request.headers)
        fake = body.get("fake") or {}
        mode = fake.get("mode", "ok")
        if self.fail_status:
            return web.json_response({"error": {"code": self.fail_status, "message": "fake broken replica",
                                                "type": "server_error"}}, status=self.fail_status)
        delay = fake.get("delay_ms", None)
        await asyncio.sleep(self.delay_s if delay is None else delay / 1000.0)
        if mode == "error500":
            return web.json_response({"error": {"code": 500, "message": "fake failure", "type": "server_error"}},
                                     status=500)
        if mode == "malformed":
            return web.Response(body=b"<html>not json</html>", content_type="application/json")
        content = content_for(body)
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": "fake-model",
                "system_fingerprint": "fake"}
        usage = {"prompt_tokens": 10, "completion_tokens": len(content.split()), "total_tokens": 10 + len(content.split())}
        timings = {"prompt_n": 10, "predicted_n": len(content.split()), "predicted_ms": 1.0}
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": usage, "timings": timings})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = split_chunks(content, int(fake.get("chunks", self.chunks)))
        chunk_delay = fake.get("chunk_delay_ms", 0) / 1000.0
        for i, piece in enumerate(pieces):
            if mode in ("halfclose", "reset", "badchunk", "errorevent") and i == len(pieces) // 2:
                if mode == "errorevent":  # what llama-server does when a generation fails mid-stream
                    await resp.write(b'data: {"error": {"code": 500, "message": "fake mid-stream failure"}}\n\n')
                    await resp.write_eof()
                    return resp
                if mode == "halfclose":
                    await resp.write_eof()
                    return resp
                if mode == "badchunk":
                    await resp.write(b"data: {not json\n\n")
                    continue
                request.transport.abort()  # type: ignore[union-attr]
                return resp
            obj = {**base, "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
        final = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage, "timings": timings}
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


async def _main(args: argparse.Namespace) -> None:
    fake = FakeUpstream(args.delay_ms, args.chunks, args.api_key, args.slots, args.fail_status)
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    if args.ready_file:
        from harness.io import atomic_write_json

        atomic_write_json(args.ready_file, {"url": f"http://127.0.0.1:{port}", "pid": os.getpid()})
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--api-key")
    ap.add_argument("--fail-status", type=int, default=0, help="answer every completion with this HTTP status")
    ap.add_argument("--slots", type=int, default=0, help="completions worked on at once (0 = no limit)")
    ap.add_argument("--ready-file", type=Path)
    args = ap.parse_args()
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
