"""Container sandbox for generated code: a job spool shared with the compose `sandbox` service.

Why a spool: the `sandbox` container has no network at all (`network_mode: none`), so it cannot be
called over HTTP, and giving the harness container the Docker socket (to start one-off containers)
would hand it root on the host. Instead the two containers share one volume, `/spool`, and nothing
else: the harness writes a job (a work dir + `job.json`), the sandbox worker runs it and writes
`done.json`. The sandbox sees neither results, nor data, nor models, nor any token.

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
import time
import uuid
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.io import atomic_write_json, utc_now

log = logging.getLogger(__name__)

SPOOL_ENV = "HARNESS_SANDBOX_SPOOL"
SANDBOX_UID = 10001  # the `sandbox` user of docker/harness.Dockerfile
JOB_FILE, CLAIMED_FILE, DONE_FILE, LOG_FILE = "job.json", "job.claimed", "done.json", "job.log"
_BOOKKEEPING = {JOB_FILE, CLAIMED_FILE, DONE_FILE, LOG_FILE}


class SpoolError(RuntimeError):
    """The sandbox worker did not answer (not running, crashed, or timed out)."""


def spool_dir() -> Path | None:
    value = os.environ.get(SPOOL_ENV)
    return Path(value) if value else None


def _hand_over(path: Path) -> None:
    """Make the job dir writable by the sandbox user (and only by it when we can chown)."""
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files, None]:
            target = Path(root) if name is None else Path(root) / name
            if os.geteuid() == 0:
                os.chown(target, SANDBOX_UID, SANDBOX_UID)
            else:
                target.chmod(0o777 if target.is_dir() else 0o666)


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
    _hand_over(job)
    # job.json last (renamed into place, readable by the sandbox user): the worker takes only
    # complete jobs whose files the sandbox user can already write to.
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
    iso = Isolation(mode="container", network="none", pid_namespace=True, private_tmp=True,
                    user=f"uid {answer.get('uid', SANDBOX_UID)}",
                    rlimits={"wall_timeout_s": float(timeout_s)},
                    warnings=list(answer.get("warnings", [])))
    return SandboxResult(int(answer["returncode"]), bool(answer["timed_out"]), float(answer["wall_s"]),
                         str(answer.get("output_tail", "")), iso)


# --------------------------------------------------------------------------------------------
# Worker (runs inside the sandbox container)


def _run_job(job: Path) -> dict[str, Any]:
    spec = json.loads((job / JOB_FILE).read_text(encoding="utf-8"))
    env = {k: str(v) for k, v in spec.get("env", {}).items()}
    for key in ("HOME", "XDG_CACHE_HOME"):  # relative paths are relative to the job dir
        if key in env and not os.path.isabs(env[key]):
            env[key] = str((job / env[key]).resolve())
    timeout_s = float(spec.get("timeout_s", 3600))
    t0 = time.monotonic()
    timed_out = False
    with open(job / LOG_FILE, "wb") as out:
        try:
            proc = subprocess.Popen([str(a) for a in spec["argv"]], cwd=job, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            return {"returncode": 127, "timed_out": False, "wall_s": 0.0, "output_tail": f"cannot start: {exc}"}
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
            if proc.poll() is None:
                proc.wait()
    tail = (job / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-8000:]
    return {"returncode": rc, "timed_out": timed_out, "wall_s": round(time.monotonic() - t0, 3), "output_tail": tail}


def worker(spool: Path, poll_s: float = 0.5, once: bool = False) -> int:
    jobs = spool / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    log.info("sandbox worker (uid %d) watching %s", os.getuid(), jobs)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    while not stop["now"]:
        ran = False
        for job in sorted(p for p in jobs.iterdir() if p.is_dir()):
            if not (job / JOB_FILE).exists() or (job / DONE_FILE).exists():
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
