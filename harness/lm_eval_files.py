"""lm-eval's output files, recognised and paired by content (file names carry no meaning).

lm-eval writes a results file (`results_<date>.json`, or any name after a user renames it) and one
samples file per task (`samples_<task>_<date>.jsonl`). `harness import` and `harness analyze` both use
this module, so what import accepts is exactly what analyze uses.

A samples file pairs with the results file that has results for the same task and counts the same
number of documents (`n-samples.effective`). When several results files pass, the one whose recorded
unfiltered metric equals the samples' mean wins, then the one with the same lm-eval timestamp in its
name; a tie beyond that is an error (the user must import fewer files at once).
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.benchmarks import spec
from harness.io import iter_jsonl

DATE_RE = re.compile(r"_(\d{4}-\d{2}-\d{2}T[\d\-.]+)\.jsonl?$")
def n_samples(results: dict[str, Any], bench: str) -> int | None:
    """lm-eval's own count of the documents a results file scored (`n-samples.effective`)."""
    n = ((results.get("n-samples") or {}).get(bench) or {}).get("effective")
    return n if isinstance(n, int) else None


class PairingError(ValueError):
    """Results and samples files that cannot be matched one to one."""


def as_obj(value: Any) -> Any:
    """lm-eval 0.4.11 may store dicts/lists as Python-repr strings; decode them, else return as is."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value
    return value


def date_id(name: str) -> str | None:
    m = DATE_RE.search(name)
    return m.group(1) if m else None


def first_record(path: Path) -> dict[str, Any] | None:
    """The first JSON object of a JSON-lines file, or None when it is not one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None
    return None


def is_samples_file(path: Path) -> bool:
    rec = first_record(path) if path.suffix == ".jsonl" else None
    return rec is not None and ("doc" in rec or "doc_id" in rec) and ("resps" in rec or "filtered_resps" in rec)


def read_results(path: Path) -> dict[str, Any] | None:
    """An lm-eval results JSON (has a `results` mapping), else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("results"), dict) else None


@dataclass(frozen=True)
class SamplesDigest:
    """What pairing needs from a samples file: distinct documents and the unfiltered metric's mean."""

    path: Path
    n_docs: int
    unfiltered_mean: float | None


def digest_samples(path: Path, bench: str) -> SamplesDigest:
    metric = spec(bench).metric_field  # the per-sample field that scores a document
    docs: set[Any] = set()
    values: dict[Any, float] = {}
    for rec in iter_jsonl(path):
        doc_id = rec.get("doc_id")
        docs.add(doc_id)
        if str(rec.get("filter", "none")) in ("none", "as_recorded") and metric in rec:
            v = as_obj(rec[metric])
            values[doc_id] = float(v in (True, "True", "true", 1, 1.0, "1", "1.0")) if not isinstance(v, float) else v
    mean = sum(values.values()) / len(values) if values else None
    return SamplesDigest(path, len(docs), mean)


def _recorded(results: dict[str, Any], bench: str) -> tuple[int | None, float | None]:
    metric = spec(bench).metric_field  # the per-sample field that scores a document
    task = (results.get("results") or {}).get(bench) or {}
    val = next((task[k] for k in (f"{metric},none", f"{metric},as_recorded") if isinstance(task.get(k), (int, float))), None)
    return n_samples(results, bench), (float(val) if val is not None else None)


def pair(samples: list[Path], results: dict[Path, dict[str, Any]], bench: str) -> dict[Path, Path | None]:
    """samples file -> its results file (None when no results file matches).

    A results file is a candidate when it has the task and the same document count; among several
    candidates, the recorded score, then the lm-eval timestamp in both names decide.
    """
    out: dict[Path, Path | None] = {}
    taken: dict[Path, Path] = {}
    for s in samples:
        dig = digest_samples(s, bench)
        matches = [r for r, data in results.items()
                   if bench in (data.get("results") or {}) and _recorded(data, bench)[0] in (None, dig.n_docs)]
        if len(matches) > 1:
            same_score = [r for r in matches if _same_score(results[r], bench, dig)]
            matches = same_score or matches
        if len(matches) > 1 and date_id(s.name):
            same_date = [r for r in matches if date_id(r.name) == date_id(s.name)]
            matches = same_date or matches
        if len(matches) > 1:
            raise PairingError(f"{s.name}: {len(matches)} results files match it by content "
                               f"({', '.join(sorted(r.name for r in matches))}); import them in separate runs")
        match = matches[0] if matches else None
        if match is not None and match in taken:
            raise PairingError(f"{match.name} matches both {taken[match].name} and {s.name}")
        if match is not None:
            taken[match] = s
        out[s] = match
    return out


def _same_score(results: dict[str, Any], bench: str, dig: SamplesDigest) -> bool:
    val = _recorded(results, bench)[1]
    return val is not None and dig.unfiltered_mean is not None and math.isclose(val, dig.unfiltered_mean, abs_tol=1e-6)


def unpaired_results(pairs: dict[Path, Path | None], results: dict[Path, dict[str, Any]]) -> list[Path]:
    used = {r for r in pairs.values() if r is not None}
    return sorted(r for r in results if r not in used)
