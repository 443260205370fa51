"""The study's real datasets from the Hugging Face Hub (marker `hub`: deselected by default).

CI cannot reach the Hub; on a machine that can: `.venv/bin/pytest -m hub` (set HF_TOKEN for gated repos).
It fetches the datasets of configs/study.yaml into a temporary data dir, checks every file against its
benchmark's schema and that the lock pins a commit for each, which is what `make all` relies on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.config import dataset_file, load_config
from harness.datasets import check_schema

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.hub


def test_study_datasets_fetch_from_the_hub(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "study.yaml").read_text())
    raw["data_dir"] = str(tmp_path / "data")
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["fetch", "--config", str(config), "--only", "datasets"]) == 0
    cfg = load_config(config)
    lock = json.loads((tmp_path / "data" / "lock.json").read_text())["artifacts"]
    for bench in cfg.benchmarks:
        path = dataset_file(cfg, bench)
        assert check_schema(bench, path) > 0
        entry = next(v for k, v in lock.items() if path.name in k)
        assert len(str(entry["resolved_revision"])) == 40  # a commit, not a branch name
