"""Tidy CSVs beside summary.json: one row per sample, and flat views of the summary's tables."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from harness.analyze.load import RunData
from harness.analyze.summary import category_tables
from harness.io import atomic_write_text


def _csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    import csv

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())


SAMPLE_COLUMNS = ["model", "benchmark", "repeat", "item", "protocol", "correct", "reasoning_chars", "answer_chars",
                  "has_reasoning", "think_closed", "finish_reason", "latency_s", "completion_tokens", "source"]


def write_tables(out: Path, rd: RunData, summary: dict[str, Any]) -> None:
    rows = []
    for (model, bench), bd in sorted(rd.benches.items()):
        for proto, reps in bd.outcomes.items():
            for rep, items in reps.items():
                gens = bd.gens.get(rep, {})
                for item, ok in items.items():
                    g = gens.get(item)
                    row = {"model": model, "benchmark": bench, "repeat": rep, "item": item, "protocol": proto,
                           "correct": int(ok)}
                    if g is not None:
                        row.update(reasoning_chars=g.reasoning_chars, answer_chars=g.answer_chars,
                                   has_reasoning=int(g.has_reasoning), think_closed=int(g.think_closed),
                                   finish_reason=g.finish_reason, latency_s=g.latency_s,
                                   completion_tokens=g.completion_tokens, source=g.source)
                    rows.append(row)
    _csv(out / "per_sample.csv", rows, SAMPLE_COLUMNS)
    score_rows = []
    for bench, b in summary["benchmarks"].items():
        for m, s in b["scores"].items():
            p = b["paired"] or {}
            score_rows.append({"benchmark": bench, "protocol": b["protocol"], "model": m, "correct": s["correct"],
                               "n": s["n"], "accuracy": s["accuracy"], "ci_low": (s.get("ci95") or [None, None])[0],
                               "ci_high": (s.get("ci95") or [None, None])[1], "delta_pp": p.get("delta_pp"),
                               "p_value": p.get("p_value"), "test": p.get("test"), "cohens_h": p.get("cohens_h")})
    _csv(out / "scorecard.csv", score_rows, list(score_rows[0]) if score_rows else ["benchmark"])
    cat_rows = []
    cats = summary.get("categories", {})
    tables = [(name, rows, key) for _, name, rows, key in category_tables(cats)]
    for name, table, key in tables:
        for r in table:
            for m, s in r["scores"].items():
                cat_rows.append({"table": name, "category": r[key], "model": m, "correct": s["correct"], "n": s["n"],
                                 "accuracy": s["accuracy"], "delta_pp": (r.get("paired") or {}).get("delta_pp"),
                                 "p_value": (r.get("paired") or {}).get("p_value")})
    _csv(out / "categories.csv", cat_rows, ["table", "category", "model", "correct", "n", "accuracy", "delta_pp", "p_value"])
    rv = summary.get("reasoning_volume", {}).get("rows", [])
    _csv(out / "reasoning_volume.csv", rv, ["model", "benchmark", "n", "mean_reasoning_chars", "mean_answer_chars",
                                           "reasoning_share", "share_with_reasoning", "mean_latency_s", "mean_completion_tokens"])
