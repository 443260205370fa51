"""Response cache backed by the proxy's own logs.

The log *is* the cache: an index maps (upstream name, request_hash) to the byte range of the latest
successful record, and a hit reads that one line back. Memory stays small (a few dozen bytes per
entry, however long the generations), and a restarted proxy rebuilds the index from the files, which
is what makes a killed run resumable without regenerating anything.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from harness.io import JsonlReadStats
from harness.proxy.records import is_cacheable

log = logging.getLogger(__name__)

CACHE_MODES = ("off", "read", "readwrite")


class ResponseCache:
    def __init__(self, mode: str) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"cache mode must be one of {', '.join(CACHE_MODES)}")
        self.mode = mode
        self._index: dict[tuple[str, str], tuple[str, int, int]] = {}
        self._paths: dict[str, str] = {}  # one shared string per log file, not one per entry
        self.hits = 0
        self.read_stats: list[JsonlReadStats] = []

    @property
    def reads(self) -> bool:
        return self.mode in ("read", "readwrite")

    @property
    def writes(self) -> bool:
        return self.mode == "readwrite"

    def __len__(self) -> int:
        return len(self._index)

    def load(self, log_dir: Path, names: list[str]) -> None:
        """Index the existing logs of the given upstreams. Torn/malformed lines are skipped and counted."""
        if not self.reads:
            return
        for name in names:
            path = Path(log_dir) / f"{name}.jsonl"
            if not path.is_file():  # also skips devices and FIFOs, which cannot be scanned
                continue
            stats = JsonlReadStats(str(path))
            self.read_stats.append(stats)
            with open(path, "rb") as fh:
                offset = 0
                for lineno, line in enumerate(fh, start=1):
                    start, offset = offset, offset + len(line)
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        stats.bad_lines.append(lineno)
                        continue
                    if not isinstance(rec, dict):
                        stats.bad_lines.append(lineno)
                        continue
                    stats.records += 1
                    if is_cacheable(rec):
                        self._index[(name, rec["request_hash"])] = (self._path(path), start, len(line))
            if stats.skipped:
                log.warning("%s: skipped %d malformed or torn line(s) (lines %s) while loading the cache",
                            path, stats.skipped, ", ".join(map(str, stats.bad_lines[:10])))
        log.info("response cache: %d entries from %d file(s)", len(self._index), len(self.read_stats))

    def get(self, name: str, request_hash: str) -> dict[str, Any] | None:
        """The cached record, or None (also when the line can no longer be read back)."""
        if not self.reads:
            return None
        loc = self._index.get((name, request_hash))
        if loc is None:
            return None
        path, offset, length = loc
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                raw = os.pread(fd, length, offset)
            finally:
                os.close(fd)
            rec = json.loads(raw)
        except (OSError, ValueError) as exc:
            log.warning("cache entry %s@%d unreadable (%s); forwarding upstream", path, offset, exc)
            self._index.pop((name, request_hash), None)
            return None
        if not isinstance(rec, dict) or rec.get("request_hash") != request_hash:
            self._index.pop((name, request_hash), None)
            return None
        self.hits += 1
        return rec

    def put(self, name: str, rec: dict[str, Any], path: Path, offset: int, length: int) -> None:
        if self.writes and is_cacheable(rec):
            self._index[(name, rec["request_hash"])] = (self._path(path), offset, length)

    def _path(self, path: Path) -> str:
        key = str(path)
        return self._paths.setdefault(key, key)
