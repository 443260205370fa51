"""The cost-of-answers figure: accuracy against completion tokens per generation, per model x benchmark.

Each point is one model on one benchmark at its mean tokens per generation; the horizontal bar
runs from the median to the 90th percentile, so long tails show. Without token counts (imported
results carry none) the x axis falls back to characters generated, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.figures import _save, label

MARKERS = ("o", "s", "^", "D", "v", "P")


def cost_figure(summary: dict[str, Any], out: Path) -> dict[str, str]:
    rows = (summary.get("cost") or {}).get("rows") or []
    key = "completion_tokens" if any(r.get("completion_tokens") for r in rows) else "generation_chars"
    pts = [r for r in rows if r.get(key) and r.get("accuracy") is not None]
    if not pts:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in pts))
    benches = list(dict.fromkeys(r["benchmark"] for r in pts))
    colors = {b: f"C{i}" for i, b in enumerate(benches)}
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in pts:
        d = r[key]
        x, y = d["mean"], 100 * r["accuracy"]
        ax.plot([d["median"], d["p90"]], [y, y], color=colors[r["benchmark"]], lw=1, alpha=0.6)
        ax.scatter([x], [y], color=colors[r["benchmark"]], marker=MARKERS[models.index(r["model"]) % len(MARKERS)], s=40, zorder=3)
    for b in benches:
        ax.scatter([], [], color=colors[b], marker="o", label=label(b))
    for i, m in enumerate(models):
        ax.scatter([], [], color="gray", marker=MARKERS[i % len(MARKERS)], label=m)
    if min(r[key]["median"] for r in pts) > 0:
        ax.set_xscale("log")
    unit = "completion tokens" if key == "completion_tokens" else "characters generated (no token counts in these files)"
    ax.set_xlabel(f"{unit} per generation: mean (marker), median to p90 (bar)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("Cost of answers", fontsize=10)
    _save(fig, out / "cost.png")
    plt.close(fig)
    return {"cost": "figures/cost.png"}
