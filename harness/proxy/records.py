"""What the proxy writes: one record per HTTP exchange (DESIGN.md §3), built from plain data.

Kept free of aiohttp so the record rules (redaction, stream reassembly, reasoning split) are
testable on their own and shared by the live path and the cache-replay path.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from harness import SCHEMA_VERSION
from harness.io import utc_now
from harness.reasoning import split_reasoning
from harness.records import error_info

# Endpoints that produce a generation: their responses are split into content/reasoning/answer
# and, when successful, cached. Paths are the upstream paths (after the /<name> prefix).
CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
TEXT_PATHS = frozenset({"/v1/completions", "/completions"})
NATIVE_PATHS = frozenset({"/completion"})
GENERATION_PATHS = CHAT_PATHS | TEXT_PATHS | NATIVE_PATHS
# Only OpenAI-shaped generations can be replayed faithfully from a record.
CACHEABLE_PATHS = CHAT_PATHS | TEXT_PATHS

# Keys whose values are secrets wherever they appear (body, query string); compared lower-case.
SECRET_KEYS = frozenset({
    "authorization", "api_key", "api-key", "apikey", "x-api-key", "access_token", "token",
    "password", "secret", "hf_token", "openai_api_key",
})
REDACTED = "[redacted]"


def new_record_id() -> str:
    return uuid.uuid4().hex


def redact(obj: Any) -> Any:
    """A copy of a JSON value with every secret-named key's value replaced (request bodies rarely
    carry keys, but a record must never hold one)."""
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and k.lower() in SECRET_KEYS else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def _needs_redaction(obj: Any) -> bool:
    if isinstance(obj, dict):
        return any((isinstance(k, str) and k.lower() in SECRET_KEYS) or _needs_redaction(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_needs_redaction(v) for v in obj)
    return False


def redact_body(obj: Any) -> Any:
    """`redact` without copying the (often large) body when it holds no secret key."""
    return redact(obj) if _needs_redaction(obj) else obj


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in SECRET_KEYS else v) for k, v in pairs])


def public_url(url: str) -> str:
    """An upstream URL without user:password@ (credentials must not reach a log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, redact_query(parts.query), ""))


def extract_generation(path: str, response: Any) -> dict[str, Any]:
    """content / reasoning_content / finish_reason / usage / timings of a non-stream body.

    Missing pieces are None; a body of the wrong shape yields all-None (the caller decides whether
    that is a malformed response)."""
    out: dict[str, Any] = {"content": None, "reasoning_content": None, "finish_reason": None,
                           "usage": None, "timings": None}
    if not isinstance(response, dict):
        return out
    out["usage"] = response.get("usage")
    out["timings"] = response.get("timings")
    if path in NATIVE_PATHS:
        out["content"] = response.get("content")
        out["finish_reason"] = response.get("stop_type")
        return out
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return out
    choice = choices[0]
    out["finish_reason"] = choice.get("finish_reason")
    if path in CHAT_PATHS:
        message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
        out["content"] = message.get("content")
        out["reasoning_content"] = message.get("reasoning_content")
    else:
        out["content"] = choice.get("text")
    return out


def is_generation_shaped(path: str, response: Any) -> bool:
    """Whether a 200 body from a generation endpoint has the fields a generation must have."""
    if not isinstance(response, dict):
        return False
    if path in NATIVE_PATHS:
        return isinstance(response.get("content"), str)
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    if path in CHAT_PATHS:
        return isinstance(choices[0].get("message"), dict)
    return "text" in choices[0]


