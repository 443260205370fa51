"""The sandbox fails closed, and its isolation is measured, not assumed (harness/sandbox_probe.py).

- The probe run without any sandbox reaches the harness's loopback listener, and as root writes
  outside its work dir: it can fail. The same probe in the native sandbox passes, with the
  world-writable canary in sight (refused by the read-only mounts, not by file permissions).
- Namespaces unavailable, simulated by putting first on PATH an `unshare` that fails the way it
  does in an unprivileged container ("unshare failed: Operation not permitted", exit 1): the
  capability check (`probe_unshare`) then finds no namespace. Scoring refuses, the probe record
  says "refused"; with the explicit flag it scores and the record, the manifest and the report say so.
- Compose path, through the real spool worker: a worker with no container around it fails the
  probe (it reaches the loopback); the same worker inside a stand-in for the `sandbox` container
  (network namespace, everything read-only except the spool, private /tmp: harness.sandbox's own
  launcher) passes it, its jobs running as uid 10001 and unable to write the root-only spool.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness.runners.evalplus_eval import evaluate_in_sandbox
from harness.sandbox import (
    REPO_ROOT,
    SandboxUnavailable,
    _code_paths,
    _under_private_tmp,
    build_native_command,
    probe_unshare,
)
from harness.sandbox_probe import RECORD_FILE, SandboxProbeError, check_sandbox, run_probe

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "data" / "humaneval_plus.jsonl"
ROOT = os.geteuid() == 0


def _others_can_import(path: Path) -> bool:
    """Whether another uid can reach the checkout (every folder above it o+x): not under `mktemp -d` (0700)."""
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


@pytest.fixture()
def run_dir() -> Path:
    """A run dir outside /tmp (which the sandbox over-mounts), so the canary is in the sandbox's sight."""
    path = REPO_ROOT / ".cache" / f"test-sandbox-probe-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def no_namespaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert probe_unshare() is None
    return fake


def _leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir()) + sorted(p.name for p in REPO_ROOT.glob(".sandbox-probe-*"))


def test_probe_fails_without_a_sandbox(run_dir: Path) -> None:
    rec = run_probe(run_dir, mode="none")
    assert rec["passed"] is False
    net = rec["checks"]["network"]
    assert net["attempts"][0]["connected"] is True and net["listener_connections_seen"] == 1
    if ROOT:
        assert rec["checks"]["root"]["root_on_host"] is True and rec["checks"]["root"]["passed"] is False
        assert rec["checks"]["writes"]["written"] >= 1 and rec["checks"]["writes"]["appeared_outside"] >= 1
    assert _leftovers(run_dir) == []  # the harness cleans up what the probe wrote


def test_probe_passes_in_the_native_sandbox(run_dir: Path) -> None:
    rec = run_probe(run_dir, mode="native")
    assert rec["passed"] is True, rec["failures"]
    assert rec["isolation"]["network"] == "netns" and rec["isolation"]["readonly_fs"] is True
    net = rec["checks"]["network"]
    assert net["attempts"][0]["connected"] is False and net["listener_connections_seen"] == 0
    assert "unreachable" in net["attempts"][0]["error"]
    assert rec["checks"]["root"]["root_on_host"] is False and rec["checks"]["root"]["host_uid"] != 0
    w = rec["checks"]["writes"]
    assert w["written"] == 0 and w["appeared_outside"] == 0 and w["inside_ok"]
    # The world-writable canary was visible: the write failed on the read-only mount, not for want of a path.
    assert w["canary_visible"] is True and "EROFS" in w["errors"]
    assert _leftovers(run_dir) == []


