"""Running model-generated code (evalplus evaluation) in a sandbox.

evalplus' own "sandbox" is not one (notes/evalplus.md §5.2: a solution can write anywhere and open
sockets). We wrap the whole `evaluate` process instead:

Native mode (this module), as far as the OS allows, each layer recorded in `Isolation`:
- network namespace with no interfaces (`unshare --net`; unprivileged: `unshare -r --net`), so even
  127.0.0.1 is unreachable;
- pid namespace (`--pid --fork --kill-child --mount-proc`), so killing the launcher kills every
  process the samples started;
- mount namespace in which every mount is read-only (remounted, as bubblewrap's `--ro-bind / /`
  does) except the work dir, with fresh tmpfs over the world-writable dirs (/tmp, /var/tmp,
  /dev/shm, ...): a write outside the work dir fails or lands in a throwaway tmpfs, whatever the
  file permissions say (a world-writable dir in the run directory included);
- when we are real root: drop to a dedicated unprivileged uid/gid (default 61000, no passwd entry
  needed), with no_new_privs, so RLIMIT_NPROC applies and nothing outside the private work dir
  (owned by that uid) is writable;
- resource limits: RLIMIT_AS, NPROC, CPU, FSIZE, NOFILE, CORE=0; and a wall-clock timeout that kills
  the whole process group / namespace.
Where namespaces are unavailable (e.g. inside an unprivileged container) it refuses
(`SandboxUnavailable`) unless the caller explicitly allows unisolated execution (config
`sandbox.allow_unisolated`, CLI `harness eval --unsafe-allow-unsandboxed-code`); then it falls back
to rlimits and the result says so. Whether the isolation holds is measured, not assumed:
harness/sandbox_probe.py runs a probe inside the same sandbox before anything is scored.

Container mode (compose `sandbox` service: no network, read-only root, tmpfs, pids/memory limits,
non-root) runs the same *inner* command: `evaluate_argv()` + `sandbox_env()`, with the work dir
mounted as its working directory. Paths in the inner command are relative to the work dir, so the
same argv works in both modes.

This file is also the in-namespace launcher: `python -m harness.sandbox [options] -- CMD...` does the
mounts, rlimits and privilege drop, then execs CMD (it runs as pid 1 of the new pid namespace until
the exec).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SANDBOX_UID = int(os.environ.get("HARNESS_SANDBOX_UID", "61000"))
# Directories any user may write to on a normal Linux box; each gets a private tmpfs.
WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")  # noqa: S108 - the dirs we mask

UNSAFE_FLAG = "--unsafe-allow-unsandboxed-code"

GiB = 1024**3
MiB = 1024**2


class SandboxUnavailable(RuntimeError):
    """No isolation is available here and running generated code unisolated was not allowed."""


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for the whole evaluate process tree (per-sample limits are evalplus' + ours, see evalplus_eval)."""

    wall_timeout_s: float = 3 * 3600.0
    address_space_bytes: int | None = 32 * GiB  # per process; evalplus caps each sample at sample_memory_bytes
    sample_memory_bytes: int = 4 * GiB  # EVALPLUS_MAX_MEMORY_BYTES (evalplus default)
    nproc: int = 512  # processes+threads of the sandbox uid (only enforced for a non-root uid)
    sample_nproc_headroom: int = 8  # extra processes one sample may create (fork-bomb cap)
    cpu_s: int | None = None  # RLIMIT_CPU per process; None = wall_timeout_s
    fsize_bytes: int = 1 * GiB
    nofile: int = 1024
    tmpfs_bytes: int = 512 * MiB


@dataclass
class Isolation:
    """Which isolation actually applied; written into the run's records."""

    mode: str = "native"  # native | container | none
    network: str = "host"  # netns (no interfaces) | host
    pid_namespace: bool = False
    private_tmp: bool = False
    readonly_fs: bool = False  # every mount read-only except the work dir and the private tmpfs
    user: str = "unchanged"  # e.g. "uid 61000" | "userns-root" | "unchanged"
    rlimits: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SandboxCommand:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    isolation: Isolation


