"""Intervals and tests, in one place for every exploration: Wilson and bootstrap intervals
(also over several separately resampled groups), intervals on a difference of two rates or
means (paired or unpaired), permutation tests (also within strata),
McNemar's test of paired yes/no outcomes, the interval score, Clopper–Pearson intervals, and
ROC figures (AUC, the true-positive rate at a false-positive rate) with their intervals.

Conventions: ``confidence`` is the two-sided coverage (0.95 for a 95% interval); a bootstrap
is the percentile interval of ``draws`` resamples with replacement, drawn from
``numpy.random.default_rng(seed)``; NaN stands where there is nothing to estimate from."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import beta, binomtest
from sklearn.metrics import roc_auc_score

NAN_PAIR = (math.nan, math.nan)


def tails(confidence: float) -> tuple[float, float]:
    """(low, high) quantiles of a two-sided interval at ``confidence``; ValueError outside (0, 1)."""
    if not 0 < confidence < 1:
        raise ValueError(f"The confidence must lie between 0 and 1, not {confidence}.")
    return (1 - confidence) / 2, (1 + confidence) / 2


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of successes / n (scipy's ``binomtest``); NaNs when n = 0."""
    tails(confidence)
    if not n:
        return NAN_PAIR
    interval = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def rate_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(d, low, high) for d = k1/n1 − k2/n2, two independent rates, with Newcombe's hybrid
    score interval (Newcombe 1998, method 10), built from the two Wilson intervals: it stays
    inside [−1, 1] and keeps its coverage near 0 and 1, where the Wald interval does not.
    NaNs when either n is 0."""
    if not n1 or not n2:
        return (math.nan, *NAN_PAIR)
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, confidence), wilson(k2, n2, confidence)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def bootstrap(
    statistic: Callable[[np.ndarray], float], n: int, confidence: float = 0.95, seed: int = 0, draws: int = 2000
) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``draws`` resamples of range(n) with
    replacement; resamples where the statistic is NaN are left out. NaNs when n = 0."""
    if not n:
        tails(confidence)
        return NAN_PAIR
    return bootstrap_groups(lambda groups: statistic(groups[0]), [n], confidence, seed, draws)


