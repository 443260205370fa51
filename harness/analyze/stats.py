"""Statistics for paired binary outcomes: Wilson interval, McNemar, Cohen's h, significance stars.

The McNemar rule (DESIGN.md §3): exact two-sided binomial test on the discordant pairs when they
number fewer than 25, else the chi-square test with continuity correction. That rule reproduces
every p-value in the reference report; `mcnemar` names the test it used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.estimators import pass_at_k  # noqa: F401  (re-exported: analysis uses stats.pass_at_k)

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
EXACT_BELOW = 25  # discordant pairs below which the exact test is used


def wilson_ci(correct: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None when n == 0."""
    if n <= 0:
        return None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar(only_candidate: int, only_baseline: int) -> dict[str, Any]:
    """McNemar's test on the discordant counts b (only candidate right) and c (only baseline right)."""
    from scipy import stats

    b, c = int(only_candidate), int(only_baseline)
    n = b + c
    if n == 0:
        return {"test": "mcnemar_exact", "p_value": 1.0, "statistic": None, "discordant": 0}
    if n < EXACT_BELOW:
        p = stats.binomtest(min(b, c), n, 0.5, alternative="two-sided").pvalue
        return {"test": "mcnemar_exact", "p_value": float(min(1.0, p)), "statistic": None, "discordant": n}
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"test": "mcnemar_chi2_cc", "p_value": float(stats.chi2.sf(chi2, 1)), "statistic": float(chi2),
            "discordant": n}


def cohens_h(p_candidate: float, p_baseline: float) -> float:
    """Cohen's h = 2·asin(√p1) − 2·asin(√p2) (candidate minus baseline)."""
    return 2 * math.asin(math.sqrt(p_candidate)) - 2 * math.asin(math.sqrt(p_baseline))


def h_label(h: float) -> str:
    a = abs(h)
    if a < 0.2:
        return "negligible"
    if a < 0.5:
        return "small"
    if a < 0.8:
        return "medium"
    return "large"


def stars(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return "ns"


def score_block(correct: int, n: int, with_ci: bool = True) -> dict[str, Any]:
    acc = correct / n if n else None
    out: dict[str, Any] = {"correct": int(correct), "n": int(n), "accuracy": None if acc is None else round(acc, 4)}
    if with_ci:
        ci = wilson_ci(correct, n)
        out["ci95"] = None if ci is None else [round(ci[0], 4), round(ci[1], 4)]
    return out


def paired_block(candidate: Sequence[bool], baseline: Sequence[bool]) -> dict[str, Any]:
    """2×2 table, delta, McNemar and Cohen's h for outcomes aligned item by item."""
    if len(candidate) != len(baseline):
        raise ValueError("paired outcomes must have the same length")
    both = sum(1 for a, b in zip(candidate, baseline, strict=True) if a and b)
    oc = sum(1 for a, b in zip(candidate, baseline, strict=True) if a and not b)
    ob = sum(1 for a, b in zip(candidate, baseline, strict=True) if b and not a)
    n = len(candidate)
    neither = n - both - oc - ob
    if n == 0:
        return {"both": 0, "only_candidate": 0, "only_baseline": 0, "neither": 0, "n": 0, "delta_pp": None,
                "test": None, "p_value": None, "stars": "n/a", "cohens_h": None, "effect": None}
    pc, pb = (both + oc) / n, (both + ob) / n
    m = mcnemar(oc, ob)
    h = cohens_h(pc, pb)
    return {"both": both, "only_candidate": oc, "only_baseline": ob, "neither": neither, "n": n,
            "delta_pp": round(100 * (pc - pb), 2), "test": m["test"], "p_value": m["p_value"],
            "stars": stars(m["p_value"]), "cohens_h": round(h, 3), "effect": h_label(h)}


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """Spearman ρ and two-sided p; (None, None) when undefined (fewer than 3 points or a constant)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None, None
    from scipy import stats

    res = stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    if math.isnan(rho):
        return None, None
    return rho, p
