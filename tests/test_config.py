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
        (lambda c: c["models"]["base"].update(replicas=0), "models.base.replicas", "greater than or equal to 1"),
        (lambda c: c["models"]["base"].update(replicas=2, endpoints=["http://a:8080"]), "models.base",
         "replicas and endpoints exclude each other"),
        (lambda c: c["models"]["base"].update(endpoints=["gpu-box:8080"]), "models.base.endpoints", "http://"),
        (lambda c: c["models"]["base"].update(endpoints=[]), "models.base.endpoints", "at least one URL"),
        (lambda c: c["models"]["base"].update(replica=2), "models.base.replica", "Extra inputs"),
        (lambda c: c.update(benchmark_specs=["no/such/specs"]), "benchmark_specs", "benchmark spec folder not found"),
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


def test_replicas_and_gpu_lists() -> None:
    from harness.config import parse_config
    from harness.serve import ServeError, gpu_groups, proxy_args, replica_names

    raw = _demo()
    raw["models"]["distilled"]["replicas"] = 3
    raw["models"]["base"]["endpoints"] = ["http://box-a:8080/", "http://box-b:8080"]
    cfg = parse_config(raw, "x.yaml")
    assert replica_names(cfg, "distilled") == ["distilled.0", "distilled.1", "distilled.2"]
    assert replica_names(cfg, "base") == ["base"]
    assert cfg.models["base"].endpoints == ["http://box-a:8080", "http://box-b:8080"]
    # clients keep every slot of every replica busy
    assert cfg.concurrency("distilled") == 3 * cfg.server.slots and cfg.concurrency("base") == 2 * cfg.server.slots
    assert gpu_groups("distilled", 3, {}) is None
    assert gpu_groups("distilled", 3, {"GPU_DISTILLED": "4"}) == ["4", "4", "4"]
    assert gpu_groups("distilled", 3, {"GPU_DISTILLED": "0,1,2"}) == ["0", "1", "2"]
    assert gpu_groups("distilled", 3, {"GPU_DISTILLED": "0,1,2,3,4,5"}) == ["0,1", "2,3", "4,5"]
    assert gpu_groups("my-model", 1, {"GPU_MY_MODEL": "7"}) == ["7"]
    with pytest.raises(ServeError, match="GPU_DISTILLED"):
        gpu_groups("distilled", 3, {"GPU_DISTILLED": "0,1"})
    args = proxy_args(cfg, listen="x:1", log_dir="l", upstreams={"distilled": ["http://a", "http://b"], "base": "http://c"})
    ups = [args[i + 1] for i, a in enumerate(args) if a == "--upstream"]
    assert ups == ["distilled=http://a", "distilled=http://b", "base=http://c"]


def test_config_names_its_own_benchmark_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark from a spec folder the config names: known to validation, its token budget defaulted."""
    import harness.benchmarks

    monkeypatch.setattr(harness.benchmarks, "_extra_dirs", [])  # the folder is this test's own: forget it after
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = (REPO / "harness" / "benchmarks" / "aime25.yaml").read_text().replace("key: aime25", "key: aime25_copy")
    (specs / "aime25_copy.yaml").write_text(spec.replace("label: AIME 2025", "label: AIME 2025 (copy)"))
    raw = _demo()
    raw["benchmark_specs"] = [str(specs)]
    raw["benchmarks"] = {"aime25_copy": {"dataset": raw["benchmarks"]["aime25"]["dataset"]}}
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0
    assert "aime25_copy (38912 tok x1)" in capsys.readouterr().out
