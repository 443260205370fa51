"""The logging proxy: `http://HOST:PORT/<name>/<path>` -> upstream `<name>` at `<path>`.

Built on aiohttp (server and client in one event loop): it streams request and response bodies
without buffering, gives per-request control over when a response completes (needed to fail closed:
the record is fsynced before the last byte, or `[DONE]`, goes out), and is already a dependency of
lm-eval's API models.

Order of one exchange: read body (size-capped) -> parse JSON -> cache lookup -> forward -> build the
record -> await its group-commit fsync -> complete the response. Streams are forwarded event by event
as they arrive; only the terminating `data: [DONE]` is held back until the record is durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from harness.hashing import request_hash
from harness.io import atomic_write_json, utc_now
from harness.proxy.cache import ResponseCache
from harness.proxy.records import (
    CACHEABLE_PATHS,
    CHAT_PATHS,
    GENERATION_PATHS,
    NATIVE_PATHS,
    StreamAssembler,
    build_record,
    error_body,
    is_generation_shaped,
    new_record_id,
)
from harness.proxy.replicas import ReplicaSet, health_loop
from harness.proxy.writer import GroupCommitWriter, LogWriteError
from harness.records import error_info

log = logging.getLogger("harness.proxy")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
PROXY_LOG = "_proxy"  # records of requests that name no configured upstream
BENCHMARK_HEADER = "X-Harness-Benchmark"
RECORD_HEADER = "X-Harness-Record-Id"
CACHE_HEADER = "X-Harness-Cache"
# Never forwarded either way (hop-by-hop, recomputed, or ours).
_DROP_REQUEST = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding", BENCHMARK_HEADER.lower(),
})
_DROP_RESPONSE = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "date", "server",
    "upgrade", "trailer",
})
EXIT_LOG_FAILURE = 3


@dataclass
class ProxyOptions:
    upstreams: Mapping[str, str | list[str]]  # name -> URL, or the URLs of its replicas
    log_dir: Path
    cache_mode: str = "readwrite"
    upstream_timeout_s: float = 7200.0
    max_body_bytes: int = 16 * 1024 * 1024
    host: str = "127.0.0.1"
    port: int = 0
    ready_file: Path | None = None
    health_interval_s: float = 2.0


@dataclass
class _Exchange:
    """What is known about one exchange before the upstream answers."""

    record_id: str
    ts_start: str
    started: float
    name: str
    method: str
    path: str
    query: str
    benchmark: str | None
    upstream: str | None = None
    replica: int | None = None  # index into the model's ReplicaSet, once one was picked
    tried: set[int] = field(default_factory=set)
    body: Any = None
    request_hash: str | None = None
    stream: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class ListenError(Exception):
    """The listen address is unusable (in use, not local, not permitted)."""


class _ClientGone(Exception):
    """The client closed its connection while we were still sending."""


class Proxy:
    def __init__(self, opts: ProxyOptions) -> None:
        for name in opts.upstreams:
            if not NAME_RE.match(name):
                raise ValueError(f"upstream name {name!r}: use letters, digits, '-' and '_' (not starting with '_')")
        self.opts = opts
        self.replica_sets = {n: ReplicaSet.from_urls(n, [u] if isinstance(u, str) else list(u))
                             for n, u in opts.upstreams.items()}
        for n, rs in self.replica_sets.items():
            if not rs.replicas:
                raise ValueError(f"upstream {n!r} has no URL")
        self.upstreams = {n: rs.replicas[0].url for n, rs in self.replica_sets.items()}
        # one URL per model as before; models with replicas list them all
        self.public_upstreams: dict[str, str | list[str]] = {
            n: rs.replicas[0].public if len(rs.replicas) == 1 else [r.public for r in rs.replicas]
            for n, rs in self.replica_sets.items()}
        self.health_task: asyncio.Task[None] | None = None
        self.cache = ResponseCache(opts.cache_mode)
        self.writer = GroupCommitWriter(Path(opts.log_dir), on_fatal=self._on_fatal)
        self.fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.url: str | None = None
        self.upstream_requests = 0
        # Cacheable requests on their way upstream, by (model, request hash): an identical request waits
        # for the first one's answer and replays it, so a resumed eval never generates twice what a
        # killed one left in flight.
        self.in_flight: dict[tuple[str, str], asyncio.Event] = {}

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> str:
        Path(self.opts.log_dir).mkdir(parents=True, exist_ok=True)
        self.cache.load(Path(self.opts.log_dir), list(self.upstreams))
        self.writer.start()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True),
            timeout=aiohttp.ClientTimeout(total=None),  # our own asyncio.timeout bounds each exchange
            auto_decompress=True,
        )
        self.health_task = asyncio.create_task(health_loop(self.session, list(self.replica_sets.values()),
                                                           self.opts.health_interval_s))
        app = web.Application(client_max_size=self.opts.max_body_bytes)
        app.router.add_get("/_proxy/health", self._health)
        app.router.add_route("*", "/{name}", self._handle)
        app.router.add_route("*", "/{name}/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.opts.host, self.opts.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            raise ListenError(f"cannot listen on {self.opts.host}:{self.opts.port}: {exc.strerror or exc}") from None
        sock = site._server.sockets[0]  # type: ignore[union-attr]  # the only way to learn port 0's pick
        host, port = sock.getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - a comparison, not a bind
        self.url = f"http://{shown}:{port}"
        if self.opts.ready_file:
            atomic_write_json(self.opts.ready_file, {"url": self.url, "pid": os.getpid()})
        return self.url

    async def close(self) -> None:
        if self.health_task is not None:
            self.health_task.cancel()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()
        await self.writer.close()

    def _on_fatal(self, exc: BaseException) -> None:
        self.fatal = exc
        # Give the handlers that were waiting on the failed commit a moment to send their 5xx.
        asyncio.get_running_loop().call_later(0.2, self.stopped.set)

    # --- handlers ----------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        status = 503 if self.fatal else 200
        return web.json_response({
            "status": "failed" if self.fatal else "ok",
            "pid": os.getpid(),
            "upstreams": self.public_upstreams,
            "cache_mode": self.cache.mode,
            "cache_entries": len(self.cache),
            "cache_hits": self.cache.hits,
            "records_written": self.writer.records_written,
            "commits": self.writer.commits,
            "upstream_requests": self.upstream_requests,
            "replicas": {n: [r.as_json() for r in rs.replicas] for n, rs in self.replica_sets.items()},
        }, status=status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        ex = _Exchange(
            record_id=new_record_id(), ts_start=utc_now(), started=time.monotonic(), name=name,
            method=request.method, path="/" + request.match_info.get("tail", ""), query=request.query_string,
            benchmark=request.headers.get(BENCHMARK_HEADER),
        )
        if self.fatal is not None:
            return web.json_response(error_body("proxy_log_unwritable", "the proxy cannot write its log and is stopping"),
                                     status=503)
        if name not in self.upstreams:
            known = ", ".join(sorted(self.upstreams))
            ex.name = PROXY_LOG
            ex.extra["requested_upstream"] = name
            return await self._reply_error(ex, 404, "unknown_upstream", f"no upstream named {name!r} (known: {known})")
        ex.upstream = self.replica_sets[name].replicas[0].public  # until a replica is picked
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._reply_error(ex, 413, "request_too_large",
                                           f"request body over the proxy limit of {self.opts.max_body_bytes} bytes")
        if raw:
            try:
                ex.body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                ex.extra["request_text"] = raw[:2000].decode("utf-8", "replace")
                return await self._reply_error(ex, 400, "invalid_json", f"request body is not JSON: {exc}")
            ex.request_hash = request_hash(ex.body)
            ex.stream = isinstance(ex.body, dict) and ex.body.get("stream") is True
        cacheable = ex.method == "POST" and ex.path in CACHEABLE_PATHS and ex.request_hash and self.cache.reads
        if not cacheable:
            return await self._forward(request, ex, raw)
        key = (name, ex.request_hash or "")
        while True:
            cached = self.cache.get(name, ex.request_hash or "")
            if cached is not None:
                return await self._replay(request, ex, cached)
            first = self.in_flight.get(key) if self.cache.writes else None
            if first is None:
                break
            await first.wait()  # then the cache has its answer, unless it failed: then this one goes upstream
        done = self.in_flight[key] = asyncio.Event()
        try:
            return await self._forward(request, ex, raw)
        finally:
            del self.in_flight[key]
            done.set()

    async def _forward(self, request: web.Request, ex: _Exchange, raw: bytes) -> web.StreamResponse:
        if ex.stream and ex.method == "POST" and ex.path in GENERATION_PATHS:
            return await self._forward_stream(request, ex, raw)
        return await self._forward_plain(request, ex, raw)

    # --- forwarding --------------------------------------------------------------------------------

    def _pick(self, ex: _Exchange) -> bool:
        """Choose the replica for the next attempt (False: every replica was tried)."""
        rs = self.replica_sets[ex.name]
        i = rs.pick(ex.tried)
        if i is None:
            return False
        ex.replica = i
        ex.tried.add(i)
        ex.upstream = rs.replicas[i].public
        return True

    def _failed_before_reply(self, ex: _Exchange, why: str, *, down: bool) -> bool:
        """Note a failed attempt that sent nothing to the client; True when another replica may take it."""
        rs = self.replica_sets[ex.name]
        if ex.replica is None:  # nothing was tried: nothing to note
            return False
        if down:
            rs.mark_down(ex.replica, why)
        else:
            rs.replicas[ex.replica].failures += 1
        if len(ex.tried) >= len(rs.replicas):
            return False  # the last attempt's failure is the record's own error
        # earlier attempts are listed in the record of the one that answered
        ex.extra.setdefault("failover", []).append({"upstream": ex.upstream, "error": why})
        return True

    def _upstream_url(self, ex: _Exchange) -> str:
        url = self.replica_sets[ex.name].replicas[ex.replica or 0].url + ex.path
        return f"{url}?{ex.query}" if ex.query else url

    @staticmethod
    def _forward_headers(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}

    async def _forward_plain(self, request: web.Request, ex: _Exchange, raw: bytes) -> web.StreamResponse:
        """Forward a buffered exchange; nothing reaches the client before the whole answer is in, so a
        connection failure or a 5xx from one replica is retried on the next (a timeout is not: the
        limit is for the whole exchange)."""
        if self.session is None:  # not `assert`: it must hold under python -O too
            raise RuntimeError("internal error: self.session is not set")
        while True:
            self._pick(ex)
            rep = self.replica_sets[ex.name].replicas[ex.replica]  # type: ignore[index]
            self.upstream_requests += 1
            rep.in_flight += 1
            try:
                async with asyncio.timeout(self.opts.upstream_timeout_s):
                    async with self.session.request(ex.method, self._upstream_url(ex), data=raw or None,
                                                    headers=self._forward_headers(request),
                                                    allow_redirects=False) as up:
                        data = await up.read()
                        status, headers = up.status, up.headers
            except TimeoutError:
                return await self._reply_error(
                    ex, 504, "upstream_timeout",
                    f"upstream gave no complete answer within {self.opts.upstream_timeout_s:g} s")
            except (aiohttp.ClientError, OSError) as exc:
                if self._failed_before_reply(ex, f"upstream failed: {_describe(exc)}", down=True):
                    continue
                return await self._reply_error(ex, 502, "upstream_unreachable", f"upstream failed: {_describe(exc)}")
            finally:
                rep.in_flight -= 1
            if status >= 500 and self._failed_before_reply(ex, f"upstream answered HTTP {status}", down=False):
                continue
            rep.served += 1
            return await self._finish_plain(ex, status, headers, data)

    async def _finish_plain(self, ex: _Exchange, status: int, headers: Any, data: bytes) -> web.StreamResponse:
        response = _parse_body(data, headers.get("Content-Type", ""))
        is_gen = ex.method == "POST" and ex.path in GENERATION_PATHS
        if status >= 500:
            return await self._reply_error(ex, 502, "upstream_error", f"upstream answered HTTP {status}",
                                           response=response, upstream_status=status)
        if status == 200 and is_gen and not is_generation_shaped(ex.path, response):
            return await self._reply_error(ex, 502, "malformed_upstream_response",
                                           "upstream answered 200 but the body is not a completion", response=response)
        error = None
        if status >= 400:
            msg = response.get("error", {}).get("message") if isinstance(response, dict) and isinstance(response.get("error"), dict) else None
            error = error_info("upstream_client_error", msg or f"upstream answered HTTP {status}",
                               status in (408, 429), upstream_status=status)
        rec = self._record(ex, status, response, error=error)
        try:
            path, offset, length = await self.writer.append(ex.name, rec)
        except LogWriteError as exc:
            return _log_failure_response(exc)
        self.cache.put(ex.name, rec, path, offset, length)
        out_headers = {k: v for k, v in headers.items() if k.lower() not in _DROP_RESPONSE}
        out_headers[RECORD_HEADER] = ex.record_id
        return web.Response(body=data, status=status, headers=out_headers)

    async def _forward_stream(self, request: web.Request, ex: _Exchange, raw: bytes) -> web.StreamResponse:
        """Forward a streamed generation. Until the first event goes to the client a failure (connection
        refused/reset, 5xx) is retried on another replica; after it, the stream ends with an error event
        and the record says which replica failed."""
        while True:
            self._pick(ex)
            rep = self.replica_sets[ex.name].replicas[ex.replica]  # type: ignore[index]
            rep.in_flight += 1
            try:
                result = await self._stream_once(request, ex, raw)
            finally:
                rep.in_flight -= 1
            if isinstance(result, _Retry):
                if self._failed_before_reply(ex, result.why, down=result.down):
                    continue
                if result.plain is not None:
                    return await self._finish_plain(ex, *result.plain)
                return await self._reply_error(ex, result.status, result.kind, result.why)
            rep.served += 1
            return result

    async def _stream_once(self, request: web.Request, ex: _Exchange, raw: bytes) -> web.StreamResponse | _Retry:
        if self.session is None:  # not `assert`: it must hold under python -O too
            raise RuntimeError("internal error: self.session is not set")
        self.upstream_requests += 1
        asm = StreamAssembler(ex.path, ex.started)
        resp: web.StreamResponse | None = None
        error: dict[str, Any] | None = None
        status = 200
        held: bytes = b""  # the terminating event, sent only after the record is durable
        plain: tuple[int, Any, bytes] | None = None  # a non-SSE answer (an upstream error, usually)

        ctype = "text/event-stream"

        async def send(chunk: bytes) -> None:
            # Headers go out with the first event, not before: until then a failing replica can
            # still be replaced without the client noticing.
            nonlocal resp
            try:
                if resp is None:
                    resp = web.StreamResponse(status=200, headers={
                        "Content-Type": ctype, "Cache-Control": "no-cache", RECORD_HEADER: ex.record_id})
                    await resp.prepare(request)
                await resp.write(chunk)
            except (ConnectionError, RuntimeError) as exc:
                raise _ClientGone(_describe(exc)) from None

        try:
            async with asyncio.timeout(self.opts.upstream_timeout_s):
                async with self.session.request(ex.method, self._upstream_url(ex), data=raw,
                                                headers=self._forward_headers(request), allow_redirects=False) as up:
                    ctype = up.headers.get("Content-Type", "")
                    if up.status != 200 or "text/event-stream" not in ctype:
                        plain = (up.status, up.headers, await up.read())
                    else:
                        buf = b""
                        async for chunk in up.content.iter_any():
                            buf += chunk
                            ready: list[bytes] = []  # complete events in this read: one write for all
                            while True:
                                event, buf = _next_event(buf)
                                if event is None:
                                    break
                                try:
                                    last = self._feed_event(asm, event)
                                except _MalformedStream:
                                    # the good events before it go out first, as they would have from
                                    # an earlier read: where the stream breaks must not depend on timing
                                    if ready:
                                        await send(b"".join(ready))
                                    raise
                                if last:
                                    held = event
                                else:
                                    ready.append(event)
                            if ready:
                                await send(b"".join(ready))
                        if buf.strip():  # a last event without its blank line
                            if self._feed_event(asm, buf):
                                held = buf
                            else:
                                await send(buf)
                        if not asm.done:
                            status, error = 502, error_body(
                                "upstream_stream_incomplete",
                                "upstream closed the stream before it finished (no [DONE] / stop)")["error"]
        except _ClientGone as exc:
            status, error = 499, {"type": "client_disconnected", "message": f"client went away mid-stream: {exc}"}
        except _MalformedStream as exc:
            status, error = 502, error_body("malformed_upstream_response",
                                            f"upstream sent a malformed stream event: {exc}")["error"]
        except TimeoutError:
            status, error = 504, error_body(
                "upstream_timeout", f"upstream gave no complete answer within {self.opts.upstream_timeout_s:g} s")["error"]
        except (aiohttp.ClientError, OSError) as exc:
            status, error = 502, error_body("upstream_unreachable", f"upstream failed: {_describe(exc)}")["error"]
        if plain is not None:
            if plain[0] >= 500:
                return _Retry(f"upstream answered HTTP {plain[0]}", down=False, plain=plain)
            return await self._finish_plain(ex, *plain)
        if resp is None and not held:  # failed before any byte went to the client: another replica may answer
            if error is None:  # not `assert`: it must hold under python -O too
                raise RuntimeError("internal error: error is not set")
            if error["type"] in ("upstream_unreachable", "upstream_stream_incomplete"):
                return _Retry(error["message"], down=True, status=status, kind=error["type"])
            return await self._reply_error(ex, status, error["type"], error["message"])
        if error is not None and error["type"] in ("upstream_unreachable", "upstream_stream_incomplete"):
            # the replica died mid-stream: this stream ends with the error; later requests go elsewhere
            self.replica_sets[ex.name].mark_down(ex.replica, error["message"])  # type: ignore[arg-type]
        if asm.meta.get("error") and (error is None or error["type"] == "upstream_stream_incomplete"):
            # llama-server reports failures mid-stream as a `data: {"error": ...}` event: keep its words
            status, error = 502, error_body("upstream_stream_error", json.dumps(asm.meta["error"])[:2000])["error"]
        rec = self._record(ex, status, asm.response(), error=error, ttft_s=asm.ttft_s, n_chunks=asm.n_chunks)
        try:
            path, offset, length = await self.writer.append(ex.name, rec)
        except LogWriteError as exc:
            error = error_body("proxy_log_unwritable", f"record could not be written: {exc}")["error"]
        else:
            self.cache.put(ex.name, rec, path, offset, length)
        if status == 499:
            return resp if resp is not None else web.Response(status=499)
        try:
            if error is not None:
                await send(_sse({"error": error}))
            elif held:
                await send(held)  # prepares the response if nothing else was sent
            if resp is not None:
                await resp.write_eof()
        except (_ClientGone, ConnectionError, RuntimeError):
            pass
        return resp if resp is not None else web.Response(status=status)

    def _feed_event(self, asm: StreamAssembler, event: bytes) -> bool:
        """Feed one SSE event to the assembler; True when it is the terminating `[DONE]` event."""
        terminal = False
        for line in event.decode("utf-8", "replace").splitlines():
            if not line.startswith("data:"):
                continue  # comments (pings), event:, id:
            payload = line[5:].strip()
            if not payload:
                continue
            try:
                asm.feed(payload)
            except ValueError as exc:
                raise _MalformedStream(f"{exc}: {payload[:200]!r}") from None
            if payload == "[DONE]":
                terminal = True
        return terminal

    # --- cache replay ------------------------------------------------------------------------------

    async def _replay(self, request: web.Request, ex: _Exchange, cached: dict[str, Any]) -> web.StreamResponse:
        response = cached["response"]
        ex.extra["cache_source"] = cached.get("id")
        rec = self._record(ex, 200, response, error=None, cache_hit=True)
        try:
            await self.writer.append(ex.name, rec)
        except LogWriteError as exc:
            return _log_failure_response(exc)
        headers = {RECORD_HEADER: ex.record_id, CACHE_HEADER: "hit"}
        if not ex.stream:
            return web.json_response(response, headers=headers, dumps=lambda o: json.dumps(o, ensure_ascii=False))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                       **headers})
        await resp.prepare(request)
        try:
            for event in _replay_events(ex.path, response):
                await resp.write(event)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return resp

    # --- records -----------------------------------------------------------------------------------

    def _record(self, ex: _Exchange, status: int, response: Any, *, error: dict[str, Any] | None,
                cache_hit: bool = False, ttft_s: float | None = None, n_chunks: int | None = None) -> dict[str, Any]:
        rec = build_record(
            record_id=ex.record_id, ts_start=ex.ts_start, started=ex.started, model=ex.name, benchmark=ex.benchmark,
            method=ex.method, path=ex.path, query=ex.query, upstream=ex.upstream, status=status, request=ex.body,
            request_hash=ex.request_hash, response=response, stream=ex.stream, cache_hit=cache_hit, error=error,
            ttft_s=ttft_s, n_chunks=n_chunks,
        )
        rec.update(ex.extra)
        return rec

    async def _reply_error(self, ex: _Exchange, status: int, kind: str, message: str, *,
                           response: Any = None, **extra: Any) -> web.StreamResponse:
        """A proxy-made JSON error, recorded before it is sent."""
        body = error_body(kind, message, **extra)
        if response is not None:
            body["error"]["upstream_body"] = response
        rec = self._record(ex, status, response, error=body["error"])
        try:
            await self.writer.append(ex.name, rec)
        except LogWriteError as exc:
            return _log_failure_response(exc)
        return web.json_response(body, status=status, headers={RECORD_HEADER: ex.record_id})


class _MalformedStream(Exception):
    pass


@dataclass
class _Retry:
    """An attempt that failed before any byte reached the client."""

    why: str
    down: bool  # the replica is unreachable (vs. it answered with a 5xx)
    status: int = 502
    kind: str = "upstream_unreachable"
    plain: tuple[int, Any, bytes] | None = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _log_failure_response(exc: BaseException) -> web.Response:
    return web.json_response(error_body("proxy_log_unwritable", f"record could not be written: {exc}"), status=500)


def _parse_body(data: bytes, content_type: str) -> Any:
    """Upstream body as JSON when it is JSON, else as text (e.g. /metrics)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return data.decode("utf-8", "replace")


