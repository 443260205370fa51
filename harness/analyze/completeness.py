"""Is every item x repeat of every model x benchmark scored? Errors and missing items, counted.

An errored generation is never a sample (DESIGN.md §6). Per model x benchmark:
- `expected`: item x repeat pairs the study asked for (config: dataset rows, `limit`, samples_per_item;
  imported results: lm-eval's own `n-samples` per repeat, else the samples present);
- `scored`: pairs with an outcome under at least one protocol;
- `missing`: expected pairs without an outcome (errored ones included);
- `errors`: requests whose final attempt failed and that never got an answer (HumanEval+: the latest
  generations.jsonl record of a task x repeat has an error; lm-eval: every proxy record of that
  request hash for that benchmark is an error). An attempt that failed and was retried successfully
  is not an error.
`harness analyze` refuses (exit 3) when any row has errors or missing items, unless --allow-incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analyze.load import BenchData, RunData
from harness.io import iter_jsonl


@dataclass
class Completeness:
    model: str
    bench: str
    expected: int
    scored: int
    errors: int

    @property
    def missing(self) -> int:
        return max(0, self.expected - self.scored)

    def as_dict(self) -> dict[str, Any]:
        return {"expected": self.expected, "scored": self.scored, "missing": self.missing, "errors": self.errors}


def expected_from_config(cfg: Any) -> dict[tuple[str, str], int]:
    """(model, bench) -> item x repeat pairs the config asks for; unreadable datasets are skipped."""
    from harness.config import dataset_file
    from harness.datasets import DatasetSchemaError, check_schema

    out: dict[tuple[str, str], int] = {}
    for bench, spec in cfg.benchmarks.items():
        try:
            n = check_schema(bench, dataset_file(cfg, bench))
        except (OSError, DatasetSchemaError):
            continue
        n = min(n, spec.limit) if spec.limit else n
        for model in cfg.models:
            out[(model, bench)] = n * spec.samples_per_item
    return out


def _scored_pairs(bd: BenchData) -> int:
    pairs = {(rep, item) for reps in bd.outcomes.values() for rep, items in reps.items() for item in items}
    return len(pairs)


def _imported_expected(bd: BenchData) -> int:
    """lm-eval's own count of documents per repeat (results `n-samples`), else what is present."""
    per_rep = {}
    for rep in bd.repeats:
        res = bd.recorded_n_samples.get(rep.get("samples", ""))
        if isinstance(res, int):
            per_rep[rep["repeat"]] = res
    present = _scored_pairs(bd)
    return max(present, sum(per_rep.values())) if per_rep else present


def _humaneval_errors(bdir: Path) -> int:
    latest: dict[tuple[Any, Any], bool] = {}
    gfile = bdir / "generations.jsonl"
    if gfile.is_file():
        for rec in iter_jsonl(gfile):
            key = (rec.get("task_id"), rec.get("repeat"))
            ok = rec.get("error") is None
            latest[key] = latest.get(key, False) or ok  # answered once = final
    return sum(1 for ok in latest.values() if not ok)


def _proxy_errors(run_dir: Path, model: str, bench: str) -> int:
    path = run_dir / "proxy" / f"{model}.jsonl"
    answered: dict[str, bool] = {}
    if path.is_file():
        for rec in iter_jsonl(path):
            h = rec.get("request_hash")
            if rec.get("benchmark") != bench or not isinstance(h, str):
                continue
            ok = rec.get("error") is None and rec.get("status") == 200
            answered[h] = answered.get(h, False) or ok
    return sum(1 for ok in answered.values() if not ok)


def assess(rd: RunData, expected: dict[tuple[str, str], int], lm_eval_benches: set[str]) -> dict[tuple[str, str], Completeness]:
    """Completeness of every model x benchmark the config expects or the run holds."""
    out: dict[tuple[str, str], Completeness] = {}
    for key in sorted(set(expected) | set(rd.benches) | set(rd.incomplete_dirs)):
        model, bench = key
        bd = rd.benches.get(key)
        bdir = rd.run_dir / "raw" / model / bench
        scored = _scored_pairs(bd) if bd else 0
        if bd is not None and bd.imported:
            exp = _imported_expected(bd)
        else:
            exp = expected.get(key, scored)
        if bench in lm_eval_benches:
            errors = _proxy_errors(rd.run_dir, model, bench) if scored < exp else 0
        else:
            errors = _humaneval_errors(bdir)
        out[key] = Completeness(model, bench, exp, scored, errors)
    return out
