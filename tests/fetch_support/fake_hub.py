"""A local stand-in for the Hugging Face Hub and for plain file hosting, for `harness fetch` tests.

It implements only what huggingface_hub 2.x's `hf_hub_download`, `get_hf_file_metadata` and
`HfApi.repo_info` ask of the hub, with the hub's own headers and error codes:

    HEAD/GET /{repo}/resolve/{rev}/{file}            (model repos)
    HEAD/GET /datasets/{repo}/resolve/{rev}/{file}   (dataset repos)
    GET /api/{models|datasets}/{repo}/revision/{rev} -> {"id", "sha", "siblings": [{"rfilename"}]}

with X-Repo-Commit, ETag (the sha256, as the hub sends for LFS files), Content-Length, and
404s carrying X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound; a gated repo answers
403 with X-Error-Code GatedRepo to every token it was not granted to. Plain files for `url:`
sources are under /files/{name}; /truncated/{name} promises the full length and sends half, then
closes (a network failure mid-body). Every request is logged (method, path, Authorization) so tests
can count downloads and see which token went where.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    refs: dict[str, str]  # branch -> commit
    commits: dict[str, dict[str, bytes]]  # commit -> {path: content}

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass
class Logged:
    method: str
    path: str
    authorization: str | None


@dataclass
class FakeHub:
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)  # (repo_type, repo_id) -> Repo
    files: dict[str, bytes] = field(default_factory=dict)  # plain files under /files/
    log: list[Logged] = field(default_factory=list)
    url: str = ""
    gated: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # repo -> tokens granted access

    def add_repo(self, repo_type: str, repo_id: str, commit: str, files: dict[str, bytes], branch: str = "main") -> None:
        repo = self.repos.setdefault((repo_type, repo_id), Repo({}, {}))
        repo.commits[commit] = dict(files)
        repo.refs[branch] = commit

    def gets(self, fragment: str = "") -> list[Logged]:
        """Body downloads (GET) whose path contains `fragment`."""
        return [r for r in self.log if r.method == "GET" and fragment in r.path]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps({"error": message}).encode(),
                       {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json", **(extra or {})})

        def do_HEAD(self) -> None:
            self._route()

        def do_GET(self) -> None:
            self._route()

        def _route(self) -> None:
            hub.log.append(Logged(self.command, self.path, self.headers.get("Authorization")))
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
            if parts[:1] == ["files"]:
                return self._plain("/".join(parts[1:]), truncate=False)
            if parts[:1] == ["truncated"]:
                return self._plain("/".join(parts[1:]), truncate=True)
            if parts[:1] == ["api"] and len(parts) >= 6 and parts[4] == "revision":
                repo_type = {"models": "model", "datasets": "dataset"}.get(parts[1], "?")
                return self._info(repo_type, f"{parts[2]}/{parts[3]}", "/".join(parts[5:]))
            repo_type = "model"
            if parts[:1] == ["datasets"]:
                repo_type, parts = "dataset", parts[1:]
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            self._send(404, b"not found")

        def _plain(self, name: str, truncate: bool) -> None:
            data = hub.files.get(name)
            if data is None:
                return self._send(404, b"no such file")
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
            self.end_headers()
            if self.command == "HEAD":
                return
            if truncate:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            granted = hub.gated.get((repo_type, repo_id))
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if granted is not None and token not in granted:
                self._error(403, "GatedRepo", f"Access to {repo_type} {repo_id} is restricted. You must have access to it.")
                return None
            return repo

        def _info(self, repo_type: str, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            commit = repo.resolve(revision)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            body = {"id": repo_id, "sha": commit, "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(repo.commits[commit])]}
            self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
            repo = self._repo(repo_type, repo_id)
            if repo is None:
                return
            commit = repo.resolve(revision)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            data = repo.commits[commit].get(path)
            if data is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}",
                                   {"X-Repo-Commit": commit})
            self._send(200, data, {
                "X-Repo-Commit": commit,
                "ETag": '"' + hashlib.sha256(data).hexdigest() + '"',
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
            })

    return Handler


class FakeHubServer:
    """Context manager: serves a FakeHub on 127.0.0.1 at a free port; `.hub.url` is its base URL."""

    def __init__(self, hub: FakeHub | None = None) -> None:
        self.hub = hub or FakeHub()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self._server.daemon_threads = True
        self.hub.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self.hub

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
