"""Run one GitHub Actions job's `run:` steps here, in order, the way a Linux runner would.

    python3 .ci/workflow_local.py .github/workflows/demo-compose.yml [--sentinel HF_TOKEN] [--dry-run]

The steps are read from the workflow file itself, so what runs here cannot drift from what the runner
runs. Runner semantics kept: `bash --noprofile --norc -eo pipefail`, workflow + job + step `env`,
`working-directory`, `timeout-minutes`, `if: always()` steps run after a failure, other steps are
skipped after one. `uses:` steps are not run: checkout is this working tree, and for
actions/upload-artifact the files its `path:` patterns select are listed (the action's rules:
glob patterns, `!` excludes, a matched folder brings everything under it, hidden files left out).

Expressions: only `${{ env.NAME }}` is understood (in env values and upload paths); any other
`${{ ... }}` in a step that runs here stops the script, so an unsupported construct cannot be
silently mis-run.

--sentinel NAME sets $NAME to a random value for every step, then searches each uploaded file for it;
finding it anywhere fails the run (exit 3). Exit 1 when a step failed, 2 on a workflow this script
cannot run.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
ENV_REF = re.compile(r"env\.([A-Za-z_][A-Za-z0-9_]*)")


class Unsupported(Exception):
    """The workflow uses something this script does not emulate."""


@dataclass
class Step:
    name: str
    run: str | None = None
    uses: str | None = None
    cond: str = "success()"
    env: dict[str, str] = field(default_factory=dict)
    with_: dict[str, object] = field(default_factory=dict)
    working_directory: str | None = None
    timeout_s: float | None = None


def substitute(text: str, env: dict[str, str], where: str) -> str:
    """Replace `${{ env.NAME }}`; anything else is Unsupported (naming where it was found)."""

    def one(m: re.Match[str]) -> str:
        ref = ENV_REF.fullmatch(m.group(1))
        if not ref:
            raise Unsupported(f"{where}: expression ${{{{ {m.group(1)} }}}} is not emulated")
        return env.get(ref.group(1), "")

    return EXPR.sub(one, text)


def load_job(workflow: Path, job_id: str | None) -> tuple[str, dict[str, str], list[Step]]:
    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    jobs = doc.get("jobs") or {}
    if job_id is None:
        if len(jobs) != 1:
            raise Unsupported(f"{workflow}: {len(jobs)} jobs, name one with --job ({', '.join(jobs)})")
        job_id = next(iter(jobs))
    if job_id not in jobs:
        raise Unsupported(f"{workflow}: no job {job_id!r}")
    job = jobs[job_id]
    env: dict[str, str] = {}
    for scope, values in (("env", doc.get("env") or {}), (f"jobs.{job_id}.env", job.get("env") or {})):
        for k, v in values.items():
            env[k] = substitute(str(v), env, f"{scope}.{k}")
    steps = []
    for i, raw in enumerate(job.get("steps") or []):
        name = raw.get("name") or raw.get("run", raw.get("uses", f"step {i + 1}")).splitlines()[0]
        cond = str(raw.get("if", "success()")).strip()
        cond = EXPR.fullmatch(cond).group(1) if EXPR.fullmatch(cond) else cond
        minutes = raw.get("timeout-minutes")
        steps.append(Step(name=name, run=raw.get("run"), uses=raw.get("uses"), cond=cond,
                          env={str(k): str(v) for k, v in (raw.get("env") or {}).items()},
                          with_=dict(raw.get("with") or {}), working_directory=raw.get("working-directory"),
                          timeout_s=float(minutes) * 60 if minutes is not None else None))
    return job_id, env, steps


def should_run(step: Step, failed: bool) -> bool:
    """`if:` as a runner reads it, for the conditions these workflows use."""
    if step.cond in ("success()", ""):
        return not failed
    if step.cond == "always()":
        return True
    if step.cond == "failure()":
        return failed
    raise Unsupported(f"step {step.name!r}: condition `{step.cond}` is not emulated")


def upload_files(patterns: str, root: Path) -> list[Path]:
    """The files actions/upload-artifact would pick for these `path:` lines (hidden files excluded)."""
    include: set[Path] = set()
    exclude: set[Path] = set()
    for line in (x.strip() for x in patterns.splitlines()):
        if not line:
            continue
        target = exclude if line.startswith("!") else include
        for hit in glob.glob(str(root / line.lstrip("!")), recursive=True):
            target.update(files_under(Path(hit)))
    return sorted(p for p in include - exclude if not any(part.startswith(".") for part in p.relative_to(root).parts))


def files_under(path: Path) -> list[Path]:
    if path.is_dir():
        return [f for f in path.rglob("*") if f.is_file()]
    return [path] if path.is_file() else []


def holding(token: str, files: list[Path]) -> list[Path]:
    return [f for f in files if token.encode() in f.read_bytes()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workflow", type=Path)
    ap.add_argument("--job")
    ap.add_argument("--sentinel", metavar="NAME", help="set $NAME to a random token and check no upload holds it")
    ap.add_argument("--scan-also", metavar="PATH", type=Path, action="append", default=[],
                    help="with --sentinel: also search every file under PATH (e.g. the whole run directory)")
    ap.add_argument("--dry-run", action="store_true", help="print the steps and upload patterns, run nothing")
    args = ap.parse_args(argv)
    root = Path.cwd()
    try:
        job_id, job_env, steps = load_job(args.workflow, args.job)
    except Unsupported as exc:
        print(f"workflow_local: {exc}", file=sys.stderr)
        return 2

    base_env = dict(os.environ, CI="true", GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(root))
    base_env.update(job_env)
    token = None
    if args.sentinel:
        token = f"sentinel-{secrets.token_hex(16)}"
        base_env[args.sentinel] = token
    print(f"== {args.workflow} job {job_id}: {len(steps)} steps")

    failed = False
    timings: list[tuple[str, str, float]] = []
    uploads: list[tuple[str, list[Path]]] = []
    t_all = time.monotonic()
    for step in steps:
        try:
            run_it = should_run(step, failed)
            env = dict(base_env)
            for k, v in step.env.items():
                env[k] = substitute(v, env, f"step {step.name!r} env.{k}")
            if step.run is not None and EXPR.search(step.run):
                raise Unsupported(f"step {step.name!r}: `${{{{ }}}}` inside run: is not emulated (use env:)")
            patterns = substitute(str(step.with_.get("path", "")), env, f"step {step.name!r} with.path")
        except Unsupported as exc:
            print(f"workflow_local: {exc}", file=sys.stderr)
            return 2
        if not run_it:
            timings.append((step.name, "skipped", 0.0))
            continue
        if step.uses:
            action = step.uses.split("@")[0]
            if action == "actions/upload-artifact":
                files = upload_files(patterns, root)
                uploads.append((str(step.with_.get("name", "artifact")), files))
                print(f"-- {step.name}: {len(files)} file(s) would be uploaded")
            else:
                print(f"-- {step.name}: {action} not run here (the working tree is the checkout)")
            timings.append((step.name, "uses", 0.0))
            continue
        print(f"-- {step.name}\n{step.run.rstrip()}", flush=True)
        if args.dry_run:
            timings.append((step.name, "dry-run", 0.0))
            continue
        t0 = time.monotonic()
        try:
            rc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step.run],
                                cwd=root / (step.working_directory or "."), env=env, stdin=subprocess.DEVNULL,
                                timeout=step.timeout_s).returncode
        except subprocess.TimeoutExpired:
            rc = 124
        dt = time.monotonic() - t0
        failed |= rc != 0
        timings.append((step.name, "ok" if rc == 0 else f"exit {rc}", dt))
    total = time.monotonic() - t_all

    print("== timings")
    for name, status, dt in timings:
        print(f"   {dt:8.1f}s  {status:8s}  {name}")
    print(f"   {total:8.1f}s  total")
    rc = 1 if failed else 0
    for name, files in uploads:
        size = sum(f.stat().st_size for f in files)
        print(f"== artifact {name}: {len(files)} file(s), {size / 1e6:.2f} MB")
        for f in files:
            print(f"   {f.relative_to(root)}  ({f.stat().st_size} B)")
        if token is not None:
            leaks = holding(token, files)
            for f in leaks:
                print(f"LEAK: the {args.sentinel} sentinel is in {f}", file=sys.stderr)
            rc = 3 if leaks else rc
            print(f"== {args.sentinel} sentinel: found in {len(leaks)} of {len(files)} uploaded file(s)")
    for path in args.scan_also if token is not None else []:
        files = files_under(path)
        leaks = holding(token, files)
        for f in leaks:
            print(f"LEAK: the {args.sentinel} sentinel is in {f}", file=sys.stderr)
        rc = 3 if leaks else rc
        print(f"== {args.sentinel} sentinel: found in {len(leaks)} of {len(files)} file(s) under {path}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