def bootstrap_groups(
    statistic: Callable[[list[np.ndarray]], float],
    sizes: Sequence[int],
    confidence: float = 0.95,
    seed: int = 0,
    draws: int = 2000,
) -> tuple[float, float]:
    """``bootstrap`` over several groups, each resampled on its own (strata: the samples of each
    word, the queries of each pool): ``statistic`` gets one index array per group. Resamples
    where the statistic is NaN are left out; NaNs when every one is."""
    low_tail, high_tail = tails(confidence)
    rng = np.random.default_rng(seed)
    resamples = [
        rng.integers(0, size, (draws, size)) if size else np.empty((draws, 0), dtype=np.int64) for size in sizes
    ]
    values = np.array([statistic([group[i] for group in resamples]) for i in range(draws)], dtype=float)
    if np.isnan(values).all():
        return NAN_PAIR
    low, high = np.nanquantile(values, [low_tail, high_tail])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float], confidence: float = 0.95, seed: int = 0, draws: int = 2000
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` with its bootstrap interval."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return (math.nan, *NAN_PAIR)
    low_tail, high_tail = tails(confidence)
    means = values[np.random.default_rng(seed).integers(0, len(values), (draws, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [low_tail, high_tail])
    return float(values.mean()), float(low), float(high)


def two_stage_bootstrap_mean(
    groups: Sequence[Sequence[float]], confidence: float = 0.95, seed: int = 0, draws: int = 2000
) -> tuple[float, float, float]:
    """(mean, low, high): the mean over all values of ``groups`` (clusters: the labs, each with its
    values) with a two-stage bootstrap interval — clusters resampled, then the values within each
    — so that neither the few clusters nor the values inside them are taken as fixed."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return (math.nan, *NAN_PAIR)
    low_tail, high_tail = tails(confidence)
    rng = np.random.default_rng(seed)
    means = np.empty(draws)
    for d in range(draws):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        means[d] = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in picked]).mean()
    low, high = np.quantile(means, [low_tail, high_tail])
    return float(np.concatenate(groups).mean()), float(low), float(high)


def mean_difference(
    a: Sequence[float],
    b: Sequence[float],
    paired: bool = False,
    confidence: float = 0.95,
    seed: int = 0,
    draws: int = 2000,
) -> tuple[float, float, float]:
    """(d, low, high) for d = mean(a) − mean(b) with a bootstrap interval. Paired: a[i] and b[i]
    belong together (the same passage, word or record) and are resampled together; unpaired:
    each sample is resampled on its own. NaNs when either is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired and len(a) != len(b):
        raise ValueError(f"Paired samples need equal lengths, not {len(a)} and {len(b)}.")
    if not len(a) or not len(b):
        return (math.nan, *NAN_PAIR)
    if paired:  # the mean of the pairs' differences
        return bootstrap_mean(a - b, confidence, seed, draws)
    low_tail, high_tail = tails(confidence)
    rng = np.random.default_rng(seed)
    resampled = a[rng.integers(0, len(a), (draws, len(a)))].mean(axis=1) - b[
        rng.integers(0, len(b), (draws, len(b)))
    ].mean(axis=1)
    low, high = np.quantile(resampled, [low_tail, high_tail])
    return float(a.mean() - b.mean()), float(low), float(high)


def permutation_test(
    a: Sequence[float], b: Sequence[float], paired: bool = False, permutations: int = 10_000, seed: int = 0
) -> float:
    """Two-sided p-value for mean(a) − mean(b) = 0: unpaired, the group labels are shuffled;
    paired, the sign of each difference a[i] − b[i] is flipped at random. p = (1 + number of
    permutations at least as extreme) / (1 + permutations), never 0 (Phipson & Smyth 2010)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if paired and len(a) != len(b):
        raise ValueError(f"Paired samples need equal lengths, not {len(a)} and {len(b)}.")
    if not len(a) or not len(b):
        return math.nan
    rng = np.random.default_rng(seed)
    if paired:
        differences = a - b
        observed = abs(differences.mean())
        signs = rng.choice([-1.0, 1.0], size=(permutations, len(a)))
        permuted = np.abs((signs * differences).mean(axis=1))
    else:
        pooled = np.concatenate([a, b])
        observed = abs(a.mean() - b.mean())
        orders = rng.permuted(np.tile(pooled, (permutations, 1)), axis=1)
        permuted = np.abs(orders[:, : len(a)].mean(axis=1) - orders[:, len(a) :].mean(axis=1))
    extreme = int((permuted >= observed - 1e-12).sum())
    return (1 + extreme) / (1 + permutations)


def permutation_test_groups(
    statistic: Callable[[list[np.ndarray]], float],
    sizes: Sequence[tuple[int, int]],
    permutations: int = 2000,
    seed: int = 0,
) -> float:
    """Two-sided p-value for a statistic of two groups = 0, where within each stratum (the
    samples of one word, say) the first group's n_a items and the second's n_b are exchangeable.
    ``statistic`` gets, per stratum, an order of range(n_a + n_b) whose first n_a items are
    taken as group a (the identity order gives the observed value). p as in ``permutation_test``."""
    observed = abs(statistic([np.arange(a + b) for a, b in sizes]))
    if math.isnan(observed):
        return math.nan  # no statistic (an empty group, say), no test
    rng = np.random.default_rng(seed)
    permuted = np.array([abs(statistic([rng.permutation(a + b) for a, b in sizes])) for _ in range(permutations)])
    return (1 + int((permuted >= observed - 1e-12).sum())) / (1 + permutations)  # 1e-12: float ties count as extreme


def mcnemar(a: Sequence[bool], b: Sequence[bool], confidence: float = 0.95, seed: int = 0, draws: int = 2000) -> dict:
    """Paired yes/no outcomes (a[i] and b[i] from the same seed, prompt or record): d = share of
    a − share of b with the paired bootstrap interval (``mean_difference``), and McNemar's exact
    test — a binomial test of the pairs that disagree (only they carry evidence of a
    difference). Returns difference, ci_low, ci_high, p_value, a_only, b_only, n."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if len(a) != len(b):
        raise ValueError(f"Paired outcomes need equal lengths, not {len(a)} and {len(b)}.")
    d, low, high = mean_difference(
        a.astype(float), b.astype(float), paired=True, confidence=confidence, seed=seed, draws=draws
    )
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p_value = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {
        "difference": d,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(p_value),
        "a_only": a_only,
        "b_only": b_only,
        "n": len(a),
    }


def estimate_text(row, key: str) -> str:
    """``row[key]`` with its interval ``row[key + "_low"]``, ``row[key + "_high"]``, as tables print
    it: "0.792 [0.764, 0.819]"; "not estimable" where the figure is NaN."""
    value = row[key]
    return "not estimable" if math.isnan(value) else f"{value:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"


def difference_text(difference: float, low: float, high: float) -> str:
    """A difference with its interval, as pages and sentences print it: "+0.042 [-0.019, +0.086]"."""
    return f"{difference:+.3f} [{low:+.3f}, {high:+.3f}]"


def against_floor(low: float, high: float, floor: str = "the floor") -> str:
    """What a 95% interval on (value − floor) says, in the words every page uses."""
    if math.isnan(low) or math.isnan(high):
        return "no interval (too few samples)"
    if low > 0:
        return f"above {floor}"
    return f"below {floor}" if high < 0 else f"not distinguishable from {floor}"


def interval_score(low: float, high: float, truth: float, confidence: float = 0.95) -> float:
    """The interval score of Gneiting & Raftery (2007), lower is better: the width, plus 2/α
    times the distance by which the interval misses the truth (α = 1 − confidence). Covering
    the truth with a wide interval costs its width, so coverage cannot be bought by width."""
    tails(confidence)
    alpha = 1 - confidence
    return (high - low) + 2 / alpha * max(low - truth, 0.0) + 2 / alpha * max(truth - high, 0.0)


def multinomial_bootstrap(
    counts: Sequence[int], confidence: float = 0.95, seed: int = 0, draws: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) arrays: percentile intervals of each category's share in ``draws``
    multinomial resamples of the counts. An interval collapses to a point for a category seen
    never or always, where Wilson's does not."""
    counts = np.asarray(counts)
    n = int(counts.sum())
    if not n:
        return np.full(len(counts), math.nan), np.full(len(counts), math.nan)
    tails(confidence)
    shares = np.random.default_rng(seed).multinomial(n, counts / n, size=draws) / n
    tail = (1 - confidence) / 2 * 100
    return np.percentile(shares, tail, axis=0), np.percentile(shares, 100 - tail, axis=0)


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) two-sided interval of a binomial rate; (0, 1) when n = 0.
    Its one-sided bounds at level c are the two-sided interval's ends at 2c − 1."""
    low_tail, high_tail = tails(confidence)
    low = beta.ppf(low_tail, successes, n - successes + 1) if successes > 0 else 0.0
    high = beta.ppf(high_tail, successes + 1, n - successes) if successes < n else 1.0
    return float(low), float(high)


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """The area under the ROC curve: P(a positive's score > a negative's), ties counted half."""
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if not len(positives) or not len(negatives):
        return math.nan
    return float(roc_auc_score(np.r_[np.ones(len(positives)), np.zeros(len(negatives))], np.r_[positives, negatives]))


def tpr_at_fpr(positives: Sequence[float], negatives: Sequence[float], fpr: float) -> float:
    """The share of positives flagged by the lowest threshold that flags at most ⌊fpr · n⌋ of the
    n negatives (a positive is flagged when its score exceeds the threshold). NaN — not
    estimable — when 1/n > fpr: no threshold can be told to keep the false positives that low."""
    positives, negatives = np.asarray(positives, dtype=float), np.sort(np.asarray(negatives, dtype=float))[::-1]
    if not len(positives) or not len(negatives) or 1 / len(negatives) > fpr:
        return math.nan
    allowed = math.floor(fpr * len(negatives) + 1e-9)
    if allowed >= len(negatives):
        return 1.0
    return float((positives > negatives[allowed]).mean())


def roc_summary(
    positives: Sequence[float],
    negatives: Sequence[float],
    fprs: Sequence[float] = (0.01, 0.001),
    confidence: float = 0.95,
    seed: int = 0,
    draws: int = 1000,
) -> dict[str, float]:
    """AUC and the TPR at each FPR, each with a bootstrap interval (positives and negatives
    resampled apart): keys auc, auc_low, auc_high, and tpr@F, tpr@F_low, tpr@F_high per FPR F."""  # fmt: skip
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    sizes = [len(positives), len(negatives)]
    figures = {"auc": auc(positives, negatives)}
    figures["auc_low"], figures["auc_high"] = bootstrap_groups(
        lambda g: auc(positives[g[0]], negatives[g[1]]), sizes, confidence, seed, draws
    )
    for rate in fprs:
        key = f"tpr@{rate:g}"
        figures[key] = tpr_at_fpr(positives, negatives, rate)
        figures[f"{key}_low"], figures[f"{key}_high"] = (
            NAN_PAIR if math.isnan(figures[key])
            else bootstrap_groups(lambda g, r=rate: tpr_at_fpr(positives[g[0]], negatives[g[1]], r), sizes, confidence, seed, draws)
        )  # fmt: skip
    return figures
