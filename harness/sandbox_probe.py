"""Measure the sandbox from inside before any generated code is scored.

The sandbox (harness/sandbox.py natively, the compose `sandbox` service through the spool) is
described by what it is configured to do; this module checks what it actually does, by running a
small probe as the generated code would run (same launcher, same user, same environment):

1. network: the harness opens a TCP listener on its own loopback (and checks that it can connect to
   it itself); the probe tries to connect to it, and to the proxy when one is given. Every attempt
   must fail and the listener must see no connection.
2. root: the probe's effective uid, mapped through /proc/self/uid_map to the parent user
   namespace, must not be 0. uid 0 inside an unprivileged user namespace mapped to a non-root
   user is not root on the host.
3. writes: the probe tries to create files outside its work dir: in a world-writable canary dir
   the harness creates next to the results (so that only the sandbox, not file permissions, can
   stop the write), in the run directory, in the harness code dir (native); in the spool, its
   jobs dir and / (compose). Every attempt must fail, and the harness checks from outside that
   nothing appeared. As a control, the probe must be able to write its own work dir and $TMPDIR.

Run without any sandbox (`mode="none"`, what tests do) the same probe connects, and as root it
writes everywhere: the probe can fail.

`check_sandbox` runs the probe for a run, writes `<run>/sandbox.json` (schema below), copies it
into `manifest.json` under `sandbox`, and raises SandboxProbeError when a check failed, unless
unisolated execution was explicitly allowed (then the failures are recorded and scoring goes on).

The inside part (`python -m harness.sandbox_probe inside ...`) imports only the standard library.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

PROBE_OUT = "probe.json"
RECORD_FILE = "sandbox.json"
PROBE_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------------
# Inside the sandbox


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _connect(target: str) -> dict[str, Any]:
    host, _, port = target.rpartition(":")
    out: dict[str, Any] = {"target": target, "connected": False, "error": None}
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            out["connected"] = True
            s.sendall(b"sandbox-probe\n")
    except OSError as exc:
        out["error"] = _err(exc)
    return out


def _host_uid(uid: int, uid_map: str) -> int | None:
    """`uid` seen from the parent user namespace (None: unmapped, i.e. the overflow uid)."""
    for line in uid_map.splitlines():
        parts = line.split()
        if len(parts) == 3:
            inside, outside, count = map(int, parts)
            if inside <= uid < inside + count:
                return outside + (uid - inside)
    return None


def _identity() -> dict[str, Any]:
    uid_map = Path("/proc/self/uid_map").read_text(encoding="utf-8")
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    euid = os.geteuid()
    host_uid = _host_uid(euid, uid_map)
    return {
        "uid": os.getuid(), "euid": euid, "gid": os.getgid(), "groups": os.getgroups(),
        "uid_map": [" ".join(line.split()) for line in uid_map.splitlines()],
        "user_namespace": [" ".join(line.split()) for line in uid_map.splitlines()] != ["0 0 4294967295"],
        "host_uid": host_uid,
        "cap_eff": status.get("CapEff", "").strip(),
        "no_new_privs": status.get("NoNewPrivs", "").strip() == "1",
        "root_on_host": host_uid == 0,
    }


def _write(path: str) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "written": False, "error": None, "errno": None}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"written from inside the sandbox\n")
        finally:
            os.close(fd)
        out["written"] = True
    except OSError as exc:
        out["error"] = _err(exc)
        out["errno"] = errno.errorcode.get(exc.errno or 0)
    return out


def inside_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.sandbox_probe inside")
    p.add_argument("--out", default=PROBE_OUT, help="result file, relative to the work dir")
    p.add_argument("--connect", action="append", default=[], help="HOST:PORT that must be unreachable")
    p.add_argument("--write", action="append", default=[], help="a file that must not be creatable")
    p.add_argument("--visible", action="append", default=[], help="a file the harness made: can we see it?")
    args = p.parse_args(argv)
    tmp_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"sandbox-probe-{uuid.uuid4().hex}")  # noqa: S108 - the probe's own tmp
    result = {
        "network": [_connect(t) for t in args.connect],
        "identity": _identity(),
        "writes_outside": [_write(w) for w in args.write],
        "visible": {v: os.path.exists(v) for v in args.visible},
        # Controls: the sandbox must still let the code use its own work dir and tmp.
        "writes_inside": [_write(f"inside-{uuid.uuid4().hex}.txt"), _write(tmp_file)],
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


# --------------------------------------------------------------------------------------------
# Harness side


class SandboxProbeError(RuntimeError):
    """The probe found the sandbox leaking (or could not run it) and unisolated runs were not allowed."""


def _listener() -> socket.socket:
    """A loopback listener the harness itself can reach (checked), so that failing to reach it means isolation."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with socket.create_connection(srv.getsockname(), timeout=5):
        conn, _ = srv.accept()
        conn.close()
    srv.setblocking(False)
    return srv


