"""Hostile generated code fails on its own, inside the sandbox, without harming the run or the host.

One evalplus evaluation holds the canonical solution of every fixture task plus hostile samples for
HumanEval/23 (strlen): each hostile sample computes the right answer *and* misbehaves (opens a
socket to a listener on the host, writes outside its temp dir, fork-bombs, allocates without bound,
loops forever). Expected: every hostile sample fails, every canonical sample still passes, the
listener saw no connection, no file appeared outside, and no stray process survives.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

import psutil
import pytest

from harness.runners.evalplus_eval import evaluate_in_sandbox
from harness.sandbox import SandboxLimits, build_native_command, probe_unshare

FIXTURE = Path(__file__).parent / "fixtures" / "data" / "humaneval_plus.jsonl"

STRLEN = "def strlen(string: str) -> int:\n"


def _canonical() -> list[dict]:
    rows = [json.loads(line) for line in FIXTURE.open()]
    return [{"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]} for r in rows]


def _hostile(port: int, host_file: Path, tmp_marker: Path) -> dict[str, str]:
    return {
        "socket": STRLEN + (
            "    import socket\n"
            f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    s.sendall(b'leak')\n"
            "    return len(string)\n"),
        "write_outside": STRLEN + (
            "    import os\n"
            f"    fd = os.open({str(tmp_marker)!r}, os.O_CREAT | os.O_WRONLY)\n"
            "    os.write(fd, b'x')\n"
            f"    fd = os.open({str(host_file)!r}, os.O_CREAT | os.O_WRONLY)\n"
            "    os.write(fd, b'x')\n"
            "    return len(string)\n"),
        # os.fork is nulled by evalplus' guard; a real bomb goes around it.
        "fork_bomb": STRLEN + (
            "    import ctypes\n"
            "    libc = ctypes.CDLL(None)\n"
            "    while True:\n"
            "        libc.fork()\n"
            "    return len(string)\n"),
        "memory": STRLEN + (
            "    hoard = []\n"
            "    while True:\n"
            "        hoard.append(bytearray(64 * 1024 * 1024))\n"
            "    return len(string)\n"),
        "loop_in_call": STRLEN + (
            "    while True:\n"
            "        pass\n"
            "    return len(string)\n"),
        "loop_at_import": "while True:\n    pass\n\n" + STRLEN + "    return len(string)\n",
    }


@pytest.fixture()
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def test_native_isolation_available_here() -> None:
    """DESIGN §4: network namespaces work on these machines; a silent fallback must not pass CI."""
    assert probe_unshare() is not None, "unshare --net unavailable: the sandbox would run without network isolation"
    cmd = build_native_command(["true"], Path.cwd())
    assert cmd.isolation.network == "netns" and cmd.isolation.pid_namespace and cmd.isolation.private_tmp
    assert cmd.isolation.readonly_fs and "--readonly-root" in cmd.argv
    if os.geteuid() == 0:
        assert cmd.isolation.user.startswith("uid ")
    # No secret from the caller's environment reaches the sandbox.
    assert set(cmd.env) >= {"PATH", "HOME"} and "HF_TOKEN" not in cmd.env


@pytest.fixture()
def host_dir() -> Path:
    """World-writable and outside /tmp (which the sandbox over-mounts): only the read-only mounts stop a write."""
    from harness.sandbox import REPO_ROOT

    path = REPO_ROOT / ".cache" / f"test-hostile-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    path.chmod(0o777)
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_hostile_samples_fail_alone(tmp_path: Path, listener: socket.socket, host_dir: Path) -> None:
    host_file = host_dir / "pwned.txt"
    tmp_marker = Path("/tmp") / f"harness-hostile-{uuid.uuid4().hex}"
    port = listener.getsockname()[1]
    hostile = _hostile(port, host_file, tmp_marker)
    samples = _canonical() + [{"task_id": "HumanEval/23", "solution": code} for code in hostile.values()]
    sample_file = tmp_path / "samples_as_recorded.jsonl"
    sample_file.write_text("".join(json.dumps(s) + "\n" for s in samples))
    before = {p.pid for p in psutil.process_iter()}

    limits = SandboxLimits(wall_timeout_s=240, sample_memory_bytes=1024**3, sample_nproc_headroom=8)
    info = evaluate_in_sandbox(sample_file, FIXTURE, limits=limits, parallel=2, min_time_limit=2.0)

    results = json.loads(Path(info["results"]).read_text())["eval"]
    statuses = {tid: [(r["base_status"], r["plus_status"]) for r in rs] for tid, rs in results.items()}
    for tid, rows in statuses.items():
        assert rows[0] == ("pass", "pass"), f"canonical {tid} harmed by hostile samples: {rows[0]}"
    strlen_rows = statuses["HumanEval/23"][1:]
    assert len(strlen_rows) == len(hostile)
    for name, (base, _plus) in zip(hostile, strlen_rows, strict=False):
        assert base != "pass", f"hostile sample {name!r} passed"

    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected
    assert not host_file.exists()
    assert not tmp_marker.exists()
    assert info["isolation"]["network"] == "netns"
    # Nothing the samples started is still alive on the host.
    leftovers = [p for p in psutil.process_iter(["pid", "cmdline", "uids"])
                 if p.pid not in before and p.info["uids"] and p.info["uids"].real == 61000]
    assert not leftovers, leftovers


def test_wall_timeout_kills_the_whole_tree(tmp_path: Path) -> None:
    """A sandboxed command that outlives its wall clock is killed, children included."""
    from harness.sandbox import prepare_work_dir, run_sandboxed, sandbox_uid_of

    work = tmp_path / "work"
    work.mkdir()
    script = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    import sys

    cmd = build_native_command([sys.executable, "-c", script], work, SandboxLimits(wall_timeout_s=3))
    prepare_work_dir(work, sandbox_uid_of(cmd))
    started = time.time() - 1
    res = run_sandboxed(cmd, timeout_s=3)
    assert res.timed_out and res.wall_s < 30

    def sleepers() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline", "create_time"])
                if p.info["cmdline"] == ["sleep", "300"] and (p.info["create_time"] or 0) >= started]

    deadline = time.monotonic() + 10  # the kernel reaps a dead pid namespace asynchronously
    while sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sleepers()
