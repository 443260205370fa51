"""`harness doctor`: each bad input gives one FAIL line that names the problem and the fix."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import doctor
from harness.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _args(**kw: object) -> argparse.Namespace:
    base = {"gpu": False, "config": None, "env_file": ".env", "no_env_file": False, "skip_ports": True, "run": None}
    base.update(kw)
    return argparse.Namespace(**base)


def _engine_info() -> dict | None:
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        return client.info()
    except Exception:
        return None


def test_env_file_parsing(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\n\nHF_TOKEN='hf_abc'\nexport RUN=x\nPROXY_PORT = 9000\nBROKEN\n")
    assert doctor.read_env_file(env) == {"HF_TOKEN": "hf_abc", "RUN": "x", "PROXY_PORT": "9000"}


def test_missing_env_file_is_one_clear_line(tmp_path: Path) -> None:
    checks = doctor.diagnose(_args(env_file=str(tmp_path / ".env")))
    bad = [c for c in checks if c.name == ".env"]
    assert len(bad) == 1 and not bad[0].ok
    assert "cp .env.example .env" in bad[0].line() and "\n" not in bad[0].line()


def test_port_taken_is_reported_with_its_variable() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        checks = doctor.check_ports({"PROXY_PORT": str(port), "LLM_DISTILLED_PORT": "0", "LLM_BASE_PORT": "0"}, None)
    proxy = next(c for c in checks if c.name == "port PROXY_PORT")
    assert not proxy.ok and f"127.0.0.1:{port} is already in use" in proxy.detail and "PROXY_PORT" in proxy.detail
    assert all(c.ok for c in checks if c is not proxy)


def test_disk_need_counts_each_distinct_file_once() -> None:
    cfg = load_config(REPO / "configs/demo.yaml")  # two models, one shared PyPI-shipped GGUF
    need, notes = doctor.required_disk_bytes(cfg, {})
    assert need == doctor.DISK_HEADROOM_BYTES + doctor.PYPI_MODEL_BYTES and notes == []
    study = load_config(REPO / "configs/study.yaml")  # two different 14B files, sizes unknown offline
    need, notes = doctor.required_disk_bytes(study, {})
    assert need == doctor.DISK_HEADROOM_BYTES + 2 * doctor.UNKNOWN_MODEL_BYTES and len(notes) == 2
    sizes = {Path(m.file).name: 3 * doctor.GiB for m in study.models.values()}
    assert doctor.required_disk_bytes(study, sizes)[0] == doctor.DISK_HEADROOM_BYTES + 6 * doctor.GiB


def test_no_hub_models_means_no_token_needed() -> None:
    check, _ = doctor.check_hf_token(load_config(REPO / "configs/demo.yaml"), {})
    assert check.ok and "not needed" in check.detail


def test_gpu_path_names_missing_nvidia_runtime(tmp_path: Path) -> None:
    info = _engine_info()
    if info is None:
        pytest.skip("no reachable Docker engine: the GPU-runtime check needs one")
    if "nvidia" in (info.get("Runtimes") or {}):
        pytest.skip("this machine has the NVIDIA runtime")
    out = subprocess.run([sys.executable, "-m", "harness", "doctor", "--gpu", "--no-env-file", "--skip-ports",
                          "--config", "configs/demo.yaml", "--env-file", str(tmp_path / "none.env")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    fails = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "NVIDIA runtime" in fails[0] and "nvidia-container-toolkit" in fails[0]
