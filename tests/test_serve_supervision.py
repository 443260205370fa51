"""A llama-server dies (`kill -9`) in the middle of `harness eval` on the demo study, with real parts.

(a) `harness serve` supervises: it restarts the server on its port, records the restart in
    serve.json, and the same eval command completes the run (in flight, or when run again) with
    nothing restarted by hand.
(b) The whole stack is stopped (`harness down`) and started again (`harness serve`), and the same
    eval command is run again.

Both end with `harness analyze` succeeding, every item of every benchmark scored for both models
and no errors. The kill lands once the base server has answered a few requests (its proxy log
grows), never after a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.io import read_jsonl
from harness.serve import pid_alive

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "demo.yaml")
MODELS = ("distilled", "base")
BENCHES = ("aime24", "aime25", "ifeval", "humaneval_plus")
KILL_AFTER = 3  # base generations answered before the kill
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
T = TypeVar("T")


def harness(*argv: str | Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *map(str, argv)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def fixture_items(bench: str) -> int:
    path = REPO / "tests" / "fixtures" / "data" / f"{bench}.jsonl"
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def proxy_records(run: Path, model: str) -> list[dict[str, Any]]:
    path = run / "proxy" / f"{model}.jsonl"
    if not path.exists():
        return []
    return [r for r in read_jsonl(path)[0] if r["path"].endswith("/chat/completions")]


def answered(run: Path, model: str) -> list[dict[str, Any]]:
    return [r for r in proxy_records(run, model) if r["status"] == 200 and r["error"] is None]


def state(run: Path) -> dict[str, Any]:
    return json.loads((run / "serve.json").read_text())


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def serve(run: Path) -> dict[str, Any]:
    up = harness("serve", "--config", DEMO, "--run", run, "--detach", timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    return state(run)


def start_eval(run: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "harness", "eval", "--config", DEMO, "--run", str(run)],
                                cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def kill_base_mid_eval(run: Path, eval_proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL the base llama-server (pid from serve.json) once it has answered a few requests."""
    wait_for(lambda: len(answered(run, "base")) >= KILL_AFTER or eval_proc.poll() is not None, 600,
             f"{KILL_AFTER} base generations")
    assert eval_proc.poll() is None, "eval ended before the kill"
    pid = int(state(run)["servers"]["base"]["pid"])
    os.kill(pid, signal.SIGKILL)
    total = sum(fixture_items(b) for b in BENCHES)
    assert len(answered(run, "base")) < total, "the kill must land while base still has work"
    return pid


