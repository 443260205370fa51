"""Paired statistics beyond the reference study: an interval on the difference, Holm over the family,
and what the study could detect (issue 11; DESIGN.md §6).

Every function here works on per-item differences d_i = (mean of the candidate's k samples on item i)
minus (the baseline's), so k = 1 (d_i in {-1, 0, 1}) and k > 1 share one code path:
- `delta_ci95`: percentile bootstrap over items. Resampling d_i resamples an item with all its
  repeats. Percentile, not scipy's default BCa: BCa is NaN when every d_i is equal (no pair
  disagrees), the percentile interval is then the point [d, d].
- `power`: Connor (1987) for McNemar, n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2 with psi the
  discordant proportion. psi is mean(d_i^2) (= the discordant share when k = 1), the variance of d_i
  under the sign-flip null; psi - d^2 is its variance under the alternative. The same formula is
  therefore the power computation for item means when k > 1.
- `holm`: statsmodels' Holm step-down over the non-pooled benchmarks of one comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ALPHA = 0.05
POWER = 0.80
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20_260_221  # fixed so that the same files give the same interval; recorded in summary.statistics
PERMUTATION_FLIPS = 100_000  # Monte Carlo sign flips when exact enumeration is too large
PERMUTATION_SEED = 20_260_222
EXACT_MAX_NONZERO = 16  # exact enumeration up to 2^16 sign patterns: no dearer than the Monte Carlo test (items with d_i = 0 do not flip)
def _pooled(bench: str) -> bool:
    """A group's pooled row (registry): reported, derived from its members, never a member of the multiplicity family."""
    from harness.benchmarks import registry

    return registry().group(bench) is not None


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def item_differences(cand: Mapping[int, Mapping[str, bool]], base: Mapping[int, Mapping[str, bool]]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Items present for both models, and per item the candidate's mean, the baseline's mean and d_i.

    `cand`/`base`: repeat -> item -> correct. An item's mean uses the repeats that scored it.
    """
    def means(reps: Mapping[int, Mapping[str, bool]]) -> dict[str, float]:
        tot: dict[str, list[int]] = {}
        for items in reps.values():
            for item, ok in items.items():
                tot.setdefault(item, []).append(int(bool(ok)))
        return {i: sum(v) / len(v) for i, v in tot.items()}

    mc, mb = means(cand), means(base)
    common = sorted(set(mc) & set(mb))
    c = np.array([mc[i] for i in common], dtype=float)
    b = np.array([mb[i] for i in common], dtype=float)
    return common, c, b, c - b


def delta_ci95(d: Sequence[float] | np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
               seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95 % percentile-bootstrap interval of mean(d) in percentage points; None without items."""
    from scipy import stats

    arr = np.asarray(d, dtype=float)
    if arr.size == 0:
        return None
    if np.all(arr == arr[0]):  # every resample has the same mean: the interval is the point itself
        return [round(100 * float(arr[0]), 2)] * 2
    res = stats.bootstrap((arr,), np.mean, n_resamples=resamples, method="percentile", vectorized=True,
                          confidence_level=0.95, rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return [round(100 * float(lo), 2), round(100 * float(hi), 2)]


def connor_n(delta: float, psi: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Items needed to detect a paired difference `delta` (fraction) at discordance `psi` (Connor 1987)."""
    d = abs(delta)
    if d <= 0 or psi <= 0 or d * d > psi:
        raise ValueError(f"Connor's formula needs 0 < |delta|^2 <= psi (delta={delta}, psi={psi})")
    za, zb = _z(1 - alpha / 2), _z(power)
    return (za * math.sqrt(psi) + zb * math.sqrt(psi - d * d)) ** 2 / (d * d)


def mde(n: int, psi: float, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest |delta| (fraction) that `n` items at discordance `psi` detect; None when none can.

    sqrt(n)·d − z_a·sqrt(psi) − z_b·sqrt(psi − d²) increases in d on (0, sqrt(psi)]; its root is the MDE.
    At d = sqrt(psi) it is sqrt(psi)·(sqrt(n) − z_a): no root when n <= z_a² (about 3.8 items).
    """
    from scipy.optimize import brentq

    if n <= 0 or psi <= 0:
        return None
    za, zb = _z(1 - alpha / 2), _z(power)
    top = math.sqrt(psi)

    def g(d: float) -> float:
        return math.sqrt(n) * d - za * math.sqrt(psi) - zb * math.sqrt(max(0.0, psi - d * d))

    if g(top) <= 0:
        return None
    return float(brentq(g, 1e-12, top, xtol=1e-12))


def power_block(d: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> dict[str, Any]:
    """`mde_pp` at the observed n and discordance, and the items needed for the observed delta."""
    n = int(d.size)
    psi = float(np.mean(d * d)) if n else 0.0
    delta = float(np.mean(d)) if n else 0.0
    out: dict[str, Any] = {"mde_pp": None, "items_needed": None, "discordance": round(psi, 4)}
    if n == 0:
        out["mde_reason"] = out["items_needed_reason"] = "no paired items"
        return out
    if psi == 0:
        out["mde_reason"] = out["items_needed_reason"] = "no pair disagrees: the discordance, and with it the power, is undefined"
        return out
    m = mde(n, psi, alpha, power)
    if m is None:
        out["mde_reason"] = f"{n} items cannot reach {power:.0%} power at any difference"
    else:
        out["mde_pp"] = round(100 * m, 2)
        reach = float(np.mean(np.abs(d)))  # |mean d| <= mean |d| (= the discordant share when k = 1)
        if m > reach:
            out["mde_note"] = (f"above {100 * reach:.1f} pp, the largest difference these items' disagreements "
                               "allow: no difference at this disagreement rate is detectable")
    if delta == 0:
        out["items_needed_reason"] = "the observed difference is zero"
    else:
        out["items_needed"] = int(math.ceil(connor_n(delta, psi, alpha, power)))
    return out


def holm(pvalues: Mapping[str, float | None]) -> dict[str, float | None]:
    """Holm-adjusted p-values (statsmodels) for the entries that have a p-value; others stay None."""
    from statsmodels.stats.multitest import multipletests

    keys = [k for k, p in pvalues.items() if p is not None and not math.isnan(p)]
    out: dict[str, float | None] = {k: None for k in pvalues}
    if keys:
        adj = multipletests([float(pvalues[k] or 0.0) for k in keys], alpha=ALPHA, method="holm")[1]  # keys: p not None
        out.update({k: float(v) for k, v in zip(keys, adj, strict=True)})
    return out


def sign_flip_test(d: Sequence[float] | np.ndarray, flips: int = PERMUTATION_FLIPS, seed: int = PERMUTATION_SEED,
                   exact_max: int = EXACT_MAX_NONZERO) -> dict[str, Any]:
    """Two-sided paired permutation test of mean(d) = 0 by flipping the sign of each item's d_i.

    Items with d_i = 0 are unchanged by a flip and are dropped; with m non-zero items the test
    enumerates all 2^m patterns when m <= `exact_max`, else draws `flips` random patterns (seeded).
    """
    from scipy import stats

    arr = np.asarray(d, dtype=float)
    nz = arr[arr != 0]
    m = int(nz.size)
    if m <= 1:  # the observed sum is the largest and the smallest of the 2^m flips: p = 1 (scipy needs m >= 2)
        return {"test": "sign_flip_exact", "p_value": 1.0, "nonzero_items": m, "flips": 2 ** m, "seed": None}
    exact = m <= exact_max
    res = stats.permutation_test((nz,), lambda x, axis: np.sum(x, axis=axis), permutation_type="samples",
                                 vectorized=True, n_resamples=np.inf if exact else flips, alternative="two-sided", batch=16_384,
                                 rng=np.random.default_rng(seed))
    return {"test": "sign_flip_exact" if exact else "sign_flip_monte_carlo", "p_value": float(min(1.0, res.pvalue)),
            "nonzero_items": m, "flips": 2 ** m if exact else flips, "seed": None if exact else seed}


def extend_k1(cand: Mapping[int, Mapping[str, bool]], base: Mapping[int, Mapping[str, bool]]) -> dict[str, Any]:
    """Fields added to a k = 1 paired block (McNemar stays the test): interval and power."""
    first_c, first_b = {0: cand.get(0, {})}, {0: base.get(0, {})}
    _, _, _, d = item_differences(first_c, first_b)
    return {"n": int(d.size), "delta_ci95": delta_ci95(d), **power_block(d)}


def apply_holm(benchmarks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Set `paired.p_holm` on every benchmark of one comparison; return the family description.

    The family is every benchmark with a paired p-value except the pooled rows (derived from members).
    """
    family = [b for b, e in benchmarks.items() if not _pooled(b) and (e.get("paired") or {}).get("p_value") is not None]
    adj = holm({b: benchmarks[b]["paired"]["p_value"] for b in family})
    for b, e in benchmarks.items():
        p = e.get("paired")
        if not p:
            continue
        p["p_holm"] = adj.get(b)
        if _pooled(b):
            p["p_holm_note"] = "pooled row (derived from its years): not a member of the Holm family; its stars follow the raw p"
    return {"family": family, "method": "holm", "alpha": ALPHA,
            "note": "stars and the words significant/degraded/improved follow p_holm; the raw p_value stays beside it"}


def decision_p(paired: Mapping[str, Any] | None) -> float | None:
    """The p-value that decides significance: Holm-adjusted when the row is in the family, else raw."""
    if not paired:
        return None
    return paired.get("p_holm") if paired.get("p_holm") is not None else paired.get("p_value")


def statistics_section(family: dict[str, Any]) -> dict[str, Any]:
    """summary.statistics: the methods, their constants and seeds, and the Holm family."""
    return {**family,
            "delta_ci95": {"method": "paired bootstrap over items, percentile", "resamples": BOOTSTRAP_RESAMPLES,
                           "seed": BOOTSTRAP_SEED, "unit": "item (an item is resampled with all its repeats)",
                           "confidence": 0.95},
            "mde": {"method": "Connor (1987) sample size for McNemar, solved for the difference at the observed n "
                              "and discordance (mean of squared per-item differences when k > 1)",
                    "alpha": ALPHA, "two_sided": True, "power": POWER},
            "repeats_test": {"method": "sign-flip permutation test on per-item mean differences",
                             "exact_up_to_nonzero_items": EXACT_MAX_NONZERO, "flips": PERMUTATION_FLIPS,
                             "seed": PERMUTATION_SEED}}
