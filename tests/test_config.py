"""Config validation: the study configs pass; each kind of bad config exits 2 naming file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # configs use repo-relative paths


@pytest.mark.parametrize("name", ["study.yaml", "demo.yaml"])
def test_shipped_configs_validate(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", f"configs/{name}"]) == 0
    assert "ok" in capsys.readouterr().out


def _demo() -> dict:
    return yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())


def _bad(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    raw = _demo()
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (lambda c: c["benchmarks"].update(gsm8k=c["benchmarks"]["aime24"]), "benchmarks", "unknown benchmark 'gsm8k'"),
        (lambda c: c["models"]["base"].update(path="no/such/model.gguf", pypi=None), "models.base.path", "not found"),
        (lambda c: c["models"]["base"].pop("file"), "models.base.file", "Field required"),
        (lambda c: c["benchmarks"]["aime24"].update(max_tokens=0), "benchmarks.aime24.max_tokens", "greater than 0"),
        (lambda c: c["benchmarks"]["ifeval"].update(max_tokens=-5), "benchmarks.ifeval.max_tokens", "greater than 0"),
        (lambda c: c.update(candidate="gpt"), "(top level)", "candidate 'gpt' is not among the models"),
        (lambda c: c["sampling"].update(temprature=0.7), "sampling.temprature", "Extra inputs"),
    ],
)
def test_bad_config_exits_2_naming_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, field: str,
                                         words: str) -> None:  # type: ignore[no-untyped-def]
    path = _bad(tmp_path, mutate)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert f"field '{field}'" in err
    assert words in err


def test_malformed_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("study: demo\nmodels: [unclosed\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "malformed YAML" in err and "line" in err and str(path) in err


def test_every_config_command_rejects_bad_config(tmp_path: Path) -> None:
    path = _bad(tmp_path, lambda c: c["benchmarks"]["aime24"].update(max_tokens=0))
    for argv in (["serve", "--config", str(path), "--run", str(tmp_path / "r")],
                 ["eval", "--config", str(path), "--run", str(tmp_path / "r"), "--proxy-url", "http://127.0.0.1:9"],
                 ["run", "--config", str(path), "--run", str(tmp_path / "r")]):
        proc = subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True, text=True, cwd=REPO)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "max_tokens" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_llama_server_binary_is_a_clear_error(tmp_path: Path) -> None:
    path = _bad(tmp_path, lambda c: c["server"].update(binary=str(tmp_path / "no-llama-server")))
    proc = subprocess.run([sys.executable, "-m", "harness", "serve", "--config", str(path), "--run", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "llama-server binary not found" in proc.stderr and "Traceback" not in proc.stderr


def test_occupied_proxy_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        path = _bad(tmp_path, lambda c: c["proxy"].update(port=port))
        proc = subprocess.run([sys.executable, "-m", "harness", "serve", "--config", str(path), "--run",
                               str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert f"port {port}" in proc.stderr and "already in use" in proc.stderr and "Traceback" not in proc.stderr