@dataclass
class SandboxResult:
    returncode: int
    timed_out: bool
    wall_s: float
    output_tail: str
    isolation: Isolation


# --------------------------------------------------------------------------------------------
# The inner command (same in native and container mode)


def evaluate_argv(
    *,
    dataset_file: str = "dataset.jsonl",
    samples: str = "samples.jsonl",
    cache_dir: str = "cache",
    parallel: int | None = None,
    min_time_limit: float | None = None,
    gt_time_limit_factor: float | None = None,
    python: str | None = None,
    dataset: str | None = None,
) -> list[str]:
    """argv of the evalplus evaluation itself; paths are relative to the work dir (the cwd).

    `dataset`: evalplus' dataset name (humaneval | mbpp); None leaves the wrapper's default (humaneval)."""
    argv = [python or sys.executable, "-m", "harness.runners.evalplus_eval",
            "--dataset-file", dataset_file, "--samples", samples, "--cache-dir", cache_dir]
    if dataset is not None:
        argv += ["--dataset", dataset]
    if parallel is not None:
        argv += ["--parallel", str(parallel)]
    if min_time_limit is not None:
        argv += ["--min-time-limit", str(min_time_limit)]
    if gt_time_limit_factor is not None:
        argv += ["--gt-time-limit-factor", str(gt_time_limit_factor)]
    return argv


def sandbox_env(limits: SandboxLimits, home: str = ".") -> dict[str, str]:
    """A minimal environment: nothing inherited (no tokens, no proxies), everything offline."""
    pythonpath = str(REPO_ROOT)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "XDG_CACHE_HOME": os.path.join(home, "cache"),
        "TMPDIR": "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
        "LANG": "C.UTF-8",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # Threads count against RLIMIT_NPROC; numeric libraries must not spawn a pool per core.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "EVALPLUS_MAX_MEMORY_BYTES": str(limits.sample_memory_bytes),
        "HARNESS_SAMPLE_NPROC_HEADROOM": str(limits.sample_nproc_headroom),
    }


# --------------------------------------------------------------------------------------------
# What this OS allows


