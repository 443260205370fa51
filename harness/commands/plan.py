"""`harness plan --config C`: size a study before running it (issue 11).

Prints, per benchmark, the items, samples per item (k) and generations, the token budget (every
generation may use up to its benchmark's `max_tokens`), and the GPU time that budget takes at a
stated generation throughput per server. Nothing is started or downloaded. Item counts come from
the dataset file when it is already on disk (after `harness fetch`), else from the benchmark's
published size; `limit` caps them as `harness eval` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.cli import UsageError
from harness.config import StudyConfig, dataset_file, load_config

DEFAULT_TOKENS_PER_S = 150.0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="print generations, token budget and GPU hours of a study before running it")
    p.add_argument("--config", required=True, help="study YAML")
    p.add_argument("--tokens-per-s", type=float, default=DEFAULT_TOKENS_PER_S,
                   help=f"generation throughput of one server, all its slots together (default {DEFAULT_TOKENS_PER_S:g})")
    p.add_argument("--fill", type=float, default=1.0,
                   help="expected share of max_tokens a generation uses (default 1.0: the budget, an upper bound)")
    p.add_argument("--from-run", metavar="RUN",
                   help="estimate tokens per generation from RUN/analysis/summary.json (cost.rows: mean completion tokens)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def item_count(cfg: StudyConfig, bench: str) -> tuple[int, str]:
    """Items `harness eval` will send for `bench`, and where the count came from."""
    from harness.datasets import load_rows

    spec = cfg.benchmarks[bench]
    path = dataset_file(cfg, bench)
    if path.is_file():
        n, source = len(load_rows(path)), f"file {path.name}"
    else:
        from harness.benchmarks import spec as bench_spec

        nominal = bench_spec(bench).nominal_items  # the benchmark's published size (registry)
        if nominal is None:
            raise UsageError(f"{bench}: dataset not fetched and its spec gives no nominal_items; run `harness fetch` first")
        n, source = nominal, "published size (dataset not fetched)"
    if spec.limit is not None and spec.limit < n:
        n, source = spec.limit, f"limit {spec.limit}"
    return n, source


def observed_tokens(run: Path) -> dict[str, float]:
    """benchmark -> mean completion tokens per generation in an analysed run (the larger model mean)."""
    from harness.cli import UsageError

    path = run / "analysis" / "summary.json"
    try:
        rows = (json.loads(path.read_text(encoding="utf-8")).get("cost") or {}).get("rows") or []
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the run's summary ({exc})") from None
    out: dict[str, float] = {}
    for r in rows:
        if r.get("completion_tokens"):
            out[r["benchmark"]] = max(out.get(r["benchmark"], 0.0), float(r["completion_tokens"]["mean"]))
    if not out:
        raise UsageError(f"{path}: field 'cost.rows[*].completion_tokens': no token counts in this run")
    return out


def plan(cfg: StudyConfig, tokens_per_s: float, fill: float, observed: dict[str, float] | None = None) -> dict[str, Any]:
    models = list(cfg.models)
    rows = []
    for bench, spec in cfg.benchmarks.items():
        items, source = item_count(cfg, bench)
        per_model = items * spec.samples_per_item
        row = {"benchmark": bench, "items": items, "items_source": source, "k": spec.samples_per_item,
               "generations_per_model": per_model, "generations": per_model * len(models),
               "max_tokens": spec.max_tokens, "token_budget_per_model": per_model * spec.max_tokens,
               "token_budget": per_model * spec.max_tokens * len(models)}
        # expected tokens: the observed mean of an earlier run (capped by the budget), else fill x budget
        mean = min(observed[bench], spec.max_tokens) if observed and bench in observed else fill * spec.max_tokens
        row["expected_tokens_per_generation"] = round(mean, 1)
        row["expected_tokens_per_model"] = round(per_model * mean)
        rows.append(row)
    per_server_tokens = sum(int(r["expected_tokens_per_model"]) for r in rows)  # type: ignore[call-overload]
    hours_per_server = per_server_tokens / tokens_per_s / 3600
    return {"study": cfg.study, "models": models, "servers": len(models), "slots_per_server": cfg.server.slots,
            "benchmarks": rows, "generations": sum(r["generations"] for r in rows),
            "token_budget": sum(r["token_budget"] for r in rows), "fill": fill, "observed_from_run": bool(observed),
            "tokens_per_s_per_server": tokens_per_s,
            "tokens_per_server": round(per_server_tokens), "gpu_hours_per_server": round(hours_per_server, 2),
            "gpu_hours": round(hours_per_server * len(models), 2), "wall_clock_hours_parallel": round(hours_per_server, 2)}


def render(p: dict[str, Any], config: str) -> str:
    head = ["benchmark", "items", "k", "generations", "max_tokens", "token budget", "items from"]
    rows = [[r["benchmark"], f"{r['items']:,}", str(r["k"]), f"{r['generations']:,}", f"{r['max_tokens']:,}",
             f"{r['token_budget']:,}", r["items_source"]] for r in p["benchmarks"]]
    rows.append(["total", "", "", f"{p['generations']:,}", "", f"{p['token_budget']:,}", ""])
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()  # noqa: E731
    out = [f"study {p['study']!r} ({config}): {p['servers']} models ({', '.join(p['models'])}), one llama-server each "
           f"({p['slots_per_server']} slots); generations count every model", fmt(head)] + [fmt(r) for r in rows]
    if p["observed_from_run"]:
        basis = "the mean completion tokens per generation of --from-run (" + ", ".join(
            f"{r['benchmark']} {r['expected_tokens_per_generation']:,.0f}" for r in p["benchmarks"]) + ")"
    elif p["fill"] == 1:
        basis = "the full budget (every generation reaches max_tokens: an upper bound)"
    else:
        basis = f"{p['fill']:.0%} of the budget (--fill)"
    out += ["", f"GPU time at {p['tokens_per_s_per_server']:g} tokens/s per server (all slots together; --tokens-per-s), "
                f"for {basis}:",
            f"  {p['tokens_per_server']:,} tokens per server -> {p['gpu_hours_per_server']:,.1f} h per server; "
            f"{p['gpu_hours']:,.1f} GPU-hours for {p['servers']} servers on their own GPUs "
            f"({p['wall_clock_hours_parallel']:,.1f} h wall clock when they run side by side)"]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from harness.cli import UsageError

    if args.tokens_per_s <= 0:
        raise UsageError(f"--tokens-per-s must be positive (got {args.tokens_per_s})")
    if not 0 < args.fill <= 1:
        raise UsageError(f"--fill must be in (0, 1] (got {args.fill})")
    cfg = load_config(args.config)
    observed = observed_tokens(Path(args.from_run)) if args.from_run else None
    p = plan(cfg, args.tokens_per_s, args.fill, observed)
    print(json.dumps(p, indent=2) if args.json else render(p, str(Path(args.config))))
    return 0