def _next_event(buf: bytes) -> tuple[bytes | None, bytes]:
    """Split one complete SSE event (ending in a blank line) off the buffer."""
    i = buf.find(b"\n\n")
    end = i + 2
    if b"\r" in buf:  # CRLF framing is legal SSE, if unusual for llama-server
        j = buf.find(b"\r\n\r\n")
        if j >= 0 and (i < 0 or j < i):
            i, end = j, j + 4
    if i < 0:
        return None, buf
    return buf[:end], buf[end:]


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"


def _replay_events(path: str, response: dict[str, Any]) -> list[bytes]:
    """A cached (non-stream-shaped) response as the SSE events a streaming client expects."""
    if path in NATIVE_PATHS:  # not cached today; kept for completeness
        return [_sse({**response, "stop": True})]
    base = {k: response.get(k) for k in ("id", "created", "model", "system_fingerprint") if response.get(k) is not None}
    chat = path in CHAT_PATHS
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    events: list[bytes] = []
    final_choices = []
    for choice in response.get("choices") or []:
        idx = choice.get("index", 0)
        if chat:
            msg = choice.get("message") or {}
            events.append(_sse({**base, "choices": [{"index": idx, "delta": {"role": msg.get("role", "assistant"), "content": None},
                                                     "finish_reason": None}]}))
            if msg.get("reasoning_content"):
                events.append(_sse({**base, "choices": [{"index": idx, "delta": {"reasoning_content": msg["reasoning_content"]},
                                                         "finish_reason": None}]}))
            if msg.get("content"):
                events.append(_sse({**base, "choices": [{"index": idx, "delta": {"content": msg["content"]},
                                                         "finish_reason": None}]}))
            final_choices.append({"index": idx, "delta": {}, "finish_reason": choice.get("finish_reason")})
        else:
            if choice.get("text"):
                events.append(_sse({**base, "choices": [{"index": idx, "text": choice["text"], "finish_reason": None}]}))
            final_choices.append({"index": idx, "text": "", "finish_reason": choice.get("finish_reason")})
    final = {**base, "choices": final_choices}
    for key in ("usage", "timings"):
        if response.get(key) is not None:
            final[key] = response[key]
    events.append(_sse(final))
    events.append(b"data: [DONE]\n\n")
    return events


def run_proxy(opts: ProxyOptions) -> int:
    """Run the proxy in this process until stopped (blocking)."""
    return asyncio.run(serve(opts))


async def serve(opts: ProxyOptions) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or a log-write failure (exit 3)."""
    proxy = Proxy(opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, proxy.stopped.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        url = await proxy.start()
    except BaseException:
        await proxy.close()
        raise
    ups = ", ".join(f"{n}={u}" for n, u in proxy.public_upstreams.items())
    log.info("proxy listening on %s; upstreams %s; cache %s (%d entries); log dir %s",
             url, ups, opts.cache_mode, len(proxy.cache), opts.log_dir)
    try:
        await proxy.stopped.wait()
    finally:
        await proxy.close()
    if proxy.fatal is not None:
        log.error("stopped: the proxy log could not be written (%s)", proxy.fatal)
        return EXIT_LOG_FAILURE
    return 0