def test_isolation_unavailable_refuses_unless_allowed(run_dir: Path, no_namespaces: Path, tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="--unsafe-allow-unsandboxed-code"):
        build_native_command(["true"], tmp_path)
    samples = tmp_path / "samples.jsonl"
    rows = [json.loads(line) for line in FIXTURE.open()]
    samples.write_text("".join(json.dumps({"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]}) + "\n"
                               for r in rows))
    with pytest.raises(SandboxUnavailable):
        evaluate_in_sandbox(samples, FIXTURE)
    assert not (tmp_path / "samples_eval_results.json").exists()

    (run_dir / "manifest.json").write_text(json.dumps({"schema_version": 1, "harness": {"version": "x"}}))
    with pytest.raises(SandboxProbeError, match="sandbox probe \\(native\\) failed.*namespaces"):
        check_sandbox(run_dir, allow_unisolated=False)
    rec = json.loads((run_dir / RECORD_FILE).read_text())
    assert rec["scoring"] == "refused" and rec["passed"] is False and rec["schema_version"] == 1
    assert rec["measured"].endswith("Z")
    assert json.loads((run_dir / "manifest.json").read_text())["sandbox"] == rec

    # Explicitly allowed: the probe runs unisolated (and fails), scoring goes on, everything says so.
    rec = check_sandbox(run_dir, allow_unisolated=True, allowed_by="cli --unsafe-allow-unsandboxed-code")
    assert rec["passed"] is False and rec["scoring"] == "allowed unisolated"
    assert rec["isolation"]["network"] == "host" and rec["checks"]["network"]["passed"] is False
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["sandbox"]["allow_unisolated"] is True
    info = evaluate_in_sandbox(samples, FIXTURE, allow_unisolated=True, min_time_limit=2.0)
    assert info["isolation"]["network"] == "host" and info["isolation"]["warnings"]
    results = json.loads(Path(info["results"]).read_text())["eval"]
    assert all(r[0]["base_status"] == "pass" for r in results.values())

    summary = {"benchmarks": {}, "validity": {"per_model_benchmark": [], "protocol_comparison": []}, "provenance": manifest, "candidate": "a", "baseline": "b"}
    text = _render_validity(summary)
    assert "Unisolated execution of generated code was explicitly allowed" in text
    assert "cli --unsafe-allow-unsandboxed-code" in text and "network FAIL" in text
    assert str(run_dir) not in text and "/tmp" not in text


def test_report_states_the_probe_and_its_absence() -> None:
    ok = {"mode": "native", "measured": "2026-01-01T00:00:00Z", "passed": True, "allow_unisolated": False,
          "checks": {k: {"passed": True} for k in ("network", "root", "writes")}, "failures": []}
    text = _render_validity({"benchmarks": {}, "validity": {"per_model_benchmark": [], "protocol_comparison": []}, "provenance": {"sandbox": ok}})
    assert "Sandbox (native, probed 2026-01-01T00:00:00Z): network pass, not root on the host pass" in text
    assert "explicitly allowed" not in text
    text = _render_validity({"benchmarks": {"humaneval_plus": {}}, "validity": {"per_model_benchmark": [], "protocol_comparison": []}, "provenance": {}})
    assert "No probe recorded" in text


def _render_validity(summary: dict) -> str:
    from harness.report.render import Report  # its validity appendix only: the rest needs a full summary

    r = Report({"candidate": "a", "baseline": "b", **summary}, {})
    r.sec_validity()
    return "\n".join(r.parts)


# --------------------------------------------------------------------------------------------
# Compose path: the spool worker


@pytest.fixture()
def spool(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = run_dir / "spool"
    (path / "jobs").mkdir(parents=True)
    path.chmod(0o700)  # as compose's spool-init leaves it: root only
    (path / "jobs").chmod(0o700)
    monkeypatch.setenv("HARNESS_SANDBOX_SPOOL", str(path))
    # The job runs as uid 10001, which cannot read root's interpreter under /root: a system Python
    # (the probe needs only the standard library).
    monkeypatch.setenv("HARNESS_SANDBOX_PYTHON", "/usr/bin/python3")
    return path


def _start_worker(spool: Path, contained: bool) -> subprocess.Popen:
    worker = [sys.executable, "-m", "harness.sandbox_spool", "worker", "--spool", str(spool)]
    if contained:
        # Stand-in for the `sandbox` container: netns, read-only but the spool, private /tmp, and
        # (setpriv) exactly compose's capabilities: CHOWN, SETUID, SETGID, KILL, no-new-privileges.
        # A checkout or venv under /tmp (CI clones anywhere) is bound back over the private /tmp,
        # as the native sandbox does; in the real container the code lives in the image.
        expose = [f"--expose={p}" for p in _under_private_tmp(_code_paths())]
        worker = [*probe_unshare(), sys.executable, "-m", "harness.sandbox", "--workdir", str(spool),
                  "--readonly-root", "--tmpfs=/tmp", "--tmpfs=/dev/shm", *expose, "--",
                  "setpriv", "--bounding-set=-all,+chown,+setuid,+setgid,+kill", "--no-new-privs", *worker]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.skipif(not ROOT or not Path("/usr/bin/python3").exists() or not shutil.which("setpriv"),
                    reason="the spool worker drops to uid 10001 only as root")
@pytest.mark.skipif(not _others_can_import(REPO_ROOT), reason="another uid cannot reach this checkout (a 0700 folder above it)")
def test_compose_path_probe_fails_without_container_and_passes_with(run_dir: Path, spool: Path) -> None:
    proc = _start_worker(spool, contained=False)
    try:
        rec = run_probe(run_dir, mode="container")
    finally:
        _stop(proc)
    assert rec["passed"] is False and rec["checks"]["network"]["passed"] is False, rec
    assert rec["checks"]["root"]["host_uid"] == 10001  # the worker dropped to the job uid all the same

    proc = _start_worker(spool, contained=True)
    try:
        t0 = time.monotonic()
        rec = run_probe(run_dir, mode="container")
    finally:
        _stop(proc)
    assert rec["passed"] is True, rec["failures"]
    assert rec["checks"]["root"]["host_uid"] == 10001 and rec["checks"]["root"]["cap_eff"] == "0000000000000000"
    assert rec["checks"]["writes"]["written"] == 0 and rec["checks"]["writes"]["attempts"] >= 4
    assert time.monotonic() - t0 < 60
    assert list((spool / "jobs").iterdir()) == []


@pytest.mark.skipif(not ROOT or not Path("/usr/bin/python3").exists() or not shutil.which("setpriv"),
                    reason="needs root to start the harness as an unprivileged user")
@pytest.mark.skipif(not _others_can_import(REPO_ROOT), reason="another uid cannot reach this checkout (a 0700 folder above it)")
def test_probe_passes_for_an_unprivileged_caller(run_dir: Path) -> None:
    """Not root: the sandbox is a user namespace whose uid 0 maps to the caller: not root on the host."""
    run_dir.chmod(0o777)
    home = run_dir / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    proc = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
                           "/usr/bin/python3", "-m", "harness.sandbox_probe", "--mode", "native", "--run", str(run_dir)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(REPO_ROOT),
                               "TMPDIR": str(home)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rec = json.loads(proc.stdout)
    assert rec["isolation"]["user"] == "userns-root" and rec["passed"] is True
    root = rec["checks"]["root"]
    assert root["euid"] == 0 and root["uid_map"] == ["0 1000 1"] and root["host_uid"] == 1000
    assert root["root_on_host"] is False
    assert rec["checks"]["writes"]["canary_visible"] is True and "EROFS" in rec["checks"]["writes"]["errors"]
