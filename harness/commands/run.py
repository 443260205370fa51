"""`harness run`: the whole study natively: fetch, serve, eval, analyze, report, then tear down."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from harness.config import load_config

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="fetch + serve + eval + analyze + report (native mode)")
    p.add_argument("--config", required=True, help="study YAML")
    p.add_argument("--run", required=True, help="run directory, e.g. results/demo")
    p.add_argument("--skip-fetch", action="store_true", help="use the data dir as it is")
    p.set_defaults(func=cmd_run)


def _stage(argv: list[str]) -> None:
    from harness.cli import main

    log.info("stage: harness %s", " ".join(argv))
    rc = main(argv)
    if rc != 0:
        raise SystemExit(rc)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.cli import UsageError
    from harness.eval import run_eval
    from harness.serve import NativeStack, ServeError, exit_on_sigterm

    cfg = load_config(args.config)
    exit_on_sigterm()
    run_dir = Path(args.run)
    if not args.skip_fetch:
        _stage(["fetch", "--config", args.config])
    try:
        with NativeStack(cfg, Path(args.config), run_dir) as proxy_url:
            errors = run_eval(cfg, Path(args.config), run_dir, proxy_url)
    except ServeError as exc:
        raise UsageError(str(exc)) from None
    if errors:
        for err in errors:
            print(f"error: {err}")
        return 1
    _stage(["analyze", "--run", str(run_dir), "--config", args.config])
    _stage(["report", "--run", str(run_dir)])
    print(f"report: {run_dir / 'report.md'}")
    return 0
