"""Statistics beyond the reference (issue 11), each checked against brute-force enumeration or an
independent computation rather than against the library it wraps."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from harness.analyze import ifeval_inst, paired, repeats, stats


# -- Holm --------------------------------------------------------------------------------------
def closed_testing_bonferroni(p: list[float]) -> list[float]:
    """Holm's adjusted p by its definition: closed testing with Bonferroni local tests (all subsets)."""
    m = len(p)
    out = []
    for i in range(m):
        worst = 0.0
        for r in range(1, m + 1):
            for s in itertools.combinations(range(m), r):
                if i in s:
                    worst = max(worst, min(1.0, len(s) * min(p[j] for j in s)))
        out.append(worst)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_holm_equals_closed_testing(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 7))
    p = list(rng.uniform(0, 0.2, m) ** rng.uniform(1, 3))
    got = paired.holm({f"b{i}": x for i, x in enumerate(p)})
    assert [got[f"b{i}"] for i in range(m)] == pytest.approx(closed_testing_bonferroni(p), rel=1e-12)


def test_holm_skips_missing_p_values():
    got = paired.holm({"a": 0.01, "b": None, "c": 0.04})
    assert got == {"a": pytest.approx(0.02), "b": None, "c": pytest.approx(0.04)}


# -- paired bootstrap interval -----------------------------------------------------------------
def exact_bootstrap_quantiles(d: list[int], qs: tuple[float, ...]) -> list[float]:
    """Quantiles of the exact bootstrap distribution of mean(d): a resample of n items is a multinomial
    draw of how often each distinct value appears, so every composition is enumerated with its weight."""
    n = len(d)
    values = sorted(set(d))
    freq = [Fraction(d.count(v), n) for v in values]
    dist: Counter[Fraction] = Counter()
    for counts in itertools.product(range(n + 1), repeat=len(values)):
        if sum(counts) != n:
            continue
        w = Fraction(math.factorial(n))
        for c, f in zip(counts, freq, strict=True):
            w = w / math.factorial(c) * f ** c
        dist[Fraction(sum(c * v for c, v in zip(counts, values, strict=True)), n)] += w
    atoms = sorted(dist)
    cdf = np.cumsum([float(dist[a]) for a in atoms])
    return [float(atoms[int(np.searchsorted(cdf, q))]) for q in qs]


@pytest.mark.parametrize("d", [[1, 1, 0, -1, 0, 1, 1], [1, -1, 0, 0, 0, 0, -1], [1] * 3 + [-1] * 7 + [0] * 20])
def test_bootstrap_interval_matches_exact_bootstrap(d):
    lo, hi = paired.delta_ci95(d)
    q = exact_bootstrap_quantiles(d, (0.015, 0.035, 0.965, 0.985))
    tol = 0.006  # the interval is rounded to 0.01 pp
    assert 100 * q[0] - tol <= lo <= 100 * q[1] + tol
    assert 100 * q[2] - tol <= hi <= 100 * q[3] + tol


def test_bootstrap_interval_defined_without_disagreement():
    from scipy import stats as sps

    for d, want in (([0] * 30, [0.0, 0.0]), ([1] * 12, [100.0, 100.0])):
        assert paired.delta_ci95(d) == want
    with warnings.catch_warnings():  # why not scipy's default: BCa is NaN here (and warns)
        warnings.simplefilter("ignore")
        res = sps.bootstrap((np.zeros(30),), np.mean, n_resamples=200, rng=np.random.default_rng(0))
    assert math.isnan(res.confidence_interval.low)


