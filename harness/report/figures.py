"""Figures for the report (matplotlib, Agg backend): each returns its path relative to the run dir."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.benchmarks import registry


def label(bench: str) -> str:
    """A benchmark's (or group's) label from the registry; an unknown key as it is."""
    return registry().label(bench)


def _category_rows(cats: dict[str, Any]) -> list[tuple[str, float]]:
    """(prefix: category, delta) for the category-deltas figure: a group's pooled table instead of its
    members', benchmark-level categories only (not IFEval's per-instruction ids)."""
    from harness.analyze.summary import category_tables

    reg = registry()
    tables = category_tables(cats)
    pooled = {b for b, _, _, _ in tables if reg.group(b)}
    rows = []
    for bench, name, table, _ in tables:
        spec = reg.get(bench)
        if name != bench or (spec is not None and spec.group is not None and spec.group.key in pooled):
            continue
        prefix = reg.family(bench) if reg.group(bench) else reg.short(bench)
        rows += [(f"{prefix}: {r['category']}", r["paired"]["delta_pp"]) for r in table
                 if r.get("paired") and r["paired"]["delta_pp"] is not None]
    return rows


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def make_figures(summary: dict[str, Any], per_sample_csv: Path, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [summary["candidate"], summary["baseline"]]
    figs: dict[str, str] = {}
    # 1. scores with Wilson CIs
    benches = [b for b in summary["benchmarks"] if summary["benchmarks"][b]["scores"]]
    if benches:
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.38
        for j, m in enumerate(models):
            xs, ys, lo, hi = [], [], [], []
            for i, b in enumerate(benches):
                s = summary["benchmarks"][b]["scores"].get(m)
                if not s or s["accuracy"] is None:
                    continue
                xs.append(i + (j - 0.5) * width)
                ys.append(100 * s["accuracy"])
                ci = s.get("ci95") or [s["accuracy"], s["accuracy"]]
                lo.append(max(0.0, 100 * (s["accuracy"] - ci[0])))
                hi.append(max(0.0, 100 * (ci[1] - s["accuracy"])))
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=m)
        ax.set_xticks(range(len(benches)), [label(b) for b in benches])
        ax.set_ylabel("accuracy (%), 95% Wilson CI")
        ax.set_ylim(0, 100)
        ax.legend()
        _save(fig, out / "scores.png")
        plt.close(fig)
        figs["scores"] = "figures/scores.png"
    # 2. per-category deltas
    rows = _category_rows(summary.get("categories", {}))
    if rows:
        fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(rows))))
        names, vals = zip(*rows, strict=True)
        ax.barh(range(len(rows)), vals, color=["tab:green" if v > 0 else "tab:red" for v in vals])
        ax.set_yticks(range(len(rows)), names, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"delta, {models[0]} minus {models[1]} (pp)")
        _save(fig, out / "category_deltas.png")
        plt.close(fig)
        figs["category_deltas"] = "figures/category_deltas.png"
    # 3 + 4 from the per-sample table
    data: dict[tuple[str, str], list[tuple[int, int]]] = {}
    if per_sample_csv.is_file():
        with open(per_sample_csv, encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r["reasoning_chars"] in ("", None) or r["repeat"] != "0":
                    continue
                proto = summary["benchmarks"].get(r["benchmark"], {}).get("protocol")
                if r["protocol"] != proto:
                    continue
                data.setdefault((r["model"], r["benchmark"]), []).append((int(r["reasoning_chars"]), int(r["correct"])))
    bench_list = [b for b in registry().keys() if any((m, b) in data for m in models)]
    if bench_list:
        fig, axes = plt.subplots(1, len(bench_list), figsize=(3.2 * len(bench_list), 3), squeeze=False)
        for ax, b in zip(axes[0], bench_list, strict=False):  # the grid may have more cells than benchmarks
            for m in models:
                lengths = [v for v, _ in data.get((m, b), [])]
                if lengths:
                    ax.hist(lengths, bins=20, alpha=0.55, label=m)
            ax.set_title(label(b), fontsize=9)
            ax.set_xlabel("reasoning chars", fontsize=8)
        axes[0][0].legend(fontsize=7)
        _save(fig, out / "reasoning_lengths.png")
        plt.close(fig)
        figs["reasoning_lengths"] = "figures/reasoning_lengths.png"
        fig, axes = plt.subplots(1, len(bench_list), figsize=(3.2 * len(bench_list), 3), squeeze=False)
        for ax, b in zip(axes[0], bench_list, strict=False):
            for k, m in enumerate(models):
                pts = data.get((m, b), [])
                for ok, marker in ((1, "o"), (0, "x")):
                    ys = [v for v, c in pts if c == ok]
                    ax.scatter([k + (0.15 if ok else -0.15)] * len(ys), ys, marker=marker, s=12, alpha=0.6,
                               label=f"{m} {'correct' if ok else 'wrong'}")
            ax.set_xticks([0, 1], models, fontsize=8)
            ax.set_title(label(b), fontsize=9)
            ax.set_ylabel("reasoning chars", fontsize=8)
        axes[0][0].legend(fontsize=6)
        _save(fig, out / "reasoning_vs_correctness.png")
        plt.close(fig)
        figs["reasoning_vs_correctness"] = "figures/reasoning_vs_correctness.png"
    from harness.report.cost_figure import cost_figure  # 5. cost of answers (issue 11)

    figs.update(cost_figure(summary, out))
    return figs
