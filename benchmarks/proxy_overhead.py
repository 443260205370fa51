"""Proxy overhead: direct versus through `harness proxy`, all on loopback (issue 3, "Benchmark").

    .venv/bin/python benchmarks/proxy_overhead.py [--quick]

(a) latency the proxy adds at concurrency 1 (p50, p99), non-streaming and streaming (64 chunks),
    against a fake upstream that answers instantly;
(b) throughput at concurrency 64 against a fake upstream that takes 50 ms per completion, as a ratio
    of proxied to direct;
(c) proxy RSS before and after 10,000 requests.

The fake upstream (tests/fakeupstream.py) and the proxy each run in their own process, as in a
real run; the proxy runs with its default `--cache-mode readwrite` and every request is unique, so
each one is forwarded, recorded and fsynced (group commit), none is a cache hit. Every record is
checked at the end: a request only counts as successful when its response was complete and its
record is in the log. Prints a markdown table; exits 1 when a target is missed.
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

import aiohttp

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fakeupstream.py"  # the fake llama-server lives with the tests
sys.path.insert(0, str(REPO))

from harness.io import read_jsonl  # noqa: E402

TARGETS = {"added_p50_ms": 2.0, "throughput_ratio": 0.90, "rss_growth_mb": 50.0}


def start(cmd: list[str], ready: Path, timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return proc, json.loads(ready.read_text())["url"]
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[2]} exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{cmd} not ready in {timeout}s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


class Client:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.counter = 0
        self.failures = 0
        self.record_ids: list[str] = []

    def body(self, stream: bool) -> dict:
        self.counter += 1
        return {"messages": [{"role": "user", "content": f"benchmark request {self.counter} {os.getpid()}"}],
                "seed": self.counter, "temperature": 0.6, "max_tokens": 64, "stream": stream}

    async def one(self, base: str, stream: bool, proxied: bool) -> float:
        """Seconds until the full response is in hand; counts a failure instead of raising."""
        t0 = time.perf_counter()
        try:
            async with self.session.post(f"{base}/v1/chat/completions", json=self.body(stream),
                                         headers={"X-Harness-Benchmark": "bench"}) as resp:
                data = await resp.read()
                ok = resp.status == 200 and (data.rstrip().endswith(b"[DONE]") if stream else b'"choices"' in data)
                if proxied and ok:
                    self.record_ids.append(resp.headers["X-Harness-Record-Id"])
        except aiohttp.ClientError:
            ok = False
        if not ok:
            self.failures += 1
        return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def latency(client: Client, direct: str, proxied: str, stream: bool, n: int) -> dict[str, float]:
    for _ in range(20):  # warm both paths (connections, caches)
        await client.one(direct, stream, False)
        await client.one(proxied, stream, True)
    d, p = [], []
    for _ in range(n):  # interleaved, so drift in machine load hits both sides alike
        d.append(await client.one(direct, stream, False))
        p.append(await client.one(proxied, stream, True))
    return {"direct_p50": pct(d, 0.5) * 1e3, "proxy_p50": pct(p, 0.5) * 1e3,
            "direct_p99": pct(d, 0.99) * 1e3, "proxy_p99": pct(p, 0.99) * 1e3}


async def throughput(client: Client, base: str, proxied: bool, n: int, concurrency: int) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            await client.one(base, False, proxied)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


async def run(args: argparse.Namespace, fast: str, slow: str, proxy: str, proxy_pid: int) -> dict:
    out: dict = {}
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        client = Client(session)
        out["plain"] = await latency(client, fast, f"{proxy}/fast", False, args.latency_n)
        out["stream"] = await latency(client, fast, f"{proxy}/fast", True, args.latency_n)
        rounds = []
        for _ in range(args.rounds):  # alternate, best of each side
            rounds.append((await throughput(client, slow, False, args.tput_n, 64),
                           await throughput(client, f"{proxy}/slow", True, args.tput_n, 64)))
        out["tput_direct"] = max(r[0] for r in rounds)
        out["tput_proxy"] = max(r[1] for r in rounds)
        out["rss_before"] = rss_mb(proxy_pid)
        queue = iter(range(args.rss_n))

        async def worker(i: int) -> None:
            for _ in queue:
                await client.one(f"{proxy}/fast", i % 4 == 0, True)

        await asyncio.gather(*(worker(i) for i in range(16)))
        out["rss_after"] = rss_mb(proxy_pid)
        out["failures"] = client.failures
        out["record_ids"] = client.record_ids
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller loops (a smoke run, not the measurement)")
    args = ap.parse_args()
    args.latency_n = 100 if args.quick else 500
    args.tput_n = 640 if args.quick else 3200
    args.rounds = 1 if args.quick else 3
    args.rss_n = 1000 if args.quick else 10_000
    py = sys.executable
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmp:
        t = Path(tmp)
        procs = []
        try:
            up_fast, fast = start([py, str(FAKE), "--chunks", "64",
                                   "--ready-file", str(t / "fast.json")], t / "fast.json")
            procs.append(up_fast)
            up_slow, slow = start([py, str(FAKE), "--delay-ms", "50",
                                   "--ready-file", str(t / "slow.json")], t / "slow.json")
            procs.append(up_slow)
            px, proxy = start([py, "-m", "harness", "proxy", "--listen", "127.0.0.1:0", "--upstream", f"fast={fast}",
                               "--upstream", f"slow={slow}", "--log-dir", str(t / "logs"), "--cache-mode", "readwrite",
                               "--ready-file", str(t / "proxy.json")], t / "proxy.json")
            procs.append(px)
            res = asyncio.run(run(args, fast, slow, proxy, px.pid))
            records = []
            bad = 0
            for name in ("fast", "slow"):
                recs, stats = read_jsonl(t / "logs" / f"{name}.jsonl")
                records += recs
                bad += stats.skipped
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        ok_ids = {r["id"] for r in records if r.get("status") == 200 and r.get("error") is None}
        unrecorded = len(set(res["record_ids"]) - ok_ids)
    plain, stream = res["plain"], res["stream"]
    added = {k: v["proxy_p50"] - v["direct_p50"] for k, v in (("plain", plain), ("stream", stream))}
    ratio = res["tput_proxy"] / res["tput_direct"]
    growth = res["rss_after"] - res["rss_before"]
    failures = res["failures"] + unrecorded + bad
    rows = [
        ("(a) latency, non-streaming, c=1", f"p50 {plain['direct_p50']:.2f} / p99 {plain['direct_p99']:.2f} ms",
         f"p50 {plain['proxy_p50']:.2f} / p99 {plain['proxy_p99']:.2f} ms",
         f"added p50 {added['plain']:.2f} ms, p99 {plain['proxy_p99'] - plain['direct_p99']:.2f} ms", "added p50 <= 2 ms"),
        ("(a) latency, streaming 64 chunks, c=1", f"p50 {stream['direct_p50']:.2f} / p99 {stream['direct_p99']:.2f} ms",
         f"p50 {stream['proxy_p50']:.2f} / p99 {stream['proxy_p99']:.2f} ms",
         f"added p50 {added['stream']:.2f} ms, p99 {stream['proxy_p99'] - stream['direct_p99']:.2f} ms", "added p50 <= 2 ms"),
        ("(b) throughput, 50 ms upstream, c=64", f"{res['tput_direct']:.0f} req/s", f"{res['tput_proxy']:.0f} req/s",
         f"ratio {ratio:.3f}", ">= 0.90"),
        (f"(c) proxy RSS, {args.rss_n} requests", "", f"{res['rss_before']:.1f} -> {res['rss_after']:.1f} MB",
         f"growth {growth:.1f} MB", "<= 50 MB"),
        ("failed or unrecorded requests", "", f"{failures} of {len(res['record_ids']) + res['failures']}", "", "0"),
    ]
    print("| measurement | direct | through proxy | result | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nrecords checked: {len(ok_ids)} successful records, {bad} unreadable lines; "
          f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load0:.2f} at start / {os.getloadavg()[0]:.2f} at end (timings on a busy machine are not comparable)")
    met = (max(added.values()) <= TARGETS["added_p50_ms"] and ratio >= TARGETS["throughput_ratio"]
           and growth <= TARGETS["rss_growth_mb"] and failures == 0)
    print("all targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
