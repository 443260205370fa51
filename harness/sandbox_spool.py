"""Container sandbox for generated code: a job spool shared with the compose `sandbox` service.

Why a spool: the `sandbox` container has no network at all (`network_mode: none`), so it cannot be
called over HTTP, and giving the harness container the Docker socket (to start one-off containers)
would hand it root on the host. Instead the two containers share one volume, `/spool`, and nothing
else: the harness writes a job (a work dir + `job.json`), the sandbox worker runs it and writes
`done.json`. The sandbox sees neither results, nor data, nor models, nor any token.

Inside the sandbox container the worker is root with four capabilities (CHOWN, SETUID, SETGID,
KILL; compose drops all others, no-new-privileges, read-only root, no network). It never runs a job
as itself: it copies the job into a private dir on the container's tmpfs, hands that dir to
`JOB_UID`, runs the job as `JOB_UID` (no capabilities), kills every process of that uid afterwards
and copies the outputs back. The spool is root-only (0700), so a job can neither read nor write
another job, the spool, or anything outside its dir and /tmp. A worker that is not root (an old
compose file, a test) runs jobs as itself and says so in `warnings`; the sandbox probe
(harness/sandbox_probe.py) then finds the spool writable and scoring stops.

Harness side (inside `harness eval`, when $HARNESS_SANDBOX_SPOOL is set):

    from harness.sandbox import evaluate_argv, sandbox_env, SandboxLimits
    from harness.sandbox_spool import run_via_spool
    result = run_via_spool(work_dir, evaluate_argv(python="/opt/venv/bin/python"),
                           sandbox_env(limits, home="."), timeout_s=limits.wall_timeout_s)

`work_dir` holds the inputs (dataset.jsonl, samples.jsonl, ...); after the run every file the job
wrote is copied back into it. The result is a `harness.sandbox.SandboxResult` whose isolation says
`mode="container"`.

Sandbox side (the compose service's command): `python -m harness.sandbox_spool worker --spool /spool`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.io import atomic_write_json, utc_now

log = logging.getLogger(__name__)

SPOOL_ENV = "HARNESS_SANDBOX_SPOOL"
SANDBOX_UID = 10001  # the `sandbox` user of docker/harness.Dockerfile: every job runs as it
JOB_UID = int(os.environ.get("HARNESS_SANDBOX_JOB_UID", str(SANDBOX_UID)))
JOB_FILE, CLAIMED_FILE, DONE_FILE, LOG_FILE = "job.json", "job.claimed", "done.json", "job.log"
_BOOKKEEPING = {JOB_FILE, CLAIMED_FILE, DONE_FILE, LOG_FILE}


class SpoolError(RuntimeError):
    """The sandbox worker did not answer (not running, crashed, or timed out)."""


def spool_dir() -> Path | None:
    value = os.environ.get(SPOOL_ENV)
    return Path(value) if value else None


def run_via_spool(work_dir: str | Path, argv: list[str], env: dict[str, str], *, timeout_s: float,
                  spool: str | Path | None = None, answer_grace_s: float = 120.0) -> Any:
    """Run `argv` (cwd = a copy of `work_dir`) in the sandbox container; copy its outputs back."""
    from harness.sandbox import Isolation, SandboxResult

    root = Path(spool) if spool else spool_dir()
    if root is None:
        raise SpoolError(f"${SPOOL_ENV} is not set: no sandbox container to run generated code in")
    work_dir = Path(work_dir)
    job_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    job = root / "jobs" / job_id
    shutil.copytree(work_dir, job)
    # job.json last (renamed into place): the worker takes only complete jobs. No chown: the worker
    # (root in its container) copies the job to a private dir before anything runs.
    tmp = job / f".{JOB_FILE}.tmp"
    tmp.write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "id": job_id, "created": utc_now(),
        "argv": list(argv), "env": dict(env), "timeout_s": float(timeout_s),
    }), encoding="utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, job / JOB_FILE)
    t0 = time.monotonic()
    deadline = t0 + timeout_s + answer_grace_s
    done = job / DONE_FILE
    while not done.exists():
        if time.monotonic() > deadline:
            claimed = (job / CLAIMED_FILE).exists()
            shutil.rmtree(job, ignore_errors=True)  # a worker that comes back must not run a job nobody waits for
            raise SpoolError(f"sandbox job {job_id} got no answer after {timeout_s + answer_grace_s:.0f}s "
                             + ("(claimed: the worker died mid-job?)" if claimed else
                                "(never claimed: is the `sandbox` service running? `docker compose ps sandbox`)"))
        time.sleep(0.5)
    answer = json.loads(done.read_text(encoding="utf-8"))
    for src in job.rglob("*"):
        rel = src.relative_to(job)
        if src.is_file() and rel.name not in _BOOKKEEPING:
            dst = work_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    shutil.rmtree(job, ignore_errors=True)
    iso = Isolation(mode="container", network="none", pid_namespace=True, private_tmp=True, readonly_fs=True,
                    user=f"uid {answer.get('job_uid', answer.get('uid', SANDBOX_UID))}",
                    rlimits={"wall_timeout_s": float(timeout_s)},
                    warnings=list(answer.get("warnings", [])))
    return SandboxResult(int(answer["returncode"]), bool(answer["timed_out"]), float(answer["wall_s"]),
                         str(answer.get("output_tail", "")), iso)


# --------------------------------------------------------------------------------------------
# Worker (runs inside the sandbox container)


def _chown_tree(path: Path, uid: int) -> None:
    """lchown everything under `path` to `uid` (symlinks are not followed: the tree was the job's).

    The worker has CAP_CHOWN but no CAP_DAC_OVERRIDE: it lists a dir while it still owns it
    (handing over), or after taking it back and giving itself full access (a job may have left a
    0000 dir behind)."""
    reclaim = uid == os.getuid()
    stack = [str(path)]
    while stack:
        cur = stack.pop()
        is_dir = os.path.isdir(cur) and not os.path.islink(cur)
        children = [] if not is_dir or reclaim else [os.path.join(cur, n) for n in os.listdir(cur)]
        os.lchown(cur, uid, uid)
        if reclaim and not os.path.islink(cur):
            os.chmod(cur, 0o700 if is_dir else 0o600)
            if is_dir:
                children = [os.path.join(cur, n) for n in os.listdir(cur)]
        stack.extend(children)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (what a job left running, setsid'd daemons included)."""
    for _ in range(50):
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        pids.append(int(entry))
                except OSError:
                    continue
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.1)


