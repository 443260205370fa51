"""Reading benchmark dataset files (what `harness fetch` stored, or local fixtures) and checking
that they are in the benchmark's real schema before anything is generated."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from harness.benchmarks import spec

FORMATS = (".jsonl", ".json", ".jsonl.gz", ".parquet", ".csv")


class DatasetSchemaError(ValueError):
    pass


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a local dataset file (jsonl/json/jsonl.gz/parquet/csv), in file order."""
    if path.suffix in (".parquet", ".csv"):
        import pandas as pd

        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        return [dict(r) for r in frame.to_dict(orient="records")]
    rows = []
    with (gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")) as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetSchemaError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return rows


def check_schema(bench: str, path: Path) -> int:
    """Fail early, naming the missing fields, when a dataset file is in the wrong schema; returns the row count."""
    if not path.name.endswith(FORMATS):
        raise DatasetSchemaError(f"{path}: unsupported dataset format {path.suffix!r} (use .jsonl, .parquet or .csv)")
    rows = load_rows(path)
    if not rows:
        raise DatasetSchemaError(f"{path}: dataset for {bench} is empty")
    # The fields each benchmark's rows must have (the real dataset's schema): its registry spec.
    missing = set(spec(bench).dataset.required_fields) - set(rows[0])
    if missing:
        raise DatasetSchemaError(f"{path}: not a {bench} dataset: rows lack {', '.join(sorted(missing))} "
                                 f"(have {', '.join(sorted(rows[0]))})")
    return len(rows)
