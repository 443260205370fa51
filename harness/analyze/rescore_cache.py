"""Re-score cache: lm-eval scorer results kept inside the run, so an unchanged re-analysis is near instant.

Re-scoring imported samples on the reasoning-stripped text (load.py) runs lm-eval's IFEval checkers
(langdetect), the slowest part of `harness analyze`. Each result is kept in
RUN/analysis/rescore_cache.jsonl under a key of: the scorer version (lm-eval, langdetect and nltk
versions, the sentence data, a hash of scoring.py: see `scoring.scorer_version`), the benchmark, the
item id, a hash of the document, a hash of the scored text and the seed variant. A change of any of
them is a miss, never a stale hit.

Safety: new entries are appended in one write under an exclusive `flock`, so concurrent analyses of
one run add whole lines. Every line carries a sha256 of its own content; a line that does not parse,
or whose checksum or shape is wrong, is ignored (and re-scored). When most lines are dead weight
(damaged, duplicated, or of a scorer version this analysis did not use) the file is rewritten
atomically (temp file + rename) with the live entries only. A concurrent analysis with another scorer
version may lose its entries to that rewrite: they are re-scored next time, never wrong.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from harness.io import atomic_write_text

log = logging.getLogger(__name__)

CACHE_FILE = "rescore_cache.jsonl"
FORMAT = 1  # bump when the line layout changes; lines of another format are ignored

Key = tuple[str, str, str, str, str, int]  # scorer version, benchmark, item, doc sha, text sha, variant


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def doc_sha(doc: dict[str, Any]) -> str:
    # Canonical JSON: the same document read from another file (or key order) hashes the same.
    return text_sha(json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str))


def _line_check(body: dict[str, Any]) -> str:
    return text_sha(json.dumps(body, sort_keys=True, ensure_ascii=False))[:32]


def _valid_result(res: Any) -> bool:
    """A cached result is a flat dict of metric name -> bool/int/float or list of bools."""
    if not isinstance(res, dict) or not res:
        return False
    for v in res.values():
        if isinstance(v, list):
            if not all(isinstance(x, bool) for x in v):
                return False
        elif not isinstance(v, (bool, int, float)):
            return False
    return True


class RescoreCache:
    """Read once at construction; `put` collects new results; `flush` appends them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[Key, dict[str, Any]] = {}
        self.pending: dict[Key, dict[str, Any]] = {}
        self.lines = 0  # non-empty lines read, good or not
        self.ignored = 0  # lines that were damaged or malformed
        self.hits = 0
        self.versions: set[str] = set()  # scorer versions this analysis asked for: the live ones
        self._load()

    @classmethod
    def for_run(cls, run_dir: Path) -> RescoreCache:
        return cls(run_dir / "analysis" / CACHE_FILE)

    def _load(self) -> None:
        try:
            raw = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:  # unreadable cache: analyse without it, it is only a cache
            log.warning("%s: re-score cache unreadable (%s); re-scoring", self.path, exc)
            return
        for line in raw.splitlines():
            if not line.strip():
                continue
            self.lines += 1
            parsed = self._parse(line)
            if parsed is None:
                self.ignored += 1
                continue
            key, res = parsed
            self.entries[key] = res
        if self.ignored:
            log.warning("%s: %d damaged re-score cache line(s) ignored", self.path, self.ignored)

    @staticmethod
    def _parse(line: str) -> tuple[Key, dict[str, Any]] | None:
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            return None
        check = obj.pop("check", None)
        if check != _line_check(obj):
            return None
        k, res = obj.get("key"), obj.get("result")
        if (not isinstance(k, list) or len(k) != 6 or not all(isinstance(x, str) for x in k[:5])
                or not isinstance(k[5], int) or isinstance(k[5], bool) or not isinstance(res, dict)
                or not _valid_result(res)):
            return None
        return (str(k[0]), str(k[1]), str(k[2]), str(k[3]), str(k[4]), int(k[5])), res

    @staticmethod
    def _line(key: Key, res: dict[str, Any]) -> str:
        body: dict[str, Any] = {"format": FORMAT, "key": list(key), "result": res}
        body["check"] = _line_check(body)
        return json.dumps(body, ensure_ascii=False)

    def get(self, key: Key) -> dict[str, Any] | None:
        self.versions.add(key[0])
        res = self.entries.get(key)
        if res is not None:
            self.hits += 1
        return res

    def put(self, key: Key, res: dict[str, Any]) -> None:
        if not _valid_result(res):
            raise ValueError(f"re-score result for {key[1]} item {key[2]} is not cacheable: {res!r}")
        self.versions.add(key[0])
        self.entries[key] = res
        self.pending[key] = res

    def flush(self) -> None:
        """Append the new entries (one write, under an exclusive lock); compact when mostly dead weight."""
        if not self.pending:
            return
        # A leading newline ends a line torn by an earlier crash, so it spoils only itself.
        data = ("\n" + "\n".join(self._line(k, r) for k, r in self.pending.items()) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked() as fd:
                view = memoryview(data)
                while view:  # one write in practice; a short write continues where it stopped
                    view = view[os.write(fd, view):]
                self.lines += len(self.pending)
                live = sum(k[0] in self.versions for k in self.entries)
                if self.lines > 2 * live + 100:
                    self._compact()
        except OSError as exc:  # a read-only or full disk must not fail the analysis
            log.warning("%s: re-score cache not written (%s)", self.path, exc)
        self.pending = {}

    def _locked(self) -> _Lock:
        return _Lock(self.path)

    def _compact(self) -> None:
        """Rewrite the file with the live entries only (caller holds the lock).

        The file is read again first, so live entries another process appended since are kept.
        """
        fresh = RescoreCache(self.path)
        live = {k: r for k, r in (fresh.entries | self.entries).items() if k[0] in self.versions}
        atomic_write_text(self.path, "".join(self._line(k, r) + "\n" for k, r in live.items()))
        log.info("%s: re-score cache compacted to %d entries", self.path, len(live))
        self.lines = len(live)


class _Lock:
    """Open `path` for appending under an exclusive flock; reopen if a compaction replaced the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> int:
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return fd
            os.close(fd)  # replaced while we waited: lock the file that is there now

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
