"""End-to-end generation throughput of `harness eval` versus a minimal direct load generator.

For each slot count, one llama-server (CPU, the demo model) is started with the harness's own
flags; `harness eval` runs every configured benchmark through the proxy; then a minimal asyncio
load generator replays exactly the same request bodies (read back from the proxy log) straight to
the server at the same concurrency. Both rates are completion tokens / wall second in one run, so
the ratio is meaningful on a noisy shared machine even where the absolute numbers are not.

    .venv/bin/python benchmarks/eval_throughput.py --config configs/demo.yaml --slots 1 4
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

from harness.config import parse_config
from harness.eval import run_eval
from harness.io import read_jsonl
from harness.serve import NativeStack, exit_on_sigterm


def _cpu(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def _own_cpu() -> float:
    """This process and its finished children (lm-eval runs, the evalplus sandbox)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _ts(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def derived_config(base: dict[str, Any], slots: int, max_tokens: int, threads: int, path: Path) -> Path:
    raw = json.loads(json.dumps(base))
    raw["server"].update(slots=slots, ctx_per_slot=max(1024, max_tokens + 768), threads=threads)
    for spec in raw["benchmarks"].values():
        spec["max_tokens"] = max_tokens
    path.write_text(yaml.safe_dump(raw))
    return path


async def replay(url: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[int, float, int]:
    sem = asyncio.Semaphore(concurrency)
    tokens = failures = 0

    async def one(session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        nonlocal tokens, failures
        async with sem, session.post(f"{url}/v1/chat/completions", json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                failures += 1
                return
            tokens += int(data["usage"]["completion_tokens"])

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        await asyncio.gather(*(one(session, b) for b in bodies))
    return tokens, time.perf_counter() - started, failures


def measure(config_path: Path, model: str, work: Path) -> dict[str, Any]:
    cfg = parse_config(yaml.safe_load(config_path.read_text()), str(config_path))
    run_dir = work / f"run-{cfg.server.slots}"
    stack = NativeStack(cfg, config_path, run_dir)
    with stack as proxy_url:
        server = psutil.Process(stack.servers[model].popen.pid)
        proxy = psutil.Process(stack.proxy.popen.pid) if stack.proxy else None
        cpu_before = _cpu(server), _cpu(proxy), _own_cpu()
        started = time.perf_counter()
        errors = run_eval(cfg, config_path, run_dir, proxy_url, models=[model])
        eval_wall = time.perf_counter() - started
        # Where the CPU went during eval: on a CPU-only box the server competes with the tools.
        cpu = {name: after - before for name, before, after in
               zip(("server", "proxy", "harness_and_tools"), cpu_before, (_cpu(server), _cpu(proxy), _own_cpu()), strict=True)}
        if errors:
            raise SystemExit(f"eval failed: {errors}")
        records = [r for r in read_jsonl(run_dir / "proxy" / f"{model}.jsonl")[0]
                   if r["path"].endswith("/chat/completions") and r["status"] == 200 and not r["cache_hit"]]
        eval_tokens = sum(int(r["usage"]["completion_tokens"]) for r in records)
        # The generation window: first request in to last answer out, without tool start-up and scoring.
        window = (_ts(max(r["ts_end"] for r in records)) - _ts(min(r["ts_start"] for r in records)))
        server_url = json.loads((run_dir / "serve.json").read_text())["servers"][model]["url"]
        bodies = [r["request"] for r in records]
        direct_tokens, direct_wall, failures = asyncio.run(replay(server_url, bodies, cfg.server.slots))
    return {
        "slots": cfg.server.slots, "requests": len(bodies),
        "eval_tok_s": eval_tokens / eval_wall, "eval_tokens": eval_tokens, "eval_wall_s": eval_wall,
        "eval_window_tok_s": eval_tokens / window, "eval_window_s": window,
        "direct_tok_s": direct_tokens / direct_wall, "direct_tokens": direct_tokens, "direct_wall_s": direct_wall,
        "direct_failures": failures,
        "eval_cpu_s": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--model", default="distilled")
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    exit_on_sigterm()
    base = yaml.safe_load(Path(args.config).read_text())
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-throughput-") as tmp:
        for slots in args.slots:
            cfg_path = derived_config(base, slots, args.max_tokens, args.threads, Path(tmp) / f"slots{slots}.yaml")
            rows.append(measure(cfg_path, args.model, Path(tmp)))
    print(f"\nDemo model on CPU, {args.max_tokens}-token budget, benchmarks: {', '.join(base['benchmarks'])}\n")
    print("| slots | requests | tokens | direct tok/s | harness eval tok/s (whole run) | eval / direct "
          "| harness eval tok/s (generation window) | window / direct |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['slots']} | {r['requests']} | {r['eval_tokens']} | {r['direct_tok_s']:.1f} | "
              f"{r['eval_tok_s']:.1f} | {r['eval_tok_s'] / r['direct_tok_s']:.1%} | "
              f"{r['eval_window_tok_s']:.1f} | {r['eval_window_tok_s'] / r['direct_tok_s']:.1%} |")
    for r in rows:
        c = r["eval_cpu_s"]
        print(f"slots {r['slots']}: CPU seconds during eval: server {c['server']:.0f}, proxy {c['proxy']:.0f}, "
              f"harness + lm-eval + evalplus {c['harness_and_tools']:.0f} (eval wall {r['eval_wall_s']:.0f}s, "
              f"{psutil.cpu_count()} cores)")
    print("\n(whole run: harness eval wall time, including lm-eval start-up and evalplus scoring; "
          "generation window: first request in to last answer out, from the proxy log)")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\nspeedup {last['slots']} slots over {first['slots']}: direct "
              f"{last['direct_tok_s'] / first['direct_tok_s']:.2f}x, harness eval "
              f"{last['eval_tok_s'] / first['eval_tok_s']:.2f}x")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
