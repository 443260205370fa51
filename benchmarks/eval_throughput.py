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
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from harness.config import parse_config
from harness.eval import run_eval
from harness.io import read_jsonl
from harness.serve import NativeStack, exit_on_sigterm


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
    with NativeStack(cfg, config_path, run_dir) as proxy_url:
        started = time.perf_counter()
        errors = run_eval(cfg, config_path, run_dir, proxy_url, models=[model])
        eval_wall = time.perf_counter() - started
        if errors:
            raise SystemExit(f"eval failed: {errors}")
        records = [r for r in read_jsonl(run_dir / "proxy" / f"{model}.jsonl")[0]
                   if r["path"].endswith("/chat/completions") and r["status"] == 200 and not r["cache_hit"]]
        eval_tokens = sum(int(r["usage"]["completion_tokens"]) for r in records)
        server_url = json.loads((run_dir / "serve.json").read_text())["servers"][model]["url"]
        bodies = [r["request"] for r in records]
        direct_tokens, direct_wall, failures = asyncio.run(replay(server_url, bodies, cfg.server.slots))
    return {
        "slots": cfg.server.slots, "requests": len(bodies),
        "eval_tok_s": eval_tokens / eval_wall, "eval_tokens": eval_tokens, "eval_wall_s": eval_wall,
        "direct_tok_s": direct_tokens / direct_wall, "direct_tokens": direct_tokens, "direct_wall_s": direct_wall,
        "direct_failures": failures,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--model", default="distilled")
    ap.add_argument("--slots", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    exit_on_sigterm()
    base = yaml.safe_load(Path(args.config).read_text())
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-throughput-") as tmp:
        for slots in args.slots:
            cfg_path = derived_config(base, slots, args.max_tokens, args.threads, Path(tmp) / f"slots{slots}.yaml")
            rows.append(measure(cfg_path, args.model, Path(tmp)))
    print(f"\nDemo model on CPU, {args.max_tokens}-token budget, benchmarks: {', '.join(base['benchmarks'])}\n")
    print("| slots | requests | harness eval tok/s | direct tok/s | eval / direct |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['slots']} | {r['requests']} | {r['eval_tok_s']:.1f} | {r['direct_tok_s']:.1f} | "
              f"{r['eval_tok_s'] / r['direct_tok_s']:.1%} |")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\nspeedup {last['slots']} slots over {first['slots']}: direct "
              f"{last['direct_tok_s'] / first['direct_tok_s']:.2f}x, harness eval "
              f"{last['eval_tok_s'] / first['eval_tok_s']:.2f}x")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
