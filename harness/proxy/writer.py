"""Durable JSONL appends with group commit.

Every exchange's handler awaits the fsync that covers its record before it completes the response
(fail closed). One fsync per record caps throughput at the disk's fsync rate; here one background
task takes everything queued since the last commit, writes it, fsyncs each touched file once, and
then releases all the waiting handlers together. Under load the batches grow, so the fsync cost per
record falls, while an idle proxy still commits a lone record immediately.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class LogWriteError(RuntimeError):
    """A record could not be made durable; the proxy must stop serving."""


class GroupCommitWriter:
    """Appends records to `<log_dir>/<name>.jsonl`; `append` returns once the line is fsynced."""

    def __init__(self, log_dir: Path, on_fatal: Callable[[BaseException], None] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.on_fatal = on_fatal
        self.failed: BaseException | None = None
        self.records_written = 0
        self.commits = 0
        self._fds: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        self._pending: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One thread: commits are ordered, and file offsets are only touched there.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proxy-log")

    def path(self, name: str) -> Path:
        return self.log_dir / f"{name}.jsonl"

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="proxy-group-commit")

    async def append(self, name: str, record: dict[str, Any]) -> tuple[Path, int, int]:
        """Queue a record; returns (file, offset, length) once it is on disk. Raises LogWriteError."""
        if self.failed is not None:
            raise LogWriteError(f"proxy log is not writable: {self.failed}")
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((name, line, fut))
        if self._wake is None:  # not `assert`: it must hold under python -O too
            raise RuntimeError("writer not started")
        self._wake.set()
        offset = await asyncio.shield(fut)
        return self.path(name), offset, len(line)

    async def _run(self) -> None:
        if self._wake is None:  # not `assert`: it must hold under python -O too
            raise RuntimeError("internal error: self._wake is not set")
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            try:
                offsets = await loop.run_in_executor(self._executor, self._commit, [(n, line) for n, line, _ in batch])
            except Exception as exc:  # noqa: BLE001 - any failure to persist is fatal
                self._fail(exc, batch)
                return
            self.records_written += len(batch)
            self.commits += 1
            for (_, _, fut), off in zip(batch, offsets, strict=True):
                if not fut.done():
                    fut.set_result(off)

    def _fail(self, exc: BaseException, batch: list[tuple[str, bytes, asyncio.Future[int]]]) -> None:
        self.failed = exc
        log.error("cannot write proxy log: %s", exc)
        err = LogWriteError(f"proxy log write failed: {exc}")
        for _, _, fut in batch + self._pending:
            if not fut.done():
                fut.set_exception(err)
        self._pending = []
        if self.on_fatal is not None:
            self.on_fatal(exc)

    # --- runs in the writer thread -------------------------------------------------------------

    def _open(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is not None:
            return fd
        path = self.path(name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size if path.is_file() else 0
        if size > 0:
            # A crash can leave a torn last line; start ours on a fresh line so it stays readable.
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    os.write(fd, b"\n")
                    size += 1
        if not existed:
            dfd = os.open(self.log_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)  # the new file's directory entry must survive a crash too
            finally:
                os.close(dfd)
        self._fds[name] = fd
        self._sizes[name] = size
        return fd

    def _commit(self, batch: list[tuple[str, bytes]]) -> list[int]:
        offsets: list[int] = []
        by_file: dict[str, list[bytes]] = {}
        ends: dict[str, int] = {}
        for name, line in batch:
            if name not in ends:
                self._open(name)
                ends[name] = self._sizes[name]
            offsets.append(ends[name])
            ends[name] += len(line)
            by_file.setdefault(name, []).append(line)
        for name, lines in by_file.items():
            fd = self._fds[name]
            data = memoryview(b"".join(lines))
            while data:
                n = os.write(fd, data)
                data = data[n:]
            os.fsync(fd)
            self._sizes[name] = ends[name]
        return offsets

    async def close(self) -> None:
        """Commit whatever is queued, then close the files."""
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            await self._task
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        self._executor.shutdown(wait=True)
