"""Replicas behind the proxy: does a second server per model add throughput?

1. Slot-limited fake upstreams (tests/fakeupstream.py --slots 4 --delay-ms 200: each works on 4
   requests at once, 200 ms each, and queues the rest), driven through the proxy at client
   concurrency 16: one replica versus two. Target: two give at least 1.8x one.
2. The demo model (SmolLM2-135M, CPU) served by one and by two llama-server replicas through the
   proxy (`harness serve` with `replicas: 2`), the same chat requests (cache off) at the same
   client concurrency: completion tokens per second. On a shared 2-core machine this is bounded by
   the cores, not the servers; the number says what a second CPU replica buys here, nothing more.

    .venv/bin/python benchmarks/replicas.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fakeupstream.py"
sys.path.insert(0, str(REPO))

from harness.config import parse_config  # noqa: E402
from harness.serve import NativeStack  # noqa: E402

FAKE_TARGET = 1.8


def start(cmd: list[str], ready: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd[:3]} did not start")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["url"]


async def drive(url: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[float, int, int]:
    """(wall seconds, completion tokens, failures) for all bodies at this client concurrency."""
    sem = asyncio.Semaphore(concurrency)
    tokens = failures = 0

    async def one(session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        nonlocal tokens, failures
        async with sem, session.post(url, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                failures += 1
                return
            tokens += int((data.get("usage") or {}).get("completion_tokens") or 0)

    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=3600)) as session:
        await asyncio.gather(*(one(session, b) for b in bodies))
    return time.perf_counter() - t0, tokens, failures


def fake_part(n: int, tmp: Path) -> dict[str, Any]:
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for i in range(2):
            p, u = start([py, str(FAKE), "--slots", "4", "--delay-ms", "200", "--ready-file", str(tmp / f"f{i}.json")],
                         tmp / f"f{i}.json")
            procs.append(p)
            urls.append(u)
        out: dict[str, Any] = {}
        for k in (1, 2):
            ready = tmp / f"proxy{k}.json"
            cmd = [py, "-m", "harness", "proxy", "--listen", "127.0.0.1:0", "--log-dir", str(tmp / f"logs{k}"),
                   "--cache-mode", "off", "--ready-file", str(ready)]
            for u in urls[:k]:
                cmd += ["--upstream", f"m={u}"]
            px, purl = start(cmd, ready)
            try:
                time.sleep(0.5)  # the first health check (reads /slots)
                bodies = [{"messages": [{"role": "user", "content": f"q{k}-{i}"}], "seed": i} for i in range(n)]
                wall, _, failures = asyncio.run(drive(f"{purl}/m/v1/chat/completions", bodies, 16))
            finally:
                px.terminate()
                px.wait(timeout=15)
            out[k] = {"wall_s": wall, "rps": n / wall, "failures": failures}
        return out
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)


def demo_part(n: int, max_tokens: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    base = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    bodies = [{"messages": [{"role": "user", "content": f"Write a short poem about the number {i}."}],
               "max_tokens": max_tokens, "temperature": 0.6, "seed": 100 + i} for i in range(n)]
    out: dict[str, Any] = {}
    for k in (1, 2):
        raw = json.loads(json.dumps(base))
        raw["models"]["distilled"]["replicas"] = k
        raw["server"].update(slots=2, threads=1)
        raw["proxy"]["cache_mode"] = "off"  # the same requests again must reach a server
        for spec in raw["benchmarks"].values():
            spec["dataset"]["path"] = str(REPO / spec["dataset"]["path"])
        raw["training_data"] = None
        path = tmp / f"demo{k}.yaml"
        path.write_text(yaml.safe_dump(raw))
        cfg = parse_config(raw, str(path))
        with NativeStack(cfg, path, tmp / f"run{k}") as url:
            asyncio.run(drive(f"{url}/distilled/v1/chat/completions", bodies[:2], 2))  # warm-up
            wall, tokens, failures = asyncio.run(drive(f"{url}/distilled/v1/chat/completions", bodies, concurrency))
        out[k] = {"wall_s": wall, "tokens": tokens, "tok_s": tokens / wall, "failures": failures}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests (CI)")
    ap.add_argument("--skip-demo", action="store_true", help="only the fake-upstream part")
    args = ap.parse_args()
    n_fake = 96 if args.quick else 320
    n_demo, max_tokens, conc = (8, 48, 4) if args.quick else (16, 96, 4)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as t:
        tmp = Path(t)
        fake = fake_part(n_fake, tmp)
        demo = None if args.skip_demo else demo_part(n_demo, max_tokens, conc, tmp)
    ratio = fake[2]["rps"] / fake[1]["rps"]
    print(f"\n## Replicas behind the proxy ({os.cpu_count()} cores, load {load0:.1f} at start)\n")
    print("| setup | replicas | requests | wall s | rate | failures |")
    print("|---|---:|---:|---:|---:|---:|")
    for k in (1, 2):
        f = fake[k]
        print(f"| fake, 4 slots x 200 ms, c=16 | {k} | {n_fake} | {f['wall_s']:.2f} | {f['rps']:.1f} req/s | {f['failures']} |")
    if demo:
        for k in (1, 2):
            d = demo[k]
            print(f"| demo SmolLM2 CPU, 2 slots, c={conc} | {k} | {n_demo} | {d['wall_s']:.2f} | {d['tok_s']:.1f} tok/s | {d['failures']} |")
    print(f"\nfake: two replicas / one = {ratio:.2f}x (target >= {FAKE_TARGET}x)"
          + (f"; demo: {demo[2]['tok_s'] / demo[1]['tok_s']:.2f}x" if demo else ""))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    failed = ratio < FAKE_TARGET or any(v["failures"] for v in fake.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
