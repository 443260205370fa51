"""Replicas with the real parts: `harness serve` starts two llama-server replicas of the demo model,
and one is killed (SIGKILL) in the middle of `harness eval`. The proxy routes around it, the eval
clients retry what it cut off, and the run finishes complete: every item answered, 0 errors,
`harness analyze` exits 0 (it exits 3 on an incomplete run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def harness(*argv: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def replica_config(tmp_path: Path) -> Path:
    """The demo study, cut to two lm-eval benchmarks x 4 items, with `distilled` on two servers."""
    raw = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    raw["models"]["distilled"]["replicas"] = 2
    raw["benchmarks"] = {b: {**raw["benchmarks"][b], "limit": 4} for b in ("aime24", "ifeval")}
    for spec in raw["benchmarks"].values():
        spec["dataset"]["path"] = str(REPO / spec["dataset"]["path"])
    raw["server"]["slots"] = 1
    path = tmp_path / "replicas.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_killing_a_replica_mid_eval_loses_nothing(tmp_path: Path, smollm_gguf: Path,
                                                   llama_server_binary: Path) -> None:
    cfg = replica_config(tmp_path)
    run = tmp_path / "run"
    up = harness("serve", "--config", str(cfg), "--run", str(run), "--detach")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        state = json.loads((run / "serve.json").read_text())
        assert set(state["servers"]) == {"distilled.0", "distilled.1", "base"}
        victim = state["servers"]["distilled.0"]
        ev = subprocess.Popen([sys.executable, "-m", "harness", "eval", "--config", str(cfg), "--run", str(run)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log = run / "proxy" / "distilled.jsonl"
        deadline = time.monotonic() + 300
        # wait until distilled is being evaluated (some of its answers logged), then kill one replica
        while time.monotonic() < deadline and ev.poll() is None:
            if log.exists() and len(log.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert ev.poll() is None, "eval ended before the kill: " + (ev.stdout.read() if ev.stdout else "")
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        out, _ = ev.communicate(timeout=600)
        assert ev.returncode == 0, out[-4000:]
        assert time.monotonic() > killed_at
        analyzed = harness("analyze", "--run", str(run))
        assert analyzed.returncode == 0, analyzed.stdout[-2000:] + analyzed.stderr[-3000:]
    finally:
        down = harness("down", "--run", str(run), timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    rows = summary["validity"]["per_model_benchmark"]
    rows = rows if isinstance(rows, list) else [dict(r, key=k) for k, r in rows.items()]
    assert rows and all(r["errors"] == 0 and r["missing"] == 0 for r in rows), rows
    recs, _ = read_jsonl(log)
    used = Counter(r["upstream"] for r in recs if r["status"] == 200)
    # both replicas answered (before the kill, and the survivor after it)
    assert victim["url"] in used and len(used) == 2, used
    after = [r for r in recs if r["upstream"] == victim["url"] and r["error"] is not None]
    for r in after:  # whatever the kill cut off names the dead replica and was answered again elsewhere
        assert any(o["request_hash"] == r["request_hash"] and o["status"] == 200 for o in recs)
