"""`harness proxy`: the logging proxy (one record per exchange, fail-closed, response cache).

    harness proxy --listen 127.0.0.1:8000 --upstream base=http://127.0.0.1:8081 \\
        --upstream distilled=http://127.0.0.1:8082 --log-dir results/demo/proxy --cache-mode readwrite

`http://HOST:PORT/<name>/<path>` goes to upstream `<name>` at `<path>`; records go to
`<log-dir>/<name>.jsonl`. The same NAME given again adds a replica of that model: each request goes to
the least-loaded healthy replica and is retried on another if it fails before any byte reached the
client; its record names the replica in `upstream`. Exit codes: 0 after SIGTERM/SIGINT, 2 bad arguments, 3 the log could not
be written (the proxy stops rather than serve unrecorded exchanges).

aiohttp is imported only when the command runs, so `harness --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_UPSTREAM_TIMEOUT_S = 7200.0
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("proxy", help="run the logging proxy in front of the model servers")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:0 = a free port on loopback)")
    p.add_argument("--upstream", action="append", default=[], metavar="NAME=URL", required=True,
                   help="a model server: requests to /NAME/... go to URL/...; repeat per model, and repeat "
                        "a NAME for replicas of that model (least-loaded routing, failover)")
    p.add_argument("--log-dir", type=Path, help="where NAME.jsonl records go (default: RUN/proxy with --run)")
    p.add_argument("--cache-mode", choices=("off", "read", "readwrite"), default="readwrite",
                   help="answer identical generations from the logs (read), and add new ones (readwrite)")
    p.add_argument("--upstream-timeout", type=float, default=DEFAULT_UPSTREAM_TIMEOUT_S, metavar="SECONDS",
                   help="limit on one whole upstream exchange (default 7200)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, metavar="N",
                   help="larger request bodies get 413 (default 16 MiB)")
    p.add_argument("--health-interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often each replica's /health (and /slots) is checked (default 2)")
    p.add_argument("--ready-file", type=Path, help='written atomically once listening: {"url": ..., "pid": ...}')
    p.add_argument("--run", type=Path, help="run directory (results/<run>); records go to RUN/proxy unless --log-dir")
    p.set_defaults(func=run)


def parse_listen(text: str) -> tuple[str, int]:
    from harness.cli import UsageError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def parse_upstreams(items: list[str]) -> dict[str, list[str]]:
    """NAME=URL items; a NAME given more than once lists the replicas of that model."""
    from harness.cli import UsageError
    from harness.proxy.server import NAME_RE

    upstreams: dict[str, list[str]] = {}
    for item in items:
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise UsageError(f"--upstream {item!r}: expected NAME=URL")
        if not NAME_RE.match(name):
            raise UsageError(f"--upstream {item!r}: NAME may use letters, digits, '-' and '_' and must not start with '_'")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--upstream {item!r}: URL must start with http:// or https://")
        if url.rstrip("/") in (u.rstrip("/") for u in upstreams.get(name, [])):
            raise UsageError(f"--upstream {item!r} given twice")
        upstreams.setdefault(name, []).append(url)
    return upstreams


def options_from_args(args: argparse.Namespace) -> Any:
    from harness.cli import UsageError
    from harness.proxy.server import ProxyOptions

    host, port = parse_listen(args.listen)
    log_dir = args.log_dir or (args.run / "proxy" if args.run else None)
    if log_dir is None:
        raise UsageError("give --log-dir DIR (or --run DIR, which logs to DIR/proxy)")
    if args.upstream_timeout <= 0:
        raise UsageError("--upstream-timeout must be positive")
    if args.health_interval <= 0:
        raise UsageError("--health-interval must be positive")
    if args.max_body_bytes < 1:
        raise UsageError("--max-body-bytes must be positive")
    return ProxyOptions(
        upstreams=parse_upstreams(args.upstream), log_dir=log_dir, cache_mode=args.cache_mode,
        upstream_timeout_s=args.upstream_timeout, max_body_bytes=args.max_body_bytes, host=host, port=port,
        ready_file=args.ready_file, health_interval_s=args.health_interval,
    )


def run(args: argparse.Namespace) -> int:
    from harness.cli import UsageError
    from harness.proxy.server import ListenError, run_proxy

    opts = options_from_args(args)
    try:
        return run_proxy(opts)
    except ListenError as exc:
        raise UsageError(str(exc)) from None