def _reclaim_tmp(tmp: Path, uid: int) -> None:
    """Delete what the job uid left in the shared /tmp, so the next job starts clean."""
    for entry in tmp.iterdir():
        try:
            if entry.lstat().st_uid != uid:
                continue
            if entry.is_dir() and not entry.is_symlink():
                _chown_tree(entry, os.getuid())
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError:
            continue


def _run_job(job: Path, private_root: Path | None = None) -> dict[str, Any]:
    spec = json.loads((job / JOB_FILE).read_text(encoding="utf-8"))
    drop = os.geteuid() == 0  # root worker: the job runs as JOB_UID in a private copy
    warnings = [] if drop else [f"worker runs as uid {os.getuid()}, not root: the job runs as the worker's own "
                                "uid and can write to the spool"]
    private_root = private_root or Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix=f"job-{job.name}-", dir=private_root))
    for src in job.iterdir():
        if src.name in _BOOKKEEPING:
            continue
        if src.is_dir():
            shutil.copytree(src, work / src.name, symlinks=True)
        else:
            shutil.copyfile(src, work / src.name)
    env = {k: str(v) for k, v in spec.get("env", {}).items()}
    for key in ("HOME", "XDG_CACHE_HOME"):  # relative paths are relative to the job's work dir
        if key in env and not os.path.isabs(env[key]):
            env[key] = os.path.normpath(work / env[key])
    if drop:
        # Before the chown: without CAP_FOWNER only the owner may chmod. 0711: Popen's chdir into
        # it happens before the uid switch, and the worker has no CAP_DAC_OVERRIDE.
        work.chmod(0o711)
        _chown_tree(work, JOB_UID)
    timeout_s = float(spec.get("timeout_s", 3600))
    t0 = time.monotonic()
    timed_out = False
    as_job: dict[str, Any] = {"user": JOB_UID, "group": JOB_UID, "extra_groups": []} if drop else {}
    try:
        with open(job / LOG_FILE, "wb") as out:
            try:
                proc = subprocess.Popen([str(a) for a in spec["argv"]], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **as_job)
            except OSError as exc:
                return {"returncode": 127, "timed_out": False, "wall_s": 0.0, "output_tail": f"cannot start: {exc}",
                        "job_uid": JOB_UID if drop else os.getuid(), "warnings": warnings}
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                rc = -9
            finally:
                try:  # whatever the job left behind in its process group goes too
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if drop:
                    _kill_uid(JOB_UID)
                if proc.poll() is None:
                    proc.wait()
        if drop:
            _chown_tree(work, os.getuid())
        for root, _dirs, files in os.walk(work):  # never follows the job's symlinks
            for name in files:
                src = Path(root) / name
                if src.is_symlink() or not src.is_file():
                    continue
                dst = job / src.relative_to(work)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if drop:
            _reclaim_tmp(private_root, JOB_UID)
    tail = (job / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-8000:]
    return {"returncode": rc, "timed_out": timed_out, "wall_s": round(time.monotonic() - t0, 3), "output_tail": tail,
            "job_uid": JOB_UID if drop else os.getuid(), "warnings": warnings}


