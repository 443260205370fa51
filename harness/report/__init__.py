"""`harness report --run DIR`: analysis/summary.json -> report.md + figures/*.png (no number typed by hand)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write report.md and figures/ from analysis/summary.json")
    p.add_argument("--run", required=True, help="run directory, e.g. results/demo")
    p.add_argument("--config", help="unused; accepted for a uniform CLI")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli import UsageError
    from harness.io import atomic_write_text
    from harness.records import RecordError, Summary, parse
    from harness.report.figures import make_figures
    from harness.report.render import render

    run_dir = Path(args.run)
    spath = run_dir / "analysis" / "summary.json"
    if not spath.is_file():
        raise UsageError(f"{spath}: not found (run `harness analyze --run {run_dir}` first)")
    try:
        summary = json.loads(spath.read_text(encoding="utf-8"))
        parse(Summary, summary, str(spath))  # every section present, in its shape, of a version we read
    except ValueError as exc:  # RecordError is a ValueError
        raise UsageError(f"{spath}: {exc}" if not isinstance(exc, RecordError) else str(exc)) from None
    figures = make_figures(summary, run_dir / "analysis" / "per_sample.csv", run_dir / "figures")
    atomic_write_text(run_dir / "report.md", render(summary, figures))
    print(f"wrote {run_dir / 'report.md'} and {len(figures)} figure(s)")
    from harness.report.html import write_html  # report.html: the same report.md plus the sample explorer
    print(f"wrote {write_html(run_dir, summary, (run_dir / 'report.md').read_text(encoding='utf-8'))}")
    return 0
