"""Statistics pinned against independent computations and the reference report's tables (§3–4, §5.2, §6.1, §7.1)."""

from __future__ import annotations

import math
from itertools import combinations

import pytest
from scipy import stats as sps

from harness.analyze import stats

# (candidate correct, baseline correct, n, both, only_cand, only_base, neither, report p, report h)
REFERENCE_TABLES = {
    "aime24": (17, 21, 30, 14, 3, 7, 6, 0.3438, -0.278),
    "aime25": (13, 20, 30, 12, 1, 8, 9, 0.0391, -0.474),
    "aime_combined": (30, 41, 60, 26, 4, 15, 15, 0.0192, -0.375),
    "ifeval": (418, 344, 541, 294, 124, 50, 73, 3.13e-8, 0.302),
    "humaneval_plus": (137, 91, 164, 88, 49, 3, 24, 4.37e-10, 0.625),
}
# Reference §4.2 (Wilson, percent, one decimal): correct, n, low, high
REFERENCE_CIS = [(17, 30, 39.2, 72.6), (22, 30, 55.6, 85.8), (30, 60, 37.7, 62.3), (41, 60, 55.8, 78.7),
                 (418, 541, 73.5, 80.6), (344, 541, 59.4, 67.5), (137, 164, 77.1, 88.4), (91, 164, 47.8, 62.9)]


@pytest.mark.parametrize("bench", sorted(REFERENCE_TABLES))
def test_reference_mcnemar_and_h(bench):
    cc, bc, n, both, oc, ob, neither, p_ref, h_ref = REFERENCE_TABLES[bench]
    assert both + oc + ob + neither == n and both + oc == cc and both + ob == bc  # the table is consistent
    cand = [True] * both + [True] * oc + [False] * ob + [False] * neither
    base = [True] * both + [False] * oc + [True] * ob + [False] * neither
    blk = stats.paired_block(cand, base)
    assert (blk["both"], blk["only_candidate"], blk["only_baseline"], blk["neither"]) == (both, oc, ob, neither)
    # the report prints 4 significant digits
    assert blk["p_value"] == pytest.approx(p_ref, rel=2e-3)
    assert blk["test"] == ("mcnemar_exact" if oc + ob < 25 else "mcnemar_chi2_cc")
    assert blk["cohens_h"] == pytest.approx(h_ref, abs=1.5e-3)
    assert blk["delta_pp"] == pytest.approx(100 * (cc - bc) / n, abs=0.01)


@pytest.mark.parametrize("correct,n,lo,hi", REFERENCE_CIS)
def test_wilson_matches_reference_and_scipy(correct, n, lo, hi):
    low, high = stats.wilson_ci(correct, n)
    assert round(100 * low, 1) == pytest.approx(lo, abs=0.051)
    assert round(100 * high, 1) == pytest.approx(hi, abs=0.051)
    ci = sps.binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_edges():
    assert stats.wilson_ci(0, 0) is None
    lo, hi = stats.wilson_ci(0, 10)
    assert lo == 0.0 and 0 < hi < 0.35
    lo, hi = stats.wilson_ci(10, 10)
    assert hi == pytest.approx(1.0) and 0.65 < lo < 1


def test_exact_mcnemar_equals_binomial_sum():
    for b, c in [(0, 5), (3, 7), (1, 8), (12, 12), (2, 22)]:
        n = b + c
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        assert stats.mcnemar(b, c)["p_value"] == pytest.approx(min(1.0, 2 * tail), rel=1e-12)
        assert stats.mcnemar(b, c)["test"] == "mcnemar_exact"


def test_chi2_rule_at_25_discordant():
    assert stats.mcnemar(12, 12)["test"] == "mcnemar_exact"  # 24 discordant
    r = stats.mcnemar(20, 5)  # 25 discordant
    assert r["test"] == "mcnemar_chi2_cc"
    chi2 = (abs(20 - 5) - 1) ** 2 / 25
    assert r["statistic"] == pytest.approx(chi2)
    assert r["p_value"] == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-12)  # chi2(1) survival
    assert stats.mcnemar(0, 0)["p_value"] == 1.0


def test_cohens_h_labels_and_stars():
    assert stats.cohens_h(0.5, 0.5) == 0
    assert stats.cohens_h(1.0, 0.0) == pytest.approx(math.pi)
    assert [stats.h_label(h) for h in (0.19, -0.2, 0.49, 0.5, -0.79, 0.8)] == ["negligible", "small", "small", "medium", "medium", "large"]
    assert [stats.stars(p) for p in (0.0009, 0.001, 0.0099, 0.01, 0.049, 0.05, None)] == ["***", "**", "**", "*", "*", "ns", "n/a"]


def test_pass_at_k_matches_enumeration():
    for n, c, k in [(5, 2, 1), (5, 2, 2), (6, 0, 3), (4, 4, 2), (7, 3, 4)]:
        samples = [1] * c + [0] * (n - c)
        subsets = list(combinations(range(n), k))
        brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
        assert stats.pass_at_k(n, c, k) == pytest.approx(brute)
    with pytest.raises(ValueError):
        stats.pass_at_k(2, 1, 3)


def test_spearman_undefined_and_defined():
    assert stats.spearman([1, 2], [3, 4]) == (None, None)
    assert stats.spearman([1, 1, 1], [1, 2, 3]) == (None, None)
    rho, p = stats.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    ref = sps.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    assert rho == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)


def test_paired_block_length_mismatch():
    with pytest.raises(ValueError):
        stats.paired_block([True], [True, False])
