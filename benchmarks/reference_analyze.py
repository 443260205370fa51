"""`harness analyze` on the reference study's six lm-eval files (issue 15): cold, then an unchanged rerun.

Imports reference/lm-eval-outputs/*.gz into a fresh run directory, deletes any re-score cache, times
`harness analyze` (cold: IFEval texts re-scored with lm-eval's checkers), times it again (warm: the
run's re-score cache answers), checks the two summary.json files are equal field by field (except
generated_at) and prints wall time, CPU time of the analysis processes and the load average seen.

    python benchmarks/reference_analyze.py results/reference-bench [--cold-runs 1] [--warm-runs 2]
        [--compare OLD/summary.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "reference" / "lm-eval-outputs"
# (model, benchmark, samples, results), as reference/README.md lists them
FILES = [
    ("distilled", "aime24", "samples_aime24_2026-02-21T18-01-15.400547.jsonl",
     "aime24_2026-02-21T18-01-15.400547.json"),
    ("distilled", "aime25", "samples_aime25_2026-02-21T18-00-36.367478.jsonl",
     "aime25_2026-02-21T18-00-36.367478.json"),
    ("distilled", "ifeval", "samples_ifeval_2026-02-21T18-52-43.750841.jsonl",
     "ifeval_2026-02-21T18-52-43.750841.json"),
    ("base", "aime24", "samples_aime24_2026-02-21T20-53-11.560634.jsonl",
     "qwen3-14b-aime24_2026-02-21T20-53-11.560634.json"),
    ("base", "aime25", "samples_aime25_2026-02-21T20-31-30.971709.jsonl",
     "qwen3-14b-aime25_2026-02-21T20-31-30.971709.json"),
    ("base", "ifeval", "samples_ifeval_2026-02-21T21-45-55.981090.jsonl",
     "qwen3-14b-ifeval_2026-02-21T21-45-55.981090.json"),
]
SKIP = {"generated_at"}  # differs between any two analyses by design


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]  # run from REPO: this checkout's harness package


def _busy_s() -> float | None:
    """CPU seconds all cores have spent busy since boot (/proc/stat), None where unavailable."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str]) -> dict[str, float]:
    """Run `cmd`: wall seconds, CPU seconds of it and its children, 1-min load average before, and
    how many cores other processes kept busy meanwhile (the machine may be shared)."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = _busy_s()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)  # noqa: S603 (our own CLI)
    wall = time.perf_counter() - t0
    busy1 = _busy_s()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    others = max(0.0, (busy1 - busy0 - cpu) / wall) if busy0 is not None and busy1 is not None else float("nan")
    return {"wall_s": wall, "cpu_s": cpu, "load1": load, "others": others}


def diff(a: object, b: object, path: str = "") -> list[str]:
    """Field-by-field differences between two JSON values (keys in SKIP ignored)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in SKIP:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'second' if k not in a else 'first'}")
            else:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default="results/reference-bench", help="run directory to (re)create")
    ap.add_argument("--cold-runs", type=int, default=1, help="analyses with the re-score cache deleted")
    ap.add_argument("--warm-runs", type=int, default=2, help="unchanged reruns to time")
    ap.add_argument("--compare", type=Path, help="a summary.json (e.g. from another commit) the cold one must equal")
    args = ap.parse_args(argv)
    run = Path(args.run).resolve()
    shutil.rmtree(run, ignore_errors=True)
    for model, bench, samples, results in FILES:
        cmd = harness_cmd("import", "--run", str(run), "--model", model, "--benchmark", bench,
                          str(REF / f"{samples}.gz"), str(REF / f"{results}.gz"))
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)  # noqa: S603 (our own CLI)
    analyze = harness_cmd("analyze", "--run", str(run), "--candidate", "distilled", "--baseline", "base")
    cache = run / "analysis" / "rescore_cache.jsonl"
    summary = run / "analysis" / "summary.json"

    cold = []
    for _ in range(max(1, args.cold_runs)):
        cache.unlink(missing_ok=True)
        cold.append(timed(analyze))
    first = json.loads(summary.read_text(encoding="utf-8"))
    warm = [timed(analyze) for _ in range(max(1, args.warm_runs))]
    changes = diff(first, json.loads(summary.read_text(encoding="utf-8")))

    print(f"command: {shlex.join(analyze)}")
    print(f"cores: {len(os.sched_getaffinity(0))}   workers: {os.environ.get('HARNESS_ANALYZE_WORKERS', 'all cores')}")
    print(f"{'case':<26}{'wall s':>8}{'cpu s':>8}{'load1':>7}{'others':>8}   others: cores busy with other processes")
    for name, runs in (("cold (cache deleted)", cold), ("warm (unchanged)", warm)):
        for i, r in enumerate(runs, 1):
            print(f"{f'{name} {i}':<26}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['load1']:>7.2f}{r['others']:>8.2f}")
    size = f"{cache.stat().st_size / 1e3:.0f} kB" if cache.is_file() else "none"
    ratio = statistics.median(r["wall_s"] for r in warm) / statistics.median(r["wall_s"] for r in cold)
    print(f"warm/cold wall ratio (medians): {ratio:.2f}   re-score cache: {size}")
    if changes:
        print(f"summary.json changed between cold and warm ({len(changes)} field(s)):", *changes[:20], sep="\n  ")
        return 1
    print("summary.json identical between cold and warm (generated_at excepted)")
    if args.compare:
        other = diff(json.loads(args.compare.read_text(encoding="utf-8")), first)
        print(f"versus {args.compare}: " + ("identical" if not other else f"{len(other)} field(s) differ"),
              *other[:40], sep="\n  ")
        return 1 if other else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
