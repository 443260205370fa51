"""File primitives shared by every stage: atomic writes, tolerant JSONL reads, hashing, UTC time.

Stages talk only through files, so these helpers are the contract's enforcement: a reader never
sees a half-written JSON file, and a torn last JSONL line (a crash mid-append) is skipped and
counted instead of crashing the reader.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION

log = logging.getLogger(__name__)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds and a trailing Z."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` so readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one record and fsync: used where a single writer appends rarely (not the proxy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class JsonlReadStats:
    """What a tolerant JSONL read skipped; reported, never silently dropped."""

    path: str
    records: int = 0
    bad_lines: list[int] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.bad_lines)


def iter_jsonl(path: str | os.PathLike[str], stats: JsonlReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Yield JSON objects from a JSONL file, skipping (and counting) malformed or torn lines."""
    stats = stats if stats is not None else JsonlReadStats(str(path))
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                stats.bad_lines.append(lineno)
                log.warning("%s:%d: skipping malformed JSONL line", path, lineno)
                continue
            if not isinstance(obj, dict):
                stats.bad_lines.append(lineno)
                log.warning("%s:%d: skipping non-object JSONL line", path, lineno)
                continue
            stats.records += 1
            yield obj


def read_jsonl(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], JsonlReadStats]:
    stats = JsonlReadStats(str(path))
    return list(iter_jsonl(path, stats)), stats


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


class Sha256Cache:
    """sha256 of big files (GGUFs), reused while path, size and mtime are unchanged.

    One sidecar per data dir: `harness fetch` records the hashes it has just verified, so the
    run manifest does not hash the same 15 GB files a second time.
    """

    FILE_NAME = ".sha256-cache.json"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        self.dirty = False
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.entries = {k: v for k, v in loaded.get("entries", {}).items() if isinstance(v, str)}
        except (OSError, ValueError):
            pass

    @classmethod
    def for_data_dir(cls, data_dir: str | os.PathLike[str]) -> Sha256Cache:
        return cls(Path(data_dir) / cls.FILE_NAME)

    @staticmethod
    def key(path: Path) -> str:
        st = path.stat()
        return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"

    def sha256(self, path: Path) -> str:
        key = self.key(path)
        sha = self.entries.get(key)
        if sha is None:
            sha = sha256_file(path)
            self.entries[key] = sha
            self.dirty = True
        return sha

    def record(self, path: Path, sha: str) -> None:
        """Remember a hash the caller has just computed over the file as it is now."""
        key = self.key(path)
        if self.entries.get(key) != sha:
            self.entries[key] = sha
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            atomic_write_json(self.path, {"schema_version": SCHEMA_VERSION, "entries": self.entries})
            self.dirty = False
        except OSError as exc:  # a read-only data dir costs a recomputation next time, nothing more
            log.warning("cannot save %s: %s", self.path, exc)