def _connections_seen(srv: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = srv.accept()
        except (BlockingIOError, InterruptedError):
            return n
        conn.close()
        n += 1


def _proxy_target(proxy_url: str | None) -> str | None:
    if not proxy_url:
        return None
    from urllib.parse import urlsplit

    u = urlsplit(proxy_url)
    if not u.hostname:
        return None
    return f"{u.hostname}:{u.port or (443 if u.scheme == 'https' else 80)}"


def _write_targets(mode: str, canary: Path, run_dir: Path) -> list[str]:
    """Places outside the sandbox's work dir the probe tries to write to (see the module doc)."""
    tag = uuid.uuid4().hex[:12]
    targets = [str(canary / "written-by-sandbox.txt")]
    if mode == "container":
        spool = canary.parent
        targets += [str(spool / f"sandbox-probe-{tag}.txt"), str(spool / "jobs" / f"sandbox-probe-{tag}.txt"),
                    f"/sandbox-probe-{tag}.txt"]
    else:
        from harness.sandbox import REPO_ROOT

        targets += [str(run_dir / f".sandbox-probe-{tag}.txt"), str(REPO_ROOT / f".sandbox-probe-{tag}.txt")]
    return targets


def run_probe(run_dir: Path, *, mode: str | None = None, allow_unisolated: bool = False,
              proxy_url: str | None = None, limits: Any = None, work_root: Path | None = None) -> dict[str, Any]:
    """Run the probe in the sandbox `mode` would use (default: what scoring uses); returns the record.

    `mode`: "native" (harness/sandbox.py), "container" (the compose spool), or "none" (a plain
    subprocess: the control that shows the probe can fail). Never raises for a leaking sandbox:
    the record says what failed (see `check_sandbox`)."""
    import shutil
    import subprocess

    from harness import SCHEMA_VERSION
    from harness.io import utc_now
    from harness.sandbox import Isolation, SandboxLimits, SandboxUnavailable, run_in_sandbox, sandbox_env, sandbox_mode
    from harness.sandbox_spool import spool_dir

    mode = mode or sandbox_mode()
    limits = limits or SandboxLimits(wall_timeout_s=PROBE_TIMEOUT_S)
    run_dir = Path(run_dir).resolve()
    record: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "measured": utc_now(), "mode": mode,
                              "allow_unisolated": bool(allow_unisolated)}
    canary_parent = spool_dir() if mode == "container" else run_dir
    if canary_parent is None:
        raise SandboxProbeError("container mode needs $HARNESS_SANDBOX_SPOOL (the job spool shared with `sandbox`)")
    canary_parent.mkdir(parents=True, exist_ok=True)
    canary = Path(tempfile.mkdtemp(prefix=".sandbox-probe-", dir=canary_parent))
    canary.chmod(0o777)  # world-writable: only the sandbox, not permissions, may stop a write
    marker = canary / "visible"
    marker.write_text("made by the harness\n")
    marker.chmod(0o644)
    targets = _write_targets(mode, canary, run_dir)
    srv = _listener()
    connect = [f"127.0.0.1:{srv.getsockname()[1]}"] + ([t] if (t := _proxy_target(proxy_url)) else [])
    inner = [sys.executable, "-m", "harness.sandbox_probe", "inside", "--out", PROBE_OUT, "--visible", str(marker)]
    for c in connect:
        inner += ["--connect", c]
    for w in targets:
        inner += ["--write", w]
    work = Path(tempfile.mkdtemp(prefix="harness-probe-", dir=work_root))
    failures: list[str] = []
    inside: dict[str, Any] | None = None
    try:
        try:
            if mode == "none":
                proc = subprocess.run(inner, cwd=work, env=sandbox_env(limits, home=str(work)), timeout=PROBE_TIMEOUT_S,
                                      stdin=subprocess.DEVNULL, capture_output=True, text=True)
                record["isolation"] = Isolation(mode="none").to_dict()
                rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
            else:
                res = run_in_sandbox(work, inner, limits, mode=mode, allow_unisolated=allow_unisolated,
                                     timeout_s=PROBE_TIMEOUT_S)
                record["isolation"] = res.isolation.to_dict()
                rc, tail = res.returncode, res.output_tail[-3000:]
            record["returncode"] = rc
            if (work / PROBE_OUT).is_file():
                inside = json.loads((work / PROBE_OUT).read_text(encoding="utf-8"))
            else:
                failures.append(f"the probe wrote no result (rc={rc}): {tail.strip()[-500:]}")
        except SandboxUnavailable as exc:
            failures.append(str(exc))
            record["isolation"] = None
        except Exception as exc:  # noqa: BLE001 - a sandbox that cannot run the probe fails it
            failures.append(f"the probe could not run: {_err(exc)}")
            record["isolation"] = None
        seen = _connections_seen(srv)
        appeared = sorted(p.name for p in canary.iterdir() if p.name != "visible")
        appeared += [t for t in targets[1:] if os.path.lexists(t)]
    finally:
        srv.close()
        for t in targets[1:]:
            if os.path.lexists(t) and not os.path.isdir(t):
                os.unlink(t)
        shutil.rmtree(canary, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        (work.parent / f"{work.name}.log").unlink(missing_ok=True)

    checks: dict[str, Any] = {}
    if inside is not None:
        net = inside["network"]
        net_ok = not any(n["connected"] for n in net) and seen == 0
        checks["network"] = {"passed": net_ok, "attempts": [{"target": "harness loopback listener" if i == 0 else "proxy",
                                                             "connected": n["connected"], "error": n["error"]}
                                                            for i, n in enumerate(net)],
                             "listener_connections_seen": seen}
        if not net_ok:
            failures.append("network: the sandboxed code reached " + ", ".join(
                ("the harness's loopback listener" if i == 0 else "the proxy")
                for i, n in enumerate(net) if n["connected"]) + (f" ({seen} connection(s) seen)" if seen else ""))
        ident = inside["identity"]
        checks["root"] = {"passed": not ident["root_on_host"], **ident}
        if ident["root_on_host"]:
            failures.append(f"root: the sandboxed code runs as uid {ident['euid']}, which is uid 0 outside "
                            f"(uid_map {'; '.join(ident['uid_map'])})")
        written = [w for w in inside["writes_outside"] if w["written"]]
        wr_ok = not written and not appeared
        checks["writes"] = {"passed": wr_ok, "attempts": len(inside["writes_outside"]),
                            "written": len(written), "appeared_outside": len(appeared),
                            "errors": sorted({w.get("errno") or "?" for w in inside["writes_outside"] if w["error"]}),
                            "canary_visible": any(inside["visible"].values()),
                            "inside_ok": all(w["written"] for w in inside["writes_inside"])}
        if not wr_ok:
            failures.append(f"writes: the sandboxed code wrote {max(len(written), len(appeared))} file(s) outside its work dir")
        if not checks["writes"]["inside_ok"]:
            failures.append("control: the sandboxed code could not write its own work dir or $TMPDIR: "
                            + "; ".join(w["error"] or "" for w in inside["writes_inside"] if not w["written"]))
    record["checks"] = checks
    record["failures"] = failures
    record["passed"] = not failures
    return record


def check_sandbox(run_dir: Path, *, allow_unisolated: bool, allowed_by: str | None = None,
                  proxy_url: str | None = None, mode: str | None = None) -> dict[str, Any]:
    """Probe, record (`<run>/sandbox.json` + manifest.json `sandbox`), and stop on failure unless allowed."""
    import logging

    from harness.io import atomic_write_json

    log = logging.getLogger(__name__)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = run_probe(run_dir, mode=mode, allow_unisolated=allow_unisolated, proxy_url=proxy_url)
    record["allowed_by"] = allowed_by if allow_unisolated else None
    record["scoring"] = "allowed" if record["passed"] else ("allowed unisolated" if allow_unisolated else "refused")
    atomic_write_json(run_dir / RECORD_FILE, record)
    record_in_manifest(run_dir, record)
    if record["passed"]:
        log.info("sandbox probe (%s): passed", record["mode"])
        return record
    what = "; ".join(record["failures"])
    if allow_unisolated:
        log.warning("sandbox probe (%s) FAILED, scoring anyway (unisolated execution allowed by %s): %s",
                    record["mode"], allowed_by or "the caller", what)
        return record
    from harness.sandbox import UNSAFE_FLAG

    raise SandboxProbeError(
        f"sandbox probe ({record['mode']}) failed, so no generated code is run or scored: {what}. "
        f"Measured: {run_dir / RECORD_FILE}. To run it unisolated anyway (never on a machine you care about): "
        f"`harness eval {UNSAFE_FLAG}` or config `sandbox: {{allow_unisolated: true}}`")


def record_in_manifest(run_dir: Path, record: dict[str, Any]) -> None:
    """Put the probe record into `manifest.json` (when the run has one) under `sandbox`."""
    from harness.io import atomic_write_json

    manifest = Path(run_dir) / "manifest.json"
    if not manifest.is_file():
        return
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError:
        return  # analyze reports an unreadable manifest; do not overwrite it
    data["sandbox"] = record
    atomic_write_json(manifest, data)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inside"]:
        return inside_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m harness.sandbox_probe",
                                 description="probe the sandbox generated code runs in; prints the record")
    ap.add_argument("--run", type=Path, default=Path.cwd(), help="run dir: the canary goes there (default: the current dir)")
    ap.add_argument("--mode", choices=("native", "container", "none"), default=None)
    args = ap.parse_args(argv)
    record = run_probe(args.run, mode=args.mode)
    print(json.dumps(record, indent=2))
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
