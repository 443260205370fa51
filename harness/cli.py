"""`harness` command line: one subcommand per stage, each reading and writing files under results/<run>/.

Each stage module exposes `register(subparsers)`, which adds its subcommand and sets `func`;
modules keep heavy imports (lm-eval, pandas, matplotlib) inside their functions so that
`harness --help` and `harness validate` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from harness import __version__
from harness.config import ConfigError
from harness.records import SchemaVersionError

# Modules that contribute subcommands, in help order.
STAGE_MODULES = (
    "harness.commands.validate",
    "harness.commands.plan",
    "harness.fetch",
    "harness.serve",
    "harness.proxy",
    "harness.eval",
    "harness.importer",
    "harness.analyze",
    "harness.report",
    "harness.commands.run",
    "harness.doctor",
    "harness.k8s_render",
)


class UsageError(Exception):
    """Bad input that is not a config problem (missing binary, busy port...): one clear line, exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SchemaVersionError as exc:  # a record from another harness version: say how to regenerate it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
