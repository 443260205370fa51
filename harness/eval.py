"""`harness eval`: run every benchmark for every model through the proxy.

Every model x benchmark runs at once. Each benchmark's client keeps `slots` requests in flight, so
a server holds up to slots x benchmarks requests and queues what its slots cannot take: no slot
idles at a benchmark's tail or while a tool starts up, which is what keeps end-to-end throughput
close to the server's own (benchmarks/eval_throughput.py). The price is that a request's timeout
(request.timeout_s) also covers its time in the server's queue. A model x benchmark that has a
`done.json` is skipped; anything else is (re)run, and the proxy's response cache answers every
generation that already finished, so a killed eval resumes without regenerating anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import traceback
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.benchmarks import registry
from harness.config import StudyConfig, dataset_file, load_config

log = logging.getLogger(__name__)
EVAL_NICENESS = 10


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="run the benchmarks for every model through the proxy")
    p.add_argument("--config", required=True, help="study YAML")
    p.add_argument("--run", required=True, help="run directory, e.g. results/demo")
    p.add_argument("--proxy-url", default=os.environ.get("HARNESS_PROXY_URL"),
                   help="proxy base URL (default: $HARNESS_PROXY_URL, else the run's serve.json)")
    p.add_argument("--models", nargs="+", help="subset of models (default: all)")
    p.add_argument("--benchmarks", nargs="+", help="subset of benchmarks (default: all configured)")
    p.add_argument("--unsafe-allow-unsandboxed-code", dest="unsafe_allow_unsandboxed", action="store_true",
                   help="run and score generated code even where the sandbox is unavailable or its probe "
                        "fails (recorded in manifest.json and the report); never on a machine you care about")
    p.set_defaults(func=cmd_eval)


def find_proxy_url(run_dir: Path, explicit: str | None) -> str:
    from harness.cli import UsageError

    url = explicit
    if not url:
        state = run_dir / "serve.json"
        if not state.exists():
            raise UsageError(f"no proxy: pass --proxy-url, set HARNESS_PROXY_URL, or start one with "
                             f"`harness serve --run {run_dir} ...`")
        url = json.loads(state.read_text())["proxy_url"]
    url = url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{url}/_proxy/health", timeout=5) as resp:  # noqa: S310 - the user's proxy URL
            resp.read()
    except OSError as exc:
        raise UsageError(f"proxy at {url} is not answering ({exc}); is the stack up?") from None
    return url


def eval_benchmark(cfg: StudyConfig, model: str, bench: str, proxy_url: str, run_dir: Path,
                   monitor: Any) -> str | None:
    """Run one model x benchmark unless already done; returns an error message, or None."""
    out_dir = run_dir / "raw" / model / bench
    if (out_dir / "done.json").exists():
        from harness.records import DoneMarker, RecordError, read_json

        try:
            read_json(DoneMarker, out_dir / "done.json")  # a marker of another schema is not trusted
        except RecordError as exc:
            return f"{model}/{bench}: {exc}"
        log.info("%s/%s already done; skipping", model, bench)
        monitor.mark_finished(model, bench)
        return None
    monitor.mark_started(model, bench)
    try:
        if registry()[bench].runner == "lm_eval":
            from harness.runners.lm_eval_runner import run_lm_eval_benchmark

            run_lm_eval_benchmark(cfg, model, bench, proxy_url, run_dir)
        else:  # an evalplus dataset: our client, then scoring in the sandbox
            from harness.runners.humaneval import run_humaneval

            run_humaneval(cfg, model, proxy_url, out_dir, bench=bench)
    except Exception as exc:  # one failed benchmark must not stop the others
        log.debug("%s", traceback.format_exc())
        log.error("%s/%s failed: %s", model, bench, exc)
        return f"{model}/{bench}: {exc}"
    monitor.mark_finished(model, bench)
    return None


def _yield_cpu_to_servers() -> None:
    """Lower this process's priority (inherited by lm-eval and the evalplus sandbox).

    Where the model servers run on the same CPUs (CPU inference, small boxes), tool start-up and
    scoring would otherwise take cycles from generation; the servers and the proxy were started
    before this and keep their priority.
    """
    increment = EVAL_NICENESS - os.nice(0)
    if increment > 0:  # only ever lower the priority (a caller's `nice -n 15` stays)
        os.nice(increment)


def check_inputs(cfg: StudyConfig, config_path: Path, models: list[str], benches: list[str]) -> dict[str, int]:
    """Refuse unknown names, missing datasets and wrong schemas before anything is generated.

    Returns the number of items each benchmark will run (its `limit` applied).
    """
    from harness.cli import UsageError
    from harness.datasets import DatasetSchemaError, check_schema

    for name in models:
        if name not in cfg.models:
            raise UsageError(f"unknown model {name!r}; models: {', '.join(cfg.models)}")
    items = {}
    for name in benches:
        if name not in cfg.benchmarks:
            raise UsageError(f"benchmark {name!r} is not in the config; configured: {', '.join(cfg.benchmarks)}")
        path = dataset_file(cfg, name)
        if not path.exists():
            raise UsageError(f"dataset for {name} missing: {path} (run `harness fetch --config {config_path}`)")
        try:
            n = check_schema(name, path)
        except DatasetSchemaError as exc:
            raise UsageError(str(exc)) from None
        limit = cfg.benchmarks[name].limit
        items[name] = min(n, limit) if limit else n
    return items


def check_sandbox_first(cfg: StudyConfig, run_dir: Path, proxy_url: str, models: list[str], benches: list[str],
                        allowed_by: str | None) -> None:
    """Before any generated code is scored: probe the sandbox (harness/sandbox_probe.py), record
    it in the run, and stop (UsageError, exit 2) when it leaks, unless unisolated runs are allowed."""
    from harness.cli import UsageError
    from harness.sandbox import SandboxUnavailable
    from harness.sandbox_probe import SandboxProbeError, check_sandbox

    code = [b for b in benches if registry()[b].runner == "evalplus"]
    if all((run_dir / "raw" / m / b / "done.json").exists() for m in models for b in code):
        return  # no generated code left to score
    allow = cfg.sandbox.allow_unisolated
    try:
        check_sandbox(run_dir, allow_unisolated=allow, proxy_url=proxy_url,
                      allowed_by=(allowed_by or "config sandbox.allow_unisolated") if allow else None)
    except (SandboxProbeError, SandboxUnavailable) as exc:
        raise UsageError(str(exc)) from None


def run_eval(cfg: StudyConfig, config_path: Path, run_dir: Path, proxy_url: str,
             models: list[str] | None = None, benches: list[str] | None = None,
             sandbox_allowed_by: str | None = None) -> list[str]:
    """Evaluate; returns one message per failed model x benchmark (empty when all finished)."""
    from harness.progress import ProgressMonitor

    models = models or list(cfg.models)
    benches = benches or list(cfg.benchmarks)
    items = check_inputs(cfg, config_path, models, benches)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_sandbox_first(cfg, run_dir, proxy_url, models, benches, sandbox_allowed_by)
    _yield_cpu_to_servers()
    if not (run_dir / "config.yaml").exists():
        shutil.copyfile(config_path, run_dir / "config.yaml")
    totals = {(m, b): items[b] * cfg.benchmarks[b].samples_per_item for m in models for b in benches}
    monitor = ProgressMonitor(run_dir / "proxy", totals)
    monitor.start()
    try:
        pairs = [(m, b) for m in models for b in benches]
        with ThreadPoolExecutor(max_workers=len(pairs), thread_name_prefix="eval") as pool:
            results = list(pool.map(lambda mb: eval_benchmark(cfg, mb[0], mb[1], proxy_url, run_dir, monitor), pairs))
    finally:
        monitor.stop()
    return [e for e in results if e]


def cmd_eval(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    allowed_by = None
    if args.unsafe_allow_unsandboxed:
        # The decision travels with the config object down to the evalplus runner.
        cfg = cfg.model_copy(update={"sandbox": cfg.sandbox.model_copy(update={"allow_unisolated": True})})
        allowed_by = "cli --unsafe-allow-unsandboxed-code"
    run_dir = Path(args.run)
    check_inputs(cfg, Path(args.config), args.models or list(cfg.models), args.benchmarks or list(cfg.benchmarks))
    proxy_url = find_proxy_url(run_dir, args.proxy_url)
    errors = run_eval(cfg, Path(args.config), run_dir, proxy_url, args.models, args.benchmarks,
                      sandbox_allowed_by=allowed_by)
    if errors:
        for err in errors:
            print(f"error: {err}")
        return 1
    print(f"eval complete: {run_dir}/raw")
    return 0
