"""The records stages exchange through files, as typed, versioned models validated on read.

Every JSON record the harness writes carries `schema_version`. The models here are the contract
between stages: the proxy record (proxy/<model>.jsonl), a HumanEval+-style generation
(raw/<model>/<bench>/generations.jsonl), the stage-finished marker (done.json) and the analysis
summary (analysis/summary.json). Stages import these, never each other's internals.

Versioning rule (also in results/README.md):
- Adding a field does not bump `schema_version`: every model allows extra fields, so an older
  reader keeps working on a newer file, and a newer reader gives an added field a default.
- Removing a field or changing its meaning bumps `schema_version`. Readers accept every version in
  `READABLE_VERSIONS`; a file of any other version is refused with a message saying how to
  regenerate it (`harness analyze` re-derives summary.json from raw/ and proxy/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import SCHEMA_VERSION

READABLE_VERSIONS = (1,)


class RecordError(ValueError):
    """A record that cannot be read: unknown schema version or a field of the wrong shape."""


class SchemaVersionError(RecordError):
    """A record written under a schema_version this harness does not read."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: int = SCHEMA_VERSION


class ErrorInfo(BaseModel):
    """The one shape of `error` in every record. `retriable`: would the same request again likely succeed."""

    model_config = ConfigDict(extra="allow")
    type: str
    message: str
    retriable: bool


def error_info(kind: str, message: str, retriable: bool, **extra: Any) -> dict[str, Any]:
    """An `error` value as written to a record (plain dict, validated shape)."""
    return ErrorInfo(type=kind, message=message, retriable=retriable, **extra).model_dump()


class _GenerationOutcome(_Record):
    """What every record of one generation holds, whoever wrote it: the text split at </think>, how it ended."""

    request_hash: str | None = None
    content: str | None = None
    reasoning: str | None = None
    answer: str | None = None
    think_closed: bool | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    latency_s: float | None = None
    error: ErrorInfo | None = None


class ProxyRecord(_GenerationOutcome):
    """One HTTP exchange through the logging proxy (DESIGN.md §3)."""

    id: str
    ts_start: str
    ts_end: str
    model: str
    benchmark: str | None = None
    path: str
    status: int
    request: Any = None
    response: Any = None
    timings: dict[str, Any] | None = None
    cache_hit: bool = False
    upstream: str | None = None


class Generation(_GenerationOutcome):
    """One request outcome of our own client (HumanEval+): final when `error` is null."""

    ts: str
    model: str
    task_id: str
    repeat: int = Field(ge=0)
    seed: int | None = None
    attempts: int | None = None


class DoneMarker(_Record):
    """done.json: written last and atomically, only when every item x repeat has a final answer."""

    model: str
    benchmark: str
    finished: str
    items: int | None = None
    repeats: int | None = None


class ScoreBlock(BaseModel):
    model_config = ConfigDict(extra="allow")
    correct: int
    n: int
    accuracy: float | None


class PairedBlock(BaseModel):
    model_config = ConfigDict(extra="allow")
    both: int
    only_candidate: int
    only_baseline: int
    neither: int
    delta_pp: float | None
    test: str | None
    p_value: float | None
    cohens_h: float | None
    effect: str | None


class BenchmarkSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    metric: str
    protocol: Literal["as_recorded", "reasoning_stripped"]
    n: int
    scores: dict[str, ScoreBlock]
    paired: PairedBlock | None
    protocols: dict[str, dict[str, ScoreBlock]]


class Comparison(BaseModel):
    """One entry of summary.comparisons: a candidate against the baseline (DESIGN.md §6)."""

    model_config = ConfigDict(extra="allow")
    candidate: str
    baseline: str
    benchmarks: dict[str, BenchmarkSummary]


class ValidityRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    benchmark: str
    imported: bool
    n: int
    errors: int
    missing: int


class Validity(BaseModel):
    model_config = ConfigDict(extra="allow")
    per_model_benchmark: list[ValidityRow]
    protocol_comparison: list[dict[str, Any]]


class Summary(_Record):
    """analysis/summary.json: every number the report prints. Every section is required."""

    run: str
    generated_at: str
    candidate: str
    baseline: str
    benchmarks: dict[str, BenchmarkSummary]
    benchmark_notes: dict[str, dict[str, Any]]
    comparisons: list[Comparison] | None = None  # every candidate vs the baseline; the first = the top level
    per_question: dict[str, Any]
    categories: dict[str, Any]
    reasoning_volume: dict[str, Any]
    training_data: dict[str, Any] | None
    leakage: dict[str, Any] | None
    transfer: dict[str, Any]
    comparison: dict[str, Any]
    validity: Validity
    inputs: dict[str, Any]
    provenance: dict[str, Any] | None


M = TypeVar("M", bound=BaseModel)

REGENERATE_HINT = {
    "Summary": "re-create it with `harness analyze --run RUN` (it is derived from raw/ and proxy/)",
    "DoneMarker": "delete it and rerun `harness eval` (finished generations come from the proxy cache)",
}


def parse(model: type[M], data: Any, source: str) -> M:
    """Validate one record; RecordError names the source, the field and what was wrong."""
    if isinstance(data, dict) and "schema_version" in data and data["schema_version"] not in READABLE_VERSIONS:
        hint = REGENERATE_HINT.get(model.__name__, "it was written by another version of the harness")
        raise SchemaVersionError(f"{source}: schema_version {data['schema_version']!r} is not one this harness reads "
                          f"({', '.join(map(str, READABLE_VERSIONS))}); {hint}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RecordError(f"{source}: field '{where}': {first['msg']}{more}") from None


def shape_problem(model: type[BaseModel], data: Any, source: str) -> str | None:
    """For readers that skip a malformed record and go on: None when valid, else what is wrong.

    A record of a schema_version this harness does not read is never skipped: SchemaVersionError.
    """
    try:
        parse(model, data, source)
    except SchemaVersionError:
        raise
    except RecordError as exc:
        return str(exc)
    return None


def read_json(model: type[M], path: Path) -> M:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: not readable JSON ({exc})") from None
    return parse(model, data, str(path))