def test_bootstrap_resamples_items_with_all_their_repeats():
    """Items whose k samples agree: the item-level interval is wider than a sample-level one (which
    wrongly treats samples of an item as independent) and matches a hand-written item bootstrap."""
    rng = np.random.default_rng(3)
    n, k = 40, 4
    cand_item = rng.random(n) < 0.6
    base_item = rng.random(n) < 0.4
    cand = {r: {f"i{i}": bool(cand_item[i]) for i in range(n)} for r in range(k)}
    base = {r: {f"i{i}": bool(base_item[i]) for i in range(n)} for r in range(k)}
    _, _, _, d = paired.item_differences(cand, base)
    lo, hi = paired.delta_ci95(d)
    samples = np.repeat(cand_item.astype(float) - base_item.astype(float), k)  # one row per sample
    draws = rng.integers(0, n, (20_000, n))
    by_item = 100 * np.percentile(np.array([[(cand[r][f"i{i}"] - base[r][f"i{i}"]) for r in range(k) for i in row]
                                            for row in draws[:4000]]).mean(axis=1), [2.5, 97.5])
    assert lo == pytest.approx(by_item[0], abs=2.5) and hi == pytest.approx(by_item[1], abs=2.5)
    flat = rng.integers(0, n * k, (20_000, n * k))
    by_sample = 100 * np.percentile(samples[flat].mean(axis=1), [2.5, 97.5])
    assert (hi - lo) > 1.5 * (by_sample[1] - by_sample[0])


# -- minimum detectable effect (Connor 1987) -----------------------------------------------------
def test_mde_round_trips_connor_and_matches_issue_example():
    for n, psi in ((30, 0.3), (541, 174 / 541), (164, 52 / 164), (60, 19 / 60)):
        m = paired.mde(n, psi)
        assert paired.connor_n(m, psi) == pytest.approx(n, rel=1e-9)
    # issue 11: "with 30 AIME items and the observed disagreement, only differences of roughly 27 pp"
    assert 26 <= 100 * paired.mde(30, 9 / 30) <= 28


