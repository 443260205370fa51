"""`harness eval` with isolation unavailable: it refuses to score generated code unless the
explicit flag is given; with the flag it scores, and the manifest and the report say so.

Real parts: `harness serve` (two llama-servers with SmolLM2-135M + the proxy), `harness eval`
(HumanEval+ client + evalplus), `harness analyze`, `harness report`. Isolation is made unavailable
by putting first on PATH an `unshare` that fails as it does in an unprivileged container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def harness(*argv: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_eval_refuses_unisolated_scoring_unless_flagged(tmp_path: Path, smollm_gguf: Path,
                                                        llama_server_binary: Path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for spec in raw["models"].values():
        spec["path"] = str(smollm_gguf)
    raw["server"]["binary"] = str(llama_server_binary)
    raw["benchmarks"] = {"humaneval_plus": {**raw["benchmarks"]["humaneval_plus"], "max_tokens": 64, "limit": 2}}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    no_ns = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}

    up = harness("serve", "--config", str(config), "--run", str(run), "--detach")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    try:
        refused = harness("eval", "--config", str(config), "--run", str(run), env=no_ns)
        assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-3000:]
        assert "--unsafe-allow-unsandboxed-code" in refused.stderr and "namespaces" in refused.stderr
        record = json.loads((run / "sandbox.json").read_text())
        assert record["scoring"] == "refused" and record["passed"] is False
        assert json.loads((run / "manifest.json").read_text())["sandbox"]["scoring"] == "refused"
        assert not list(run.glob("raw/*/humaneval_plus/done.json"))  # nothing scored
        assert not list(run.glob("raw/*/humaneval_plus/samples_*_eval_results.json"))

        allowed = harness("eval", "--config", str(config), "--run", str(run), "--unsafe-allow-unsandboxed-code",
                          env=no_ns)
        assert allowed.returncode == 0, allowed.stdout[-2000:] + allowed.stderr[-3000:]
    finally:
        harness("down", "--run", str(run))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["sandbox"]["allow_unisolated"] is True
    assert manifest["sandbox"]["allowed_by"] == "cli --unsafe-allow-unsandboxed-code"
    assert manifest["sandbox"]["scoring"] == "allowed unisolated"
    for model in raw["models"]:
        done = json.loads((run / "raw" / model / "humaneval_plus" / "done.json").read_text())
        assert all(p["sandbox"]["network"] == "host" for p in done["protocols"].values())

    for stage in (["analyze", "--run", str(run)], ["report", "--run", str(run)]):
        proc = harness(*stage)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = (run / "report.md").read_text()
    assert "Unisolated execution of generated code was explicitly allowed" in report
    assert "cli --unsafe-allow-unsandboxed-code" in report
