"""Live progress for `harness eval`: one line per model x benchmark, read from the proxy logs.

Every generation passes through the proxy, so its log is the one place that sees lm-eval's and
our own client's requests alike; counting records there needs no hooks into either tool.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass
class Counter:
    total: int
    done: int = 0
    upstream_tokens: int = 0
    started: float | None = None  # when this model x benchmark began (they run one after another)
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def line(self, label: str, now: float) -> str:
        if self.started is None:
            return f"  {label:<28} {self.done:>5}/{self.total:<5} waiting"
        elapsed = max((self.finished_at or now) - self.started, 1e-6)
        rate = self.upstream_tokens / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        if self.finished:
            eta = "done"
        elif self.done:
            eta = f"ETA {int((self.total - self.done) * elapsed / self.done)}s"
        else:
            eta = "ETA ?"
        return f"  {label:<28} {self.done:>5}/{self.total:<5} {pct:5.1f}%  {rate:7.1f} tok/s  {eta}"


class ProgressMonitor:
    """Tails proxy/<model>.jsonl files and prints per model x benchmark progress."""

    def __init__(self, proxy_dir: Path, totals: dict[tuple[str, str], int], out: TextIO = sys.stderr,
                 interval_s: float = 2.0) -> None:
        self.proxy_dir = proxy_dir
        self.counters = {key: Counter(total) for key, total in totals.items()}
        self.out = out
        self.interval_s = interval_s
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")
        self._tty = out.isatty()
        self._printed_lines = 0
        self._last_print = 0.0
        self._lock = threading.Lock()

    def start(self) -> None:
        # Only count what this eval adds: skip what the logs already hold.
        for path in self.proxy_dir.glob("*.jsonl"):
            self._offsets[path] = path.stat().st_size
        self._thread.start()

    def mark_started(self, model: str, bench: str) -> None:
        with self._lock:
            counter = self.counters.get((model, bench))
            if counter:
                counter.started = time.monotonic()

    def mark_finished(self, model: str, bench: str) -> None:
        with self._lock:
            counter = self.counters.get((model, bench))
            if counter:
                now = time.monotonic()
                counter.started = counter.started or now
                counter.finished_at = now
                counter.done = max(counter.done, counter.total)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()
        self._render(force=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()
            self._render()

    def _poll(self) -> None:
        if not self.proxy_dir.is_dir():
            return
        for path in self.proxy_dir.glob("*.jsonl"):
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1  # leave a partially written last line for next time
            self._offsets[path] = offset + end
            for raw in chunk[:end].splitlines():
                self._count(raw)

    def _count(self, raw: bytes) -> None:
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            return
        if not str(rec.get("path", "")).endswith("/chat/completions") or rec.get("status") != 200:
            return
        with self._lock:
            counter = self.counters.get((rec.get("model"), rec.get("benchmark")))
            if counter is None:
                return
            counter.done = min(counter.done + 1, counter.total)
            if not rec.get("cache_hit"):
                counter.upstream_tokens += int((rec.get("usage") or {}).get("completion_tokens") or 0)

    def _render(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._tty and not force and now - self._last_print < 30:
            return
        self._last_print = now
        with self._lock:
            lines = [c.line(f"{m}/{b}", now) for (m, b), c in sorted(self.counters.items())]
        if self._tty and self._printed_lines:
            self.out.write(f"\x1b[{self._printed_lines}F")  # redraw the block in place
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._printed_lines = len(lines)