@dataclass
class StreamAssembler:
    """Rebuilds a non-stream-shaped response from SSE `data:` payloads as they pass through.

    The record keeps the reassembled body (same shape as a non-stream answer) so readers and the
    cache never need to know whether the exchange was streamed."""

    path: str
    started: float  # time.monotonic() at request start
    ttft_s: float | None = None
    n_chunks: int = 0
    done: bool = False  # saw `[DONE]` (OpenAI) or `stop: true` (native)
    meta: dict[str, Any] = field(default_factory=dict)
    choices: dict[int, dict[str, Any]] = field(default_factory=dict)
    native: dict[str, Any] = field(default_factory=dict)
    native_content: list[str] = field(default_factory=list)

    def feed(self, payload: str) -> None:
        """One SSE data payload. Raises ValueError on a payload that is not JSON."""
        if payload.strip() == "[DONE]":
            self.done = True
            return
        obj = json.loads(payload)
        if not isinstance(obj, dict):
            raise ValueError("stream chunk is not a JSON object")
        self.n_chunks += 1
        if self.path in NATIVE_PATHS:
            text = obj.get("content")
            if isinstance(text, str) and text:
                self._first_token()
                self.native_content.append(text)
            self.native.update({k: v for k, v in obj.items() if k != "content"})
            if obj.get("stop") is True:
                self.done = True
            return
        if "error" in obj and not obj.get("choices"):
            self.meta["error"] = obj["error"]
        for key in ("id", "created", "model", "system_fingerprint", "usage", "timings"):
            if obj.get(key) is not None:
                self.meta[key] = obj[key]
        for ch in obj.get("choices") or []:
            if not isinstance(ch, dict):
                continue
            slot = self.choices.setdefault(int(ch.get("index", 0) or 0), {"content": [], "reasoning": [], "role": None,
                                                                          "finish_reason": None})
            delta: dict[str, Any] = ch["delta"] if isinstance(ch.get("delta"), dict) else {}
            text = delta.get("content") if self.path in CHAT_PATHS else ch.get("text")
            reasoning = delta.get("reasoning_content")
            if isinstance(text, str) and text:
                self._first_token()
                slot["content"].append(text)
            if isinstance(reasoning, str) and reasoning:
                self._first_token()
                slot["reasoning"].append(reasoning)
            if delta.get("role"):
                slot["role"] = delta["role"]
            if ch.get("finish_reason") is not None:
                slot["finish_reason"] = ch["finish_reason"]

    def _first_token(self) -> None:
        if self.ttft_s is None:
            self.ttft_s = time.monotonic() - self.started

    def response(self) -> dict[str, Any]:
        if self.path in NATIVE_PATHS:
            return {**self.native, "content": "".join(self.native_content)}
        choices = []
        for idx in sorted(self.choices):
            slot = self.choices[idx]
            content = "".join(slot["content"])
            if self.path in CHAT_PATHS:
                message: dict[str, Any] = {"role": slot["role"] or "assistant", "content": content}
                if slot["reasoning"]:
                    message["reasoning_content"] = "".join(slot["reasoning"])
                choices.append({"index": idx, "message": message, "finish_reason": slot["finish_reason"]})
            else:
                choices.append({"index": idx, "text": content, "finish_reason": slot["finish_reason"]})
        body: dict[str, Any] = {
            "id": self.meta.get("id"),
            "object": "chat.completion" if self.path in CHAT_PATHS else "text_completion",
            "created": self.meta.get("created"),
            "model": self.meta.get("model"),
            "choices": choices,
        }
        for key in ("system_fingerprint", "usage", "timings"):
            if key in self.meta:
                body[key] = self.meta[key]
        return body


def build_record(
    *,
    record_id: str,
    ts_start: str,
    started: float,
    model: str,
    benchmark: str | None,
    method: str,
    path: str,
    query: str,
    upstream: str | None,
    status: int,
    request: Any,
    request_hash: str | None,
    response: Any,
    stream: bool,
    cache_hit: bool,
    error: dict[str, Any] | None,
    ttft_s: float | None = None,
    n_chunks: int | None = None,
) -> dict[str, Any]:
    """The record of one exchange. `response` is the parsed (or reassembled) upstream body."""
    # A generation's text is split even on an error status when it came from a stream that broke
    # off: the partial text is what the client saw, and the error field says it is partial.
    gen = extract_generation(path, response) if path in GENERATION_PATHS else None
    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": record_id,
        "ts_start": ts_start,
        "ts_end": utc_now(),
        "model": model,
        "benchmark": benchmark,
        "method": method,
        "path": path,
        "query": redact_query(query) or None,
        "upstream": upstream,
        "status": status,
        "stream": stream,
        "request": redact_body(request),
        "request_hash": request_hash,
        "response": response,
        "content": None,
        "reasoning": None,
        "reasoning_content": None,
        "answer": None,
        "think_closed": None,
        "finish_reason": None,
        "usage": None,
        "timings": None,
        "latency_s": round(time.monotonic() - started, 6),
        "ttft_s": None if ttft_s is None else round(ttft_s, 6),
        "n_chunks": n_chunks,
        "cache_hit": cache_hit,
        "error": error,
    }
    if gen is not None and isinstance(gen["content"], str):
        split = split_reasoning(gen["content"], gen["reasoning_content"] if isinstance(gen["reasoning_content"], str) else None)
        rec.update({
            "content": gen["content"],
            "reasoning_content": gen["reasoning_content"],
            "reasoning": split.reasoning,
            "answer": split.answer,
            "think_closed": split.think_closed,
            "finish_reason": gen["finish_reason"],
            "usage": gen["usage"],
            "timings": gen["timings"],
        })
    elif isinstance(response, dict) and status == 200:
        rec["usage"] = response.get("usage")
        rec["timings"] = response.get("timings")
    return rec


def is_cacheable(rec: dict[str, Any]) -> bool:
    """A successful generation that a later identical request may be answered with."""
    return (
        rec.get("status") == 200
        and rec.get("error") is None
        and rec.get("method") == "POST"
        and rec.get("path") in CACHEABLE_PATHS
        and isinstance(rec.get("request_hash"), str)
        and isinstance(rec.get("content"), str)
        and isinstance(rec.get("response"), dict)
    )


# Errors the same request would meet again: the client's request itself is at fault.
NOT_RETRIABLE = frozenset({"unknown_upstream", "request_too_large", "invalid_json", "upstream_client_error"})


def error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """The proxy's own JSON error (OpenAI-shaped so clients print it); `error` has the records' one shape."""
    return {"error": error_info(kind, message, kind not in NOT_RETRIABLE, source="harness-proxy", **extra)}
