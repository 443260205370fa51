"""manifest.json: every DESIGN §3 provenance item, live server facts from the real llama-server,
GGUF hashing computed once and reused only while the file is unchanged, failures recorded not raised."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from harness import SCHEMA_VERSION
from harness.config import load_config
from harness.io import Sha256Cache
from harness.provenance import write_manifest

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def study(tmp_path: Path, smollm_gguf: Path) -> tuple[Path, Path]:
    """The demo config, pointed at the real GGUF and fixture datasets, with a private data dir."""
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data = tmp_path / "data"
    data.mkdir()
    raw["data_dir"] = str(data)
    for spec in raw["models"].values():
        spec["path"] = str(smollm_gguf)
    for bench in raw["benchmarks"].values():
        bench["dataset"]["path"] = str(REPO / bench["dataset"]["path"])
    raw["training_data"] = {"path": str(REPO / raw["training_data"]["path"])}
    cfg_path = tmp_path / "study.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    (data / "lock.json").write_text(json.dumps({"datasets": {"aime24": {"revision": "abc123"}}}))
    return cfg_path, data


def test_manifest_records_everything(study: tuple[Path, Path], llama_server: str, smollm_gguf: Path,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_path, data = study
    cfg = load_config(cfg_path)
    monkeypatch.delenv("HARNESS_COMPOSE_PROJECT", raising=False)
    run = tmp_path / "run"
    manifest = write_manifest(run, cfg, cfg_path, {"distilled": llama_server, "base": "http://127.0.0.1:9"},
                              extra={"command": "test"})
    on_disk = json.loads((run / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["created"].endswith("Z")
    assert manifest["config"]["sha256"] == sha256(cfg_path)
    assert manifest["config"]["parsed"]["study"] == "demo"
    git = manifest["harness"]
    assert (git["git_sha"] is None and git["git_dirty"] is None) or (len(git["git_sha"]) == 40 and isinstance(git["git_dirty"], bool))
    if shutil.which("git") and (REPO / ".git").exists():
        assert git["git_sha"] and len(git["git_sha"]) == 40
    import aiohttp
    import scipy
    assert manifest["packages"]["aiohttp"] == aiohttp.__version__ and manifest["packages"]["scipy"] == scipy.__version__
    assert manifest["packages"]["lm-eval"] and manifest["packages"]["evalplus"]
    # the live server answered; the dead one is recorded as such, not raised
    live = manifest["servers"]["distilled"]
    assert live["errors"] == {} and live["props"]["model_path"] and live["models"]["data"][0]["id"]
    assert live["props"]["default_generation_settings"]["n_ctx"] > 0
    dead = manifest["servers"]["base"]
    assert dead["props"] is None and set(dead["errors"]) == {"props", "models"}
    # models: path, size, sha256 (checked against an independent hash and the config's pin)
    model = manifest["models"]["distilled"]
    assert model["path"] == str(smollm_gguf.resolve()) and model["size"] == smollm_gguf.stat().st_size
    assert model["sha256"] == sha256(smollm_gguf) and model["sha256_ok"] is True
    assert model["seed"] == cfg.seed_for("distilled")
    for bench, info in manifest["datasets"].items():
        assert info["exists"] and info["sha256"] == sha256(Path(info["path"])), bench
    assert manifest["training_data"]["sha256"] == sha256(Path(manifest["training_data"]["path"]))
    assert manifest["data_lock"] == {"datasets": {"aime24": {"revision": "abc123"}}}
    assert manifest["docker"] is None  # not under compose
    assert manifest["gpu"] is None if shutil.which("nvidia-smi") is None else manifest["gpu"]
    assert manifest["extra"] == {"command": "test"}


def test_gguf_hash_is_cached_and_invalidated_by_size_or_mtime(study: tuple[Path, Path], tmp_path: Path) -> None:
    cfg_path, data = study
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 1000)
    raw = yaml.safe_load(cfg_path.read_text())
    for spec in raw["models"].values():
        spec["path"] = str(gguf)
        spec.pop("sha256", None)
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path)
    first = write_manifest(tmp_path / "r1", cfg, cfg_path, {})
    assert first["models"]["base"]["sha256"] == sha256(gguf)
    sidecar = data / Sha256Cache.FILE_NAME
    entries = json.loads(sidecar.read_text())["entries"]
    assert len(entries) >= 1
    # plant a marker in the cache entry: a reused entry shows the marker, a recomputed one does not
    key = next(k for k in entries if k.startswith(str(gguf.resolve())))
    entries[key] = "0" * 64
    sidecar.write_text(json.dumps({"schema_version": 1, "entries": entries}))
    assert write_manifest(tmp_path / "r2", cfg, cfg_path, {})["models"]["base"]["sha256"] == "0" * 64
    st = gguf.stat()
    os.utime(gguf, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same size, new mtime
    assert write_manifest(tmp_path / "r3", cfg, cfg_path, {})["models"]["base"]["sha256"] == sha256(gguf)


def test_docker_failure_is_recorded_not_raised(study: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_path, _ = study
    monkeypatch.setenv("HARNESS_COMPOSE_PROJECT", "harness-test")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    manifest = write_manifest(tmp_path / "run", load_config(cfg_path), cfg_path, {})
    assert manifest["docker"]["project"] == "harness-test" and "error" in manifest["docker"]


def test_manifest_reuses_the_hash_fetch_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch records the sha256 it verified; the manifest must not hash the same file again."""
    import harness.io
    from harness.fetch.runner import Fetcher
    from harness.fetch.sources import SourceContext

    data = tmp_path / "data"
    gguf = data / "models" / "m.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF" + b"x" * 1000)
    fetcher = Fetcher(data, SourceContext(None, None, None))
    fetcher._remember_hash(gguf, harness.io.sha256_file(gguf))

    def no_rehash(path: object, chunk: int = 0) -> str:
        raise AssertionError(f"hashed again: {path}")

    monkeypatch.setattr(harness.io, "sha256_file", no_rehash)
    assert harness.io.Sha256Cache.for_data_dir(data).sha256(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest()
