"""`harness validate CONFIG`: check a study config without running anything."""

from __future__ import annotations

import argparse

from harness.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate", help="check a study config and exit (2 on any problem)")
    p.add_argument("config", nargs="?", help="study YAML (or use --config)")
    p.add_argument("--config", dest="config_opt", help="study YAML")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = args.config or args.config_opt
    if not path:
        raise SystemExit("error: validate needs a CONFIG path")
    cfg = load_config(path)
    benches = ", ".join(f"{b} ({s.max_tokens} tok x{s.samples_per_item})" for b, s in cfg.benchmarks.items())
    print(f"{path}: ok: study {cfg.study!r}, models {', '.join(cfg.models)} "
          f"(candidate {cfg.candidate}, baseline {cfg.baseline}); benchmarks {benches}")
    return 0
