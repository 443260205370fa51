"""<data_dir>/lock.json: what is in the data dir, where it came from, and its hashes.

Keyed by the artifact's path relative to the data dir, because the lock describes files on disk:
two configs that share a data dir (demo and study both use `data/`) keep each other's entries, and
two models served from one GGUF share one entry. Written atomically after every artifact, so an
interrupted fetch keeps what it finished. Never holds a token.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.io import atomic_write_json, sha256_file, utc_now

LOCK_NAME = "lock.json"


class LockError(Exception):
    pass


def read_lock(data_dir: str | Path) -> dict[str, Any]:
    """The lock of a data dir, or an empty one when none has been written yet."""
    path = Path(data_dir) / LOCK_NAME
    if not path.exists():
        return {"schema_version": SCHEMA_VERSION, "artifacts": {}}
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LockError(f"{path}: unreadable lock file ({exc}); delete it and run `harness fetch` again") from None
    if not isinstance(lock, dict) or not isinstance(lock.get("artifacts"), dict):
        raise LockError(f"{path}: not a harness lock file (no 'artifacts' mapping)")
    if lock.get("schema_version") != SCHEMA_VERSION:
        raise LockError(f"{path}: lock schema_version {lock.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    return lock


def write_lock(data_dir: str | Path, lock: dict[str, Any]) -> None:
    lock["artifacts"] = dict(sorted(lock["artifacts"].items()))
    ordered = {"schema_version": SCHEMA_VERSION, "updated_at": utc_now(), "artifacts": lock["artifacts"]}
    ordered.update({k: v for k, v in lock.items() if k not in ordered})
    atomic_write_json(Path(data_dir) / LOCK_NAME, ordered)


def folder_files(folder: Path, data_dir: Path) -> list[dict[str, Any]]:
    """Every regular file under a folder with size and sha256, paths relative to the data dir."""
    from harness.fetch.plan import rel_to

    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        files.append({"path": rel_to(path, data_dir), "size": path.stat().st_size, "sha256": sha256_file(path)})
    return files


def folder_digest(files: list[dict[str, Any]], base: str) -> str:
    """One sha256 for a folder: over sorted `sha256  path-inside-folder` lines (like sha256sum output)."""
    prefix = base.rstrip("/") + "/"
    lines = sorted(f"{f['sha256']}  {f['path'][len(prefix):] if f['path'].startswith(prefix) else f['path']}\n"
                   for f in files)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_on_disk(entry: dict[str, Any], data_dir: Path) -> str | None:
    """None when the files an entry describes are on disk with its sizes and hashes; else what differs."""
    items = entry.get("files") or [{"path": entry["path"], "size": entry["size"], "sha256": entry["sha256"]}]
    for item in items:
        path = data_dir / item["path"]
        if not path.is_file():
            return f"missing: {item['path']}"
        size = path.stat().st_size
        if size != item["size"]:
            return f"size mismatch: {item['path']} has {size} bytes, lock says {item['size']}"
        actual = sha256_file(path)
        if actual != item["sha256"]:
            return f"sha256 mismatch: {item['path']} is {actual}, lock says {item['sha256']}"
    if entry.get("files") is not None:
        # A folder must hold exactly the locked files: a stray extra file would be read by a stage too.
        folder = data_dir / entry["path"]
        from harness.fetch.plan import rel_to

        on_disk = {rel_to(p, data_dir) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
        extra = sorted(on_disk - {i["path"] for i in items})
        if extra:
            return f"unexpected file in {entry['path']}: {extra[0]}"
    return None
