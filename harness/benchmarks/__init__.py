"""The benchmark registry: one typed spec per benchmark, read by every stage.

Each benchmark is one YAML file (this folder's `*.yaml`, plus any folder named in the config's
`benchmark_specs` or in $HARNESS_BENCHMARK_SPECS): its key and labels, dataset schema (required
fields, item id), runner (an lm-eval task we generate, or an evalplus dataset run through our own
client and the sandbox), primary metric, answer extraction for maj@k, category source, report
section and default token budget. Adding a benchmark is adding a file; no stage names benchmarks.

Behaviour that differs between benchmarks is chosen by a spec's *kinds* (`runner`, `scorer`,
`section`, `categories`, `answer_extraction`), never by its key, so a new benchmark that reuses a
kind needs no code. Functions named in a spec (`module:function`) are imported when used.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BUILTIN_DIR = Path(__file__).resolve().parent
ENV_DIRS = "HARNESS_BENCHMARK_SPECS"  # os.pathsep-separated folders of extra spec files
KEY_PATTERN = r"^[a-z][a-z0-9_]*$"


class RegistryError(ValueError):
    """A spec file that cannot be read or is not a valid spec (the message names file and field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSchema(_Strict):
    required_fields: list[str] = Field(min_length=1)
    item_id: str | None = None  # field naming an item; None: lm-eval's doc_id
    text_field: str | None = None  # the question text (tables, taxonomy, leakage)
    answer_field: str | None = None  # the gold answer shown in tables
    category_field: str | None = None  # categories: {field: ...} reads this
    gated: bool = False  # the hub repo needs accepted terms and HF_TOKEN (harness fetch checks first)


class Group(_Strict):
    """Benchmarks pooled into one extra analysis row (AIME 2024 + 2025 -> `aime_combined`)."""

    key: str = Field(pattern=KEY_PATTERN)
    label: str
    family: str  # the name the report uses for the group ("AIME")
    by: str = "benchmark"  # what the members are, in the report's headings ("year": "Scores by year")
    topics: str = "category"  # what its categories are called ("math topic")


class LmEvalTask(_Strict):
    """What the generated lm-eval task YAML needs (harness.runners.lm_eval_runner)."""

    doc_to_text: str
    doc_to_target: str | int
    process_results: str  # module:function, also what re-scores imported samples
    process_docs: str | None = None  # module:function over a datasets.Dataset
    process_docs_args: dict[str, Any] = Field(default_factory=dict)  # keyword arguments (a seed), recorded in the task
    doc_to_choice: list[str] | None = None
    metrics: list[tuple[str, str]] = Field(min_length=1)  # (metric, aggregation: mean | module:function)
    version: float = 0.0


class Evalplus(_Strict):
    """An evalplus dataset run through the harness's client and scored in the sandbox."""

    dataset: Literal["humaneval", "mbpp"]
    id_prefix: str = ""  # stripped for short names when no entry point is known


class Categories(_Strict):
    """Where an item's categories come from: taxonomy keyword rules on its text, IFEval-style
    instruction ids (per instruction), or a dataset field."""

    taxonomy: str | None = None  # section of configs/taxonomy.yaml
    instructions: str | None = None  # taxonomy section whose training keywords match instruction categories
    field: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Categories:
        if sum(x is not None for x in (self.taxonomy, self.instructions, self.field)) != 1:
            raise ValueError("categories: give exactly one of taxonomy, instructions, field")
        return self


class BenchmarkSpec(_Strict):
    key: str = Field(pattern=KEY_PATTERN)
    label: str
    short_label: str | None = None
    section: Literal["reasoning", "instruction_following", "code"]
    runner: Literal["lm_eval", "evalplus"]
    # How a text is scored again (imports, the reasoning-stripped protocol): lm-eval's process_results
    # on the text (answer_match), IFEval's seeded strict checks (instruction_following), or the sandbox.
    scorer: Literal["answer_match", "instruction_following", "code_execution"]
    primary_metric: str
    sample_metric: str | None = None  # lm-eval per-sample field; default primary_metric
    answer_extraction: str | None = None  # maj@k: module:function(text) -> answer, or a built-in name
    per_question: bool = False  # a per-question table in the report (small benchmarks)
    categories: Categories | None = None
    default_max_tokens: int = Field(gt=0)
    nominal_items: int | None = Field(default=None, gt=0)  # published size, for `harness plan`
    needs_sentence_data: bool = False  # nltk punkt_tab for the scorer
    group: Group | None = None
    dataset: DatasetSchema
    lm_eval: LmEvalTask | None = None
    evalplus: Evalplus | None = None
    source: str = ""  # the file it was read from

    @model_validator(mode="after")
    def _runner_block(self) -> BenchmarkSpec:
        if self.runner == "lm_eval" and self.lm_eval is None:
            raise ValueError("runner lm_eval needs an `lm_eval:` block")
        if self.runner == "evalplus" and self.evalplus is None:
            raise ValueError("runner evalplus needs an `evalplus:` block")
        if (self.scorer == "code_execution") != (self.runner == "evalplus"):
            raise ValueError("scorer code_execution goes with runner evalplus, and only with it")
        return self

    @property
    def short(self) -> str:
        return self.short_label or self.label

    @property
    def metric_field(self) -> str:
        """The per-sample field lm-eval writes for the primary metric."""
        return self.sample_metric or self.primary_metric

    @property
    def per_instruction(self) -> bool:
        """Scored per instruction as well as per prompt (IFEval's checks): instruction-level results, seeded re-scores."""
        return self.scorer == "instruction_following"

    def evalplus_run(self) -> Evalplus:
        """The evalplus block; an error for a benchmark that is not run through evalplus."""
        if self.evalplus is None:
            raise RegistryError(f"{self.key} is not an evalplus benchmark (runner {self.runner})")
        return self.evalplus

    def task(self) -> LmEvalTask:
        """The lm-eval task block; an error for a benchmark that is not run by lm-eval."""
        if self.lm_eval is None:
            raise RegistryError(f"{self.key} is not an lm-eval benchmark (runner {self.runner})")
        return self.lm_eval


def resolve(ref: str) -> Callable[..., Any]:
    """`module:function` -> the function (imported on first use)."""
    module, _, name = ref.partition(":")
    if not module or not name:
        raise RegistryError(f"{ref!r}: expected module:function")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{ref!r}: cannot import ({exc})") from None


def _read_spec(path: Path) -> BenchmarkSpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: cannot read benchmark spec ({exc})") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: a benchmark spec is a mapping")
    try:
        spec = BenchmarkSpec.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(spec)"
        raise RegistryError(f"{path}: {where}: {err['msg']}") from None
    if spec.key != path.stem:
        raise RegistryError(f"{path}: key {spec.key!r} must match the file name ({path.stem!r})")
    return spec