def stop_eval(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("the first eval did not end after its server went away") from None


def stack_pids(st: dict[str, Any]) -> list[int]:
    return [st["supervisor_pid"], st["proxy_pid"], *(s["pid"] for s in st["servers"].values())]


def down(run: Path) -> dict[str, Any]:
    """`harness down`, then check nothing of the stack runs; returns the retired serve.json."""
    before = state(run)
    out = harness("down", "--run", run, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (run / "serve.json").exists()
    retired = [json.loads(p.read_text()) for p in (run / "logs").glob("serve.*.json")]
    (last,) = [s for s in retired if s["started"] == before["started"]]
    assert last["status"] == "stopped"
    alive = [pid for pid in {*stack_pids(before), *stack_pids(last)} if pid_alive(pid)]
    assert not alive, f"still running after `harness down`: {alive}"
    return last


def assert_complete(run: Path) -> None:
    """analyze succeeds; every item of every benchmark is scored for both models; no errors."""
    out = harness("analyze", "--run", run, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    for bench in BENCHES:
        scores = summary["benchmarks"][bench]["scores"]
        for model in MODELS:
            assert scores[model]["n"] == fixture_items(bench), (model, bench, scores[model])
            assert (run / "raw" / model / bench / "done.json").exists()
    # Nothing finished was generated twice: the rerun took it from the proxy cache.
    for model in MODELS:
        upstream = Counter(r["request_hash"] for r in answered(run, model) if not r["cache_hit"])
        assert max(upstream.values()) == 1, f"{model}: a finished generation was requested upstream again"
    # DESIGN §6: every row carries `errors` (final attempt failed) and `missing`; 0 in a complete run.
    rows = {(r["model"], r["benchmark"]): r for r in summary["validity"]["per_model_benchmark"]}
    for bench in BENCHES:
        for model in MODELS:
            row = rows[(model, bench)]
            assert row["n"] == fixture_items(bench), row
            assert row.get("errors") == 0, row
            assert row.get("missing") == 0, row


def test_supervised_server_restarts_and_the_eval_completes(tmp_path: Path, smollm_gguf: Path,
                                                           llama_server_binary: Path) -> None:
    run = tmp_path / "supervised"
    first = serve(run)
    try:
        eval_proc = start_eval(run, tmp_path / "eval-1.log")
        killed = kill_base_mid_eval(run, eval_proc)

        def restarted() -> dict[str, Any] | None:
            st = state(run)
            r = st["servers"]["base"]["restarts"]
            return st if r and "ready" in r[-1] else None

        st = wait_for(restarted, 300, "the base server to be restarted and ready")
        (event,) = st["servers"]["base"]["restarts"]
        assert event["old_pid"] == killed and event["signal"] == "SIGKILL" and event["exit_code"] is None
        assert event["new_pid"] == st["servers"]["base"]["pid"] != killed and pid_alive(event["new_pid"])
        assert event["time"].endswith("Z") and event["time"] > first["started"]
        assert st["status"] == "running" and st["servers"]["distilled"]["restarts"] == []
        # Same port, same proxy: nothing else had to change.
        assert st["servers"]["base"]["url"] == first["servers"]["base"]["url"]
        assert (st["proxy_pid"], st["supervisor_pid"]) == (first["proxy_pid"], first["supervisor_pid"])
        # The kill hit requests in flight: the proxy recorded them as failed exchanges.
        assert any(r["status"] != 200 for r in proxy_records(run, "base"))

        if stop_eval(eval_proc, 900) != 0:  # in flight or on a rerun, with nothing restarted by hand
            again = harness("eval", "--config", DEMO, "--run", run)
            assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
        assert_complete(run)
        assert state(run)["servers"]["base"]["restarts"] == st["servers"]["base"]["restarts"]
    finally:
        last = down(run)
    assert len(last["servers"]["base"]["restarts"]) == 1  # the run keeps the record after `down`


def test_stack_stopped_and_started_again_then_the_same_eval(tmp_path: Path, smollm_gguf: Path,
                                                            llama_server_binary: Path) -> None:
    run = tmp_path / "restarted"
    first = serve(run)
    try:
        eval_proc = start_eval(run, tmp_path / "eval-1.log")
        kill_base_mid_eval(run, eval_proc)
        # Down at once, while the supervisor is busy restarting base: it must still stop everything.
        down(run)
        rc = stop_eval(eval_proc, 600)
        assert rc != 0, "an eval that lost its server must not report success"
        second = serve(run)
        assert second["supervisor_pid"] != first["supervisor_pid"]
        again = harness("eval", "--config", DEMO, "--run", run)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
        assert_complete(run)
    finally:
        if (run / "serve.json").exists():
            down(run)


def test_serve_gives_up_after_max_restarts_and_exits_non_zero(tmp_path: Path, smollm_gguf: Path,
                                                             llama_server_binary: Path) -> None:
    run = tmp_path / "gives-up"
    log = tmp_path / "serve.log"
    with open(log, "wb") as fh:  # in the foreground, so its exit code can be read
        proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--config", DEMO, "--run", str(run),
                                 "--max-restarts", "1"], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        first = wait_for(lambda: (run / "serve.json").exists() and state(run), 600, "the stack")
        os.kill(first["servers"]["base"]["pid"], signal.SIGKILL)
        second = wait_for(lambda: (s := state(run))["servers"]["base"]["restarts"]
                          and "ready" in s["servers"]["base"]["restarts"][-1] and s, 300, "the restart")
        os.kill(second["servers"]["base"]["pid"], signal.SIGKILL)  # one more than --max-restarts 1 allows
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc == 1, log.read_text()[-3000:]
    assert "giving up" in log.read_text()
    final = state(run)
    assert final["status"] == "failed" and "giving up" in final["error"]
    base = final["servers"]["base"]
    assert len(base["restarts"]) == 1 and base["gave_up"]["signal"] == "SIGKILL"
    assert base["gave_up"]["old_pid"] == second["servers"]["base"]["pid"]
    alive = [pid for pid in {*stack_pids(first), *stack_pids(final)} if pid_alive(pid)]
    assert not alive, f"still running after serve gave up: {alive}"
    out = harness("down", "--run", run)  # nothing left to stop; the record moves to logs/
    assert out.returncode == 0 and not (run / "serve.json").exists()