@pytest.mark.parametrize("n,disc", [(541, 174), (164, 52)])
def test_mde_power_by_simulation(n, disc):
    """At the reported MDE, McNemar's z-test (the test Connor's formula sizes) has power 0.80 +/- 0.03."""
    psi = disc / n
    d = paired.mde(n, psi)
    rng = np.random.default_rng(11)
    x = rng.multinomial(n, [(psi + d) / 2, (psi - d) / 2, 1 - psi], size=20_000)
    b, c = x[:, 0], x[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        reject = np.abs(b - c) / np.sqrt(b + c) > 1.959963984540054
    assert np.mean(reject) == pytest.approx(0.80, abs=0.03)


def test_power_block_reasons():
    assert paired.power_block(np.zeros(30))["mde_pp"] is None
    assert "no pair disagrees" in paired.power_block(np.zeros(30))["mde_reason"]
    blk = paired.power_block(np.array([1.0, -1.0] + [0.0] * 28))
    assert blk["mde_pp"] is not None and blk["items_needed"] is None and "zero" in blk["items_needed_reason"]
    blk = paired.power_block(np.array([1.0] * 2 + [-1.0] * 8 + [0.0] * 20))
    assert blk["items_needed"] == math.ceil(paired.connor_n(-0.2, 1 / 3))


# -- sign-flip permutation test -------------------------------------------------------------------
def brute_sign_flip(d: list[float]) -> float:
    obs = sum(d)
    sums = [sum(s * x for s, x in zip(signs, d, strict=True)) for signs in itertools.product((1, -1), repeat=len(d))]
    ge = sum(s >= obs - 1e-9 for s in sums) / len(sums)
    le = sum(s <= obs + 1e-9 for s in sums) / len(sums)
    return min(1.0, 2 * min(ge, le))


@pytest.mark.parametrize("seed", range(4))
def test_sign_flip_exact_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    d = list(rng.choice([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1], size=int(rng.integers(5, 12))))
    got = paired.sign_flip_test(d)
    assert got["test"] == "sign_flip_exact"
    assert got["p_value"] == pytest.approx(brute_sign_flip([x for x in d if x != 0]), abs=1e-12)


def test_sign_flip_with_zero_or_one_nonzero_item():
    assert paired.sign_flip_test([0.0] * 5)["p_value"] == 1.0
    got = paired.sign_flip_test([0.0, 2 / 3, 0.0])
    assert got["p_value"] == brute_sign_flip([2 / 3]) == 1.0 and got["nonzero_items"] == 1


def test_sign_flip_on_k1_outcomes_is_the_exact_mcnemar():
    for b, c in ((3, 7), (1, 8), (0, 5), (6, 6)):
        d = [1.0] * b + [-1.0] * c + [0.0] * 10
        assert paired.sign_flip_test(d)["p_value"] == pytest.approx(stats.mcnemar(b, c)["p_value"], abs=1e-12)


def lattice_exact_p(d: list[Fraction]) -> float:
    """Exact sign-flip p by convolution over the lattice of sums (an independent algorithm)."""
    den = math.lcm(*(x.denominator for x in d))
    ints = [int(x * den) for x in d]
    dist = Counter({0: 1})
    for v in ints:
        nxt: Counter[int] = Counter()
        for s, w in dist.items():
            nxt[s + v] += w
            nxt[s - v] += w
        dist = nxt
    obs, total = sum(ints), 2 ** len(ints)
    ge = sum(w for s, w in dist.items() if s >= obs) / total
    le = sum(w for s, w in dist.items() if s <= obs) / total
    return min(1.0, 2 * min(ge, le))


def test_sign_flip_monte_carlo_close_to_exact_and_seeded():
    rng = np.random.default_rng(5)
    d = [Fraction(int(v), 3) for v in rng.choice([-3, -2, -1, 1, 2, 3], size=30, p=[.1, .1, .2, .2, .2, .2])]
    got = paired.sign_flip_test([float(x) for x in d])
    assert got["test"] == "sign_flip_monte_carlo" and got["flips"] == 100_000 and got["seed"] == paired.PERMUTATION_SEED
    exact = lattice_exact_p(d)
    assert got["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 100_000) + 1e-5)
    assert paired.sign_flip_test([float(x) for x in d])["p_value"] == got["p_value"]


# -- repeats: pass@k, maj@k, variance split -------------------------------------------------------
def test_pass_at_lists_powers_of_two_up_to_k():
    reps = {r: {"a": r < 2, "b": False, "c": True} for r in range(8)}
    got = repeats.pass_at(reps)
    assert list(got) == ["pass@1", "pass@2", "pass@4", "pass@8"]
    assert got["pass@1"] == pytest.approx((2 / 8 + 0 + 1) / 3, abs=1e-4)
    assert got["pass@8"] == pytest.approx(2 / 3, abs=1e-4)


def test_majority_vote_counts_answers_and_ties():
    answers = {  # repeat -> item -> (extracted answer, correct)
        0: {"x": ("12", True), "y": ("5", False), "z": (None, False), "t": ("1", False)},
        1: {"x": ("13", False), "y": ("7", True), "z": (None, False), "t": ("2", True)},
        2: {"x": ("12", True), "y": ("5", False), "z": ("4", True), "t": (None, False)},
    }
    got = repeats.majority_vote(answers)
    # x: 12 twice (right); y: 5 twice (wrong); z: only vote 4 (right); t: 1 vs 2 tie -> first given (1, wrong)
    assert (got["correct"], got["n"], got["items_with_tied_vote"], got["k"]) == (2, 4, 1, 3)


def test_variance_split_recovers_known_components():
    rng = np.random.default_rng(2)
    n, k = 3000, 8
    p = rng.beta(2, 2, n)  # true item accuracies: Var(p) = 1/20, E[p(1-p)] = 1/5
    y = rng.random((n, k)) < p[:, None]
    reps = {r: {f"i{i}": bool(y[i, r]) for i in range(n)} for r in range(k)}
    got = repeats.variance_split(reps)
    assert got["between_item"] == pytest.approx(1 / 20, abs=0.006)
    assert got["within_item"] == pytest.approx(1 / 5, abs=0.006)


def test_k_to_halve_from_known_components():
    """Two models with independent item difficulties: B = Var(pc - pb), W = E[pc(1-pc)] + E[pb(1-pb)]."""
    rng = np.random.default_rng(4)
    n, k = 20_000, 4
    pc, pb = rng.beta(20, 20, n), rng.beta(20, 20, n)
    var = 400 / (40 ** 2 * 41)  # Var of Beta(a, b) = ab / ((a+b)^2 (a+b+1))
    B = 2 * var  # between-item variance of pc - pb
    W = 2 * (0.25 - var)  # E[p(1-p)] = E[p] - E[p^2] = 0.5 - (0.25 + var), for each model
    want = W / ((B + W / k) / 4 - B)  # about 23
    yc, yb = rng.random((n, k)) < pc[:, None], rng.random((n, k)) < pb[:, None]
    got = repeats.difference_split({r: {f"i{i}": bool(yc[i, r]) for i in range(n)} for r in range(k)},
                                   {r: {f"i{i}": bool(yb[i, r]) for i in range(n)} for r in range(k)})
    assert got["k_to_halve"] == pytest.approx(want, rel=0.15)
    # between-item variance dominating: no k halves the interval
    same = {r: {f"i{i}": i % 2 == 0 for i in range(50)} for r in range(4)}
    other = {r: {f"i{i}": i % 3 == 0 for i in range(50)} for r in range(4)}
    got = repeats.difference_split(same, other)
    assert got["k_to_halve"] is None and "items would" in got["k_to_halve_reason"]


def test_paired_block_k_gt_1_shape_and_cells():
    cand = {r: {"a": True, "b": r < 2, "c": False, "d": r == 0} for r in range(3)}
    base = {r: {"a": True, "b": False, "c": r < 2, "d": False} for r in range(3)}
    blk = repeats.paired_block(cand, base)
    # majority (> half of 3): cand a, b; base a, c
    assert (blk["both"], blk["only_candidate"], blk["only_baseline"], blk["neither"]) == (1, 1, 1, 1)
    assert blk["delta_pp"] == pytest.approx(100 * ((1 + 2 / 3 + 0 + 1 / 3) - (1 + 0 + 2 / 3 + 0)) / 4, abs=0.01)
    assert blk["test"] == "sign_flip_exact" and blk["p_value"] == pytest.approx(brute_sign_flip([2 / 3, -2 / 3, 1 / 3]))
    for key in ("delta_ci95", "mde_pp", "items_needed", "cohens_h", "effect"):
        assert key in blk


# -- IFEval clustered standard errors --------------------------------------------------------------
def test_clustered_se_equals_sandwich_formula():
    rng = np.random.default_rng(7)
    clusters, vals = [], []
    for g in range(60):
        m = int(rng.integers(1, 4))
        shared = rng.random() < 0.6  # instructions of one prompt tend to agree
        for _ in range(m):
            clusters.append(f"p{g}")
            vals.append(float(shared if rng.random() < 0.8 else not shared))
    got = ifeval_inst.clustered_mean(vals, clusters)
    y = np.array(vals)
    e = y - y.mean()
    sums = Counter()
    for cl, r in zip(clusters, e, strict=True):
        sums[cl] += r
    G, N = len(sums), len(y)
    want = math.sqrt(G / (G - 1) * sum(v * v for v in sums.values())) / N
    assert got["se_clustered"] == pytest.approx(want, abs=1e-5)
    assert got["se_naive"] == pytest.approx(y.std(ddof=1) / math.sqrt(N), abs=1e-5)
    assert got["design_effect"] > 1  # correlated within prompts


def test_instruction_level_paired_difference():
    c = {0: {"p1": [True, True], "p2": [False], "p3": [True, False, True]}}
    b = {0: {"p1": [True, False], "p2": [False], "p3": [False, False, True]}}
    got = ifeval_inst.instruction_level({"cand": c, "base": b}, "cand", "base")
    assert got["models"]["cand"]["mean"] == pytest.approx(4 / 6, abs=1e-4)
    assert got["paired"]["delta_pp"] == pytest.approx(100 * 2 / 6, abs=0.01)
    assert got["paired"]["prompts"] == 3


def test_instruction_level_pairs_every_repeat_in_its_prompt_cluster():
    c = {0: {"p1": [True, True], "p2": [False]}, 1: {"p1": [False, True], "p2": [True]}}
    b = {0: {"p1": [True, False], "p2": [False]}, 1: {"p1": [False, False], "p2": [False]}}
    got = ifeval_inst.instruction_level({"cand": c, "base": b}, "cand", "base")["paired"]
    diffs = [0, 1, 0, 0, 1, 1]  # repeat 0: p1 (0, 1), p2 (0); repeat 1: p1 (0, 1), p2 (1)
    assert (got["n"], got["prompts"], got["repeats"]) == (6, 2, 2)
    assert got["delta_pp"] == pytest.approx(100 * sum(diffs) / 6, abs=0.01)