def worker(spool: Path, poll_s: float = 0.5, once: bool = False) -> int:
    jobs = spool / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    log.info("sandbox worker (uid %d) watching %s", os.getuid(), jobs)
    if os.geteuid() != 0:
        log.warning("not root: jobs run as uid %d, which can write to the spool; the sandbox probe will fail",
                    os.getuid())
    stop = {"now": False}
    unreadable: set[str] = set()
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    while not stop["now"]:
        ran = False
        for job in sorted(p for p in jobs.iterdir() if p.is_dir()):
            try:
                if not (job / JOB_FILE).exists() or (job / DONE_FILE).exists():
                    continue
            except PermissionError:  # a non-root worker on a root-only spool (see the module doc)
                if job.name not in unreadable:
                    unreadable.add(job.name)
                    log.error("job %s: not readable by uid %d; the worker must run as root", job.name, os.getuid())
                continue
            try:  # atomic claim: one worker per job, even if several run
                os.close(os.open(job / CLAIMED_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except OSError:
                continue
            try:
                answer = _run_job(job)
            except Exception as exc:  # a broken job must not take the worker down
                answer = {"returncode": 126, "timed_out": False, "wall_s": 0.0,
                          "output_tail": f"sandbox worker could not run the job: {type(exc).__name__}: {exc}"}
            answer.update({"schema_version": SCHEMA_VERSION, "finished": utc_now(), "uid": os.getuid()})
            atomic_write_json(job / DONE_FILE, answer)
            log.info("job %s: rc=%s timed_out=%s %.1fs", job.name, answer["returncode"], answer["timed_out"],
                     answer["wall_s"])
            ran = True
        if once:
            return 0
        if not ran:
            time.sleep(poll_s)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.sandbox_spool", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="run jobs from the spool (inside the sandbox container)")
    w.add_argument("--spool", type=Path, default=spool_dir() or Path("/spool"))
    w.add_argument("--once", action="store_true", help="run what is queued, then exit")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s sandbox: %(message)s")
    return worker(args.spool, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
