"""IFEval instruction-level accuracy with standard errors clustered by prompt (issue 11).

A prompt carries one to three instructions and a response that misses one often misses another:
instructions of one prompt are not independent, so the naive binomial SE over instructions is too
small. The clustered (sandwich) SE comes from statsmodels: an intercept-only OLS, whose
coefficient is the mean, with `cov_type="cluster"` on the prompt id (statsmodels' default
small-sample factor G/(G-1)·(N-1)/(N-K), K = 1). Every repeat of a prompt joins its cluster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.analyze.stats import Z95

Inst = Mapping[int, Mapping[str, Sequence[bool]]]  # repeat -> prompt -> per-instruction results


def clustered_mean(values: Sequence[float], clusters: Sequence[str]) -> dict[str, Any]:
    """Mean of `values` with its naive and prompt-clustered standard errors."""
    from statsmodels.regression.linear_model import OLS  # not statsmodels.api: it imports all of statsmodels

    y = np.asarray(values, dtype=float)
    n, g = int(y.size), len(set(clusters))
    if n == 0:
        return {"n": 0, "clusters": 0, "mean": None, "se_naive": None, "se_clustered": None}
    mean = float(y.mean())
    naive = float(y.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    if g < 2 or np.all(y == y[0]):
        se = 0.0 if n > 1 and np.all(y == y[0]) else None
    else:
        codes = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
        fit = OLS(y, np.ones((n, 1))).fit(cov_type="cluster", cov_kwds={"groups": np.array([codes[c] for c in clusters])})
        se = float(fit.bse[0])
    out: dict[str, Any] = {"n": n, "clusters": g, "mean": round(mean, 4),
                           "se_naive": None if naive is None else round(naive, 5),
                           "se_clustered": None if se is None else round(se, 5)}
    if se is not None:
        out["ci95"] = [round(mean - Z95 * se, 4), round(mean + Z95 * se, 4)]
        if naive:
            out["design_effect"] = round((se / naive) ** 2, 3)
    return out


def _flatten(inst: Inst, items: set[str] | None = None) -> tuple[list[float], list[str]]:
    vals, cl = [], []
    for rep in sorted(inst):
        for item, lst in inst[rep].items():
            if items is not None and item not in items:
                continue
            vals += [float(bool(x)) for x in lst]
            cl += [item] * len(lst)
    return vals, cl


def instruction_level(insts: Mapping[str, Inst], cand: str, base: str) -> dict[str, Any]:
    """Per model instruction-level accuracy, and the paired difference, with prompt-clustered SEs."""
    from scipy.stats import norm

    out: dict[str, Any] = {"metric": "inst_level_strict_acc", "cluster": "prompt",
                           "se": "statsmodels OLS intercept, cov_type=cluster (groups = prompt)", "models": {}}
    for m, inst in insts.items():
        vals, cl = _flatten(inst)
        out["models"][m] = clustered_mean(vals, cl)
    if cand in insts and base in insts:
        # pair instruction by instruction (repeat r with repeat r) on prompts both models answered with the
        # same instruction list; every pair of a prompt joins that prompt's cluster
        reps = sorted(set(insts[cand]) & set(insts[base]))
        diffs, cl = [], []
        for r in reps:
            cr, br = insts[cand][r], insts[base][r]
            for i in sorted(i for i in set(cr) & set(br) if len(cr[i]) == len(br[i])):
                diffs += [float(bool(x)) - float(bool(y)) for x, y in zip(cr[i], br[i], strict=False)]  # a short list = instructions unscored
                cl += [i] * len(cr[i])
        d = clustered_mean(diffs, cl)
        blk: dict[str, Any] = {"n": d["n"], "prompts": d["clusters"],
                               "delta_pp": None if d["mean"] is None else round(100 * d["mean"], 2),
                               "se_pp_naive": None if d["se_naive"] is None else round(100 * d["se_naive"], 3),
                               "se_pp_clustered": None if d["se_clustered"] is None else round(100 * d["se_clustered"], 3),
                               "repeats": len(reps)}
        if d.get("ci95"):
            blk["ci95_pp"] = [round(100 * x, 2) for x in d["ci95"]]
            se = d["se_clustered"]
            # a zero SE (every instruction differs the same way) leaves the Wald test undefined
            blk["p_value"] = float(2 * norm.sf(abs(d["mean"]) / se)) if se else (1.0 if d["mean"] == 0 else None)
            blk["test"] = "wald_z_clustered"
        out["paired"] = blk
    return out