def _try(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe_unshare() -> list[str] | None:
    """The `unshare` prefix that works here (network + pid + mount namespaces), or None."""
    return _probe_unshare(shutil.which("unshare"), os.geteuid())


@functools.lru_cache(maxsize=4)
def _probe_unshare(unshare: str | None, euid: int) -> list[str] | None:
    # Cached per binary found on PATH: a test puts an `unshare` that fails (as it does in an
    # unprivileged container) first on PATH to exercise the fail-closed path.
    if unshare is None:
        return None
    ns = ["--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    candidates = [[unshare, *ns]] if euid == 0 else []
    candidates.append([unshare, "--map-root-user", *ns])  # unprivileged: user namespace
    for prefix in candidates:
        if _try([*prefix, "true"]):
            return prefix
    return None


def build_native_command(
    inner_argv: list[str],
    work_dir: str | Path,
    limits: SandboxLimits = SandboxLimits(),
    *,
    allow_unisolated: bool = False,
    sandbox_uid: int = DEFAULT_SANDBOX_UID,
) -> SandboxCommand:
    """Wrap `inner_argv` (run with cwd=work_dir) in the strongest native isolation available.

    Raises SandboxUnavailable when no namespace can be created, unless `allow_unisolated`."""
    work_dir = str(Path(work_dir).resolve())
    iso = Isolation(mode="native")
    prefix = probe_unshare()
    launcher = [sys.executable, "-m", "harness.sandbox", "--workdir", work_dir]
    if prefix is not None:
        iso.network = "netns"
        iso.pid_namespace = True
        iso.private_tmp = True
        iso.readonly_fs = True
        launcher += ["--readonly-root"]
        launcher += [f"--tmpfs={d}" for d in WRITABLE_DIRS]
        launcher += ["--tmpfs-bytes", str(limits.tmpfs_bytes)]
        # The interpreter or the code may live under one of those dirs (a checkout in /tmp):
        # bind them back, read-only, over the fresh tmpfs.
        launcher += [f"--expose={p}" for p in _under_private_tmp(_code_paths())]
        if "--map-root-user" in prefix:
            iso.user = "userns-root"
            iso.warnings.append("unprivileged: user namespace; no separate uid, RLIMIT_NPROC shared with the caller")
    else:
        msg = "no network/pid/mount namespaces available: generated code runs with rlimits only"
        if not allow_unisolated:
            raise SandboxUnavailable(
                f"{msg}; refusing to run it. Run where `unshare --net` works (or in the compose stack's "
                f"`sandbox` service), or accept the risk explicitly: `harness eval {UNSAFE_FLAG}` or "
                "config `sandbox: {allow_unisolated: true}` (recorded in manifest.json and the report)")
        log.warning("sandbox: %s (allowed explicitly)", msg)
        iso.warnings.append(msg)
        prefix = []
    if os.geteuid() == 0 and iso.user != "userns-root":
        masks = _unreachable_ancestors()
        if masks and not iso.private_tmp:
            iso.warnings.append("interpreter not readable by an unprivileged uid and no mount namespace: staying root")
        else:
            for mask, exposed in masks.items():
                # e.g. /root (0700) holds a pyenv interpreter: hide /root behind a tmpfs and bind
                # back, read-only, only the directories the evaluation needs.
                launcher += [f"--tmpfs={mask}"] + [f"--expose={e}" for e in exposed]
            launcher += ["--uid", str(sandbox_uid), "--gid", str(sandbox_uid)]
            iso.user = f"uid {sandbox_uid}"
    elif iso.user == "unchanged":
        iso.warnings.append("not root: samples run as the calling user")
    cpu_s = limits.cpu_s if limits.cpu_s is not None else int(limits.wall_timeout_s) + 60
    rl = {"as": limits.address_space_bytes, "nproc": limits.nproc, "cpu": cpu_s,
          "fsize": limits.fsize_bytes, "nofile": limits.nofile, "core": 0}
    iso.rlimits = {**rl, "sample_memory": limits.sample_memory_bytes,
                   "sample_nproc_headroom": limits.sample_nproc_headroom,
                   "wall_timeout_s": limits.wall_timeout_s}
    for name, value in rl.items():
        if value is not None:
            launcher += [f"--rlimit-{name}", str(value)]
    env = sandbox_env(limits, home=work_dir)
    return SandboxCommand([*prefix, *launcher, "--", *inner_argv], env, work_dir, iso)


def sandbox_mode() -> str:
    """Where generated code runs: "container" (the compose `sandbox` service, via the job spool
    named by $HARNESS_SANDBOX_SPOOL) or "native" (namespaces, this module)."""
    return "container" if os.environ.get("HARNESS_SANDBOX_SPOOL") else "native"


def run_in_sandbox(work_dir: Path, inner_argv: list[str], limits: SandboxLimits, *, mode: str | None = None,
                   allow_unisolated: bool = False, timeout_s: float | None = None) -> SandboxResult:
    """Run `inner_argv` (cwd = `work_dir`, paths relative to it) in the sandbox of `mode`.

    The one place that picks the sandbox: evalplus scoring and the sandbox probe both come here,
    so the probe measures exactly what scoring gets. Raises SandboxUnavailable (native, no
    namespaces, not allowed) or harness.sandbox_spool.SpoolError (container, no worker)."""
    mode = mode or sandbox_mode()
    timeout_s = limits.wall_timeout_s if timeout_s is None else timeout_s
    work_dir = Path(work_dir)
    if mode == "container":
        from harness.sandbox_spool import run_via_spool

        # The sandbox container's interpreter, not ours (same image, same path by default).
        inner = [os.environ.get("HARNESS_SANDBOX_PYTHON", "/opt/venv/bin/python"), *inner_argv[1:]]
        return run_via_spool(work_dir, inner, sandbox_env(limits, home="."), timeout_s=timeout_s)
    if mode != "native":
        raise ValueError(f"unknown sandbox mode {mode!r} (native | container)")
    cmd = build_native_command(inner_argv, work_dir, limits, allow_unisolated=allow_unisolated)
    prepare_work_dir(work_dir, sandbox_uid_of(cmd))
    return run_sandboxed(cmd, timeout_s=timeout_s, log_file=work_dir.parent / f"{work_dir.name}.log")


def _code_paths() -> set[str]:
    """What the sandboxed evaluation must be able to read: the interpreter and the harness code."""
    return {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(REPO_ROOT)}


def _under_private_tmp(paths: set[str]) -> list[str]:
    return sorted(p for p in paths if any(Path(p).is_relative_to(d) for d in WRITABLE_DIRS))


def _unreachable_ancestors() -> dict[str, list[str]]:
    """Dirs an unprivileged uid could not traverse on the way to the interpreter or the code."""
    masks: dict[str, list[str]] = {}
    for path in _code_paths():
        parts = Path(path).parts
        for i in range(2, len(parts) + 1):
            anc = str(Path(*parts[:i]))
            if not os.stat(anc).st_mode & 0o001:
                masks.setdefault(anc, []).append(path)
                break
    return masks


def prepare_work_dir(work_dir: Path, owner_uid: int | None) -> None:
    """Hand the work dir (and what is in it) to the sandbox uid, so it can write there and only there."""
    if owner_uid is None or os.geteuid() != 0:
        return
    for root, _dirs, files in os.walk(work_dir):
        os.chown(root, owner_uid, owner_uid)
        for name in files:
            os.chown(os.path.join(root, name), owner_uid, owner_uid)
    os.chmod(work_dir, 0o700)


def sandbox_uid_of(cmd: SandboxCommand) -> int | None:
    if cmd.isolation.user.startswith("uid "):
        return int(cmd.isolation.user.split()[1])
    return None


def run_sandboxed(cmd: SandboxCommand, timeout_s: float | None = None, log_file: Path | None = None) -> SandboxResult:
    """Run a prepared command; on wall timeout kill its whole process group (and so its namespaces)."""
    timeout_s = timeout_s if timeout_s is not None else float(cmd.isolation.rlimits.get("wall_timeout_s", 3600))
    t0 = time.monotonic()
    out_path = log_file or Path(cmd.cwd).parent / f".{Path(cmd.cwd).name}.log"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd.argv, env=cmd.env, cwd=cmd.cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timed_out = False
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                _kill_group(proc.pid)
                proc.wait()
    text = out_path.read_text(encoding="utf-8", errors="replace")
    if log_file is None:
        out_path.unlink(missing_ok=True)
    return SandboxResult(rc, timed_out, time.monotonic() - t0, text[-8000:], cmd.isolation)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --------------------------------------------------------------------------------------------
# In-namespace launcher: mounts, rlimits, privilege drop, exec

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 8, 32, 4096, 16384
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 1024, 2048, 1 << 21
# statvfs f_flag bit -> mount flag. A remount must keep these: in a user namespace the kernel locks
# them and refuses a remount that would clear one (bubblewrap does the same).
_KEEP_FLAGS = {os.ST_NOSUID: _MS_NOSUID, os.ST_NODEV: _MS_NODEV, os.ST_NOEXEC: _MS_NOEXEC,
               os.ST_NOATIME: _MS_NOATIME, os.ST_NODIRATIME: _MS_NODIRATIME, os.ST_RELATIME: _MS_RELATIME}
# Pseudo file systems left as they are: /proc is the fresh one of the pid namespace, /dev holds
# /dev/null & co, /sys is read-only to a non-root uid anyway.
_KEEP_WRITABLE = ("/proc", "/sys", "/dev")
_PR_SET_NO_NEW_PRIVS = 38
_RLIMITS = {
    "as": resource.RLIMIT_AS, "nproc": resource.RLIMIT_NPROC, "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE, "nofile": resource.RLIMIT_NOFILE, "core": resource.RLIMIT_CORE,
}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount_tmpfs(target: str, size: int) -> None:
    opts = f"size={size},mode=1777".encode()
    if _libc().mount(b"tmpfs", target.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")


def _bind_readonly(source: str, target: str) -> None:
    libc = _libc()
    for flags in (_MS_BIND | _MS_REC, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_REC):
        if libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"bind {source} -> {target}: {os.strerror(err)}")


def _bind(source: str, target: str) -> None:
    if _libc().mount(source.encode(), target.encode(), None, _MS_BIND | _MS_REC, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind {source} -> {target}: {os.strerror(err)}")


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            field = line.split()[4]  # the mount point, octal-escaped (\040 = space)
            points.append(field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace"))
    return list(dict.fromkeys(points))


def _remount_all_readonly(keep: list[str]) -> None:
    """Make every mount of this (private) mount namespace read-only, except `keep` and below."""
    libc = _libc()
    for point in _mount_points():
        if any(point == k or point.startswith(k.rstrip("/") + "/") for k in [*keep, *_KEEP_WRITABLE]):
            continue
        try:
            flags = os.statvfs(point).f_flag
        except OSError:
            continue  # hidden under another mount: unreachable by path anyway
        if flags & os.ST_RDONLY:
            continue
        mflags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        for st, ms in _KEEP_FLAGS.items():
            if flags & st:
                mflags |= ms
        if libc.mount(None, point.encode(), None, mflags, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"remount {point} read-only: {os.strerror(err)}")


def _launcher_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.sandbox", description="in-sandbox launcher")
    p.add_argument("--workdir", required=True)
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--tmpfs-bytes", type=int, default=512 * MiB)
    p.add_argument("--expose", action="append", default=[], help="bind back (read-only) under a tmpfs")
    p.add_argument("--readonly-root", action="store_true",
                   help="remount every mount read-only, except the work dir (bound to itself first)")
    p.add_argument("--uid", type=int)
    p.add_argument("--gid", type=int)
    for name in _RLIMITS:
        p.add_argument(f"--rlimit-{name}", type=int)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given")
    if args.readonly_root:
        # The work dir becomes a mount of its own, so that it alone stays writable.
        _bind(args.workdir, args.workdir)
        _remount_all_readonly(keep=[args.workdir])
    # Keep a handle on the work dir: a tmpfs may be mounted over one of its ancestors (pytest's
    # tmp dirs live under /tmp); fchdir through the handle still reaches it.
    work_fd = os.open(args.workdir, os.O_RDONLY | os.O_DIRECTORY)
    exposed = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in args.expose]
    for target in args.tmpfs:
        if os.path.isdir(target) and not os.path.islink(target):
            _mount_tmpfs(target, args.tmpfs_bytes)
    for path, fd in exposed:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _bind_readonly(f"/proc/self/fd/{fd}", path)
        os.close(fd)
    for name, res in _RLIMITS.items():
        value = getattr(args, f"rlimit_{name.replace('-', '_')}")
        if value is not None:
            resource.setrlimit(res, (value, value))
    _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if args.gid is not None:
        os.setgroups([])
        os.setresgid(args.gid, args.gid, args.gid)
    if args.uid is not None:
        os.setresuid(args.uid, args.uid, args.uid)
    os.fchdir(work_fd)
    os.close(work_fd)
    os.execvpe(cmd[0], cmd, os.environ)  # noqa: S606 - the sandboxed command, an argv list built by us
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(_launcher_main(sys.argv[1:]))
