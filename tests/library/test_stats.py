"""The statistics module on cases worked by hand or published."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from workbench.stats import (
    against_floor,
    bootstrap,
    bootstrap_groups,
    bootstrap_mean,
    interval_score,
    mcnemar,
    mean_difference,
    multinomial_bootstrap,
    permutation_test,
    permutation_test_groups,
    rate_difference,
    wilson,
)


def test_wilson_by_hand():
    low, high = wilson(0, 10)  # z² / n = 0.384: centre and half-width both 0.1388
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson(5, 10)
    assert low == pytest.approx(1 - high) and low < 0.5 < high
    assert all(math.isnan(x) for x in wilson(0, 0))
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence=95)


def test_rate_difference_matches_newcombes_example():
    # Newcombe (1998), Stat Med 17:873, example (a): 56/70 against 48/80, method 10.
    d, low, high = rate_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=1e-4) and high == pytest.approx(0.3339, abs=1e-4)
    d, low, high = rate_difference(3, 10, 3, 10)
    assert d == 0 and low == pytest.approx(-high)
    assert all(math.isnan(x) for x in rate_difference(1, 0, 1, 2))


def test_bootstrap_intervals():
    mean, low, high = bootstrap_mean([0.0, 1.0, 0.5, 0.5])
    assert mean == 0.5 and 0.0 <= low < 0.5 < high <= 1.0
    assert bootstrap_mean([0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    assert bootstrap_mean([0.1, 0.9], seed=1) == bootstrap_mean([0.1, 0.9], seed=1)
    assert all(math.isnan(x) for x in bootstrap_mean([]))

    values = np.arange(10.0)
    low, high = bootstrap(lambda i: values[i].mean(), 10)
    assert (low, high) == pytest.approx(bootstrap_mean(values)[1:])  # the same resamples
    # resamples where the statistic is undefined are left out, not counted as 0
    low, high = bootstrap(lambda i: math.nan if 0 not in i else 1.0, 5)
    assert low == high == 1.0
    assert all(math.isnan(x) for x in bootstrap(lambda i: math.nan, 5))


def test_mean_difference_paired_is_narrower_when_pairs_share_their_noise():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1, 40)
    a, b = shared + 0.3 + rng.normal(0, 0.1, 40), shared + rng.normal(0, 0.1, 40)
    paired = mean_difference(a, b, paired=True)
    unpaired = mean_difference(a, b)
    assert paired[0] == pytest.approx(unpaired[0]) == pytest.approx(a.mean() - b.mean())
    assert paired[1] > 0  # the shift shows once the shared noise cancels
    assert unpaired[1] < 0 < unpaired[2]  # and is lost in it otherwise
    assert paired[2] - paired[1] < (unpaired[2] - unpaired[1]) / 5
    with pytest.raises(ValueError, match="equal lengths"):
        mean_difference([1.0], [1.0, 2.0], paired=True)


def test_permutation_test():
    high, low = [10.0 + i for i in range(8)], [float(i) for i in range(8)]
    # exact unpaired p = 2 / C(16, 8) = 0.00016: no permutation reaches it
    assert permutation_test(high, low) == pytest.approx(1 / 10_001, abs=5 / 10_001)
    assert permutation_test(low, low) == 1.0
    same = np.random.default_rng(1).normal(0, 1, (2, 30))
    assert permutation_test(same[0], same[1]) > 0.05
    # paired, every difference positive: exact p = 2 / 2^10 = 0.002
    assert permutation_test(np.arange(10.0) + 1, np.zeros(10), paired=True) == pytest.approx(0.002, abs=0.0015)
    assert math.isnan(permutation_test([], [1.0]))


def test_grouped_bootstrap_and_stratified_permutations():
    values = np.arange(10.0)
    # one group: the same resamples as bootstrap
    assert bootstrap_groups(lambda g: values[g[0]].mean(), [10]) == pytest.approx(
        bootstrap(lambda i: values[i].mean(), 10)
    )
    # two groups resampled on their own: a constant group adds no width, an empty one no index
    a, b = np.arange(10.0), np.full(5, 3.0)
    low, high = bootstrap_groups(lambda g: a[g[0]].mean() - b[g[1]].mean() + len(g[2]), [10, 5, 0])
    assert low == pytest.approx(bootstrap_mean(a)[1] - 3.0) and high == pytest.approx(bootstrap_mean(a)[2] - 3.0)

    # within each of two strata the first group is far above the second: exact p = 2 / C(8, 4)^2 ≈ 0.0004
    strata = [(np.array([10.0, 11, 12, 13, 0, 1, 2, 3])), np.array([20.0, 21, 22, 23, 5, 6, 7, 8])]

    def shift(orders):
        return np.mean([x[o[:4]].mean() - x[o[4:]].mean() for x, o in zip(strata, orders)])

    assert permutation_test_groups(shift, [(4, 4), (4, 4)]) == pytest.approx(1 / 2001, abs=5 / 2001)
    # strata kept apart: labels swapped only within a stratum, so a stratum's level cannot make a difference
    level = [np.array([5.0, 5, 5, 5]), np.array([9.0, 9, 9, 9])]
    assert (
        permutation_test_groups(
            lambda o: np.mean([x[i[:2]].mean() - x[i[2:]].mean() for x, i in zip(level, o)]), [(2, 2), (2, 2)]
        )
        == 1.0
    )
    assert math.isnan(permutation_test_groups(lambda o: math.nan, [(2, 2)]))  # no statistic, no p-value


def test_interval_score_charges_width_and_misses():
    assert interval_score(0.2, 0.4, 0.3, confidence=0.9) == pytest.approx(0.2)
    assert interval_score(0.2, 0.4, 0.5, confidence=0.9) == pytest.approx(0.2 + 20 * 0.1)
    assert interval_score(0.2, 0.4, 0.1, confidence=0.9) == pytest.approx(0.2 + 20 * 0.1)
    # a wide interval that covers can score worse than a narrow one that just misses
    assert interval_score(0.0, 1.0, 0.5) > interval_score(0.45, 0.49, 0.5)


def test_multinomial_bootstrap():
    low, high = multinomial_bootstrap([0, 30, 70])
    assert low[0] == high[0] == 0.0  # never seen: the interval collapses (Wilson's does not)
    assert low[1] < 0.3 < high[1] and low[2] < 0.7 < high[2]
    assert np.isnan(multinomial_bootstrap([0, 0])[0]).all()


def test_mcnemar_counts_the_pairs_that_disagree():
    a = [True] * 12 + [False] * 8 + [True] * 30 + [False] * 50
    b = [False] * 12 + [True] * 8 + [True] * 30 + [False] * 50
    result = mcnemar(a, b)
    assert (result["a_only"], result["b_only"], result["n"]) == (12, 8, 100)
    assert result["difference"] == pytest.approx(0.04)
    assert result["ci_low"] < 0 < result["ci_high"]  # 12 against 8: no evidence of a difference
    assert result["p_value"] == pytest.approx(binomtest(12, 20, 0.5).pvalue)
    clear = mcnemar([True] * 30 + [False] * 70, [False] * 100)
    assert clear["p_value"] < 1e-6 and clear["ci_low"] > 0.15
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar([True], [True, False])


def test_against_floor_reads_the_interval():
    assert against_floor(0.01, 0.2) == "above the floor" and against_floor(-0.3, -0.1) == "below the floor"
    assert (
        against_floor(-0.1, 0.2) == "not distinguishable from the floor"
        and against_floor(0.0, 0.2) == "not distinguishable from the floor"
    )
    assert against_floor(-0.1, 0.1, "the clean control") == "not distinguishable from the clean control"
    assert against_floor(math.nan, math.nan) == "no interval (too few samples)"