class Registry:
    """Specs in a fixed order: the built-ins as listed in ORDER, then the rest by key."""

    def __init__(self, specs: Iterable[BenchmarkSpec]):
        self._specs: dict[str, BenchmarkSpec] = {}
        for s in specs:
            if s.key in self._specs and self._specs[s.key].source != s.source:
                raise RegistryError(f"benchmark {s.key!r} is defined twice: {self._specs[s.key].source} and {s.source}")
            self._specs[s.key] = s
        groups: dict[str, Group] = {}
        for s in self._specs.values():
            if s.group is None:
                continue
            if s.group.key in self._specs:
                raise RegistryError(f"{s.source}: group key {s.group.key!r} is also a benchmark")
            if groups.setdefault(s.group.key, s.group) != s.group:
                raise RegistryError(f"{s.source}: group {s.group.key!r} is described differently elsewhere")
        self._groups = groups
        # Group key -> its members in registry order (the registry never changes once built).
        self._members = {g: [k for k, s in self._specs.items() if s.group and s.group.key == g] for g in groups}

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __getitem__(self, key: str) -> BenchmarkSpec:
        try:
            return self._specs[key]
        except KeyError:
            raise KeyError(f"unknown benchmark {key!r}; known: {', '.join(self.keys())}") from None

    def get(self, key: str) -> BenchmarkSpec | None:
        return self._specs.get(key)

    def keys(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[BenchmarkSpec]:
        return list(self._specs.values())

    def where(self, **kinds: Any) -> list[str]:
        """Keys of the specs whose attributes equal `kinds` (runner="lm_eval", section="code", ...)."""
        return [k for k, s in self._specs.items() if all(getattr(s, a) == v for a, v in kinds.items())]

    def groups(self) -> dict[str, list[str]]:
        """Group key -> its member benchmarks, in registry order."""
        return {g: list(m) for g, m in self._members.items()}

    def group(self, key: str) -> Group | None:
        return self._groups.get(key)

    def members(self, key: str) -> list[str]:
        """The benchmarks a key stands for: a group's members, else the benchmark itself."""
        return list(self._members.get(key, [key]))

    def analysis_order(self) -> list[str]:
        """Benchmarks and groups in report order: each group right after its last member."""
        out: list[str] = []
        for k, s in self._specs.items():
            out.append(k)
            if s.group and k == self._members[s.group.key][-1]:
                out.append(s.group.key)
        return out

    def label(self, key: str) -> str:
        if key in self._specs:
            return self._specs[key].label
        if key in self._groups:
            return self._groups[key].label
        return key

    def family(self, key: str) -> str:
        """What a report calls a benchmark together with its group: the group's family ("AIME"), else its label."""
        group = self._groups.get(key) or (self._specs[key].group if key in self._specs else None)
        return group.family if group else self.label(key)

    def short(self, key: str) -> str:
        return self._specs[key].short if key in self._specs else self.label(key)

    def labels(self) -> dict[str, str]:
        return {k: self.label(k) for k in self.analysis_order()}

    def section_of(self, key: str) -> str | None:
        spec = self._specs.get(key) or next((s for s in self._specs.values() if s.group and s.group.key == key), None)
        return None if spec is None else spec.section


# The built-in benchmarks' order (the reference study's four first); further files follow by name.
ORDER = ("aime24.yaml", "aime25.yaml", "math500.yaml", "gpqa_diamond.yaml", "ifeval.yaml", "humaneval_plus.yaml",
         "mbpp_plus.yaml")


def _spec_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.yaml"), key=lambda p: (ORDER.index(p.name) if p.name in ORDER else len(ORDER), p.name))
    return files


@lru_cache(maxsize=8)
def _load(dirs: tuple[str, ...]) -> Registry:
    specs = []
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            raise RegistryError(f"{folder}: benchmark spec folder not found")
        specs += [_read_spec(p) for p in _spec_files(folder)]
    return Registry(specs)


_extra_dirs: list[str] = []


def add_spec_dirs(dirs: Iterable[str | Path]) -> None:
    """Register more spec folders for this process (a config's `benchmark_specs`)."""
    for d in dirs:
        path = str(Path(d).resolve())
        if path not in _extra_dirs:
            _extra_dirs.append(path)


def registry() -> Registry:
    """Every benchmark this process knows: built-ins, $HARNESS_BENCHMARK_SPECS, configured folders."""
    env = [str(Path(p).resolve()) for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p.strip()]
    return _load((str(BUILTIN_DIR), *env, *_extra_dirs))


def spec(key: str) -> BenchmarkSpec:
    return registry()[key]
