"""Is a property-inference estimate better than a trivial one? Baselines a shadow calibration
must beat, scores that cannot be bought by width, and a check that a target lies where the
shadows lay.

Every estimate of a value's share comes with an interval; each is scored against the truth by
its absolute error, its width, whether it covers, and the interval score (``stats.interval_score``:
the width plus 2/α times any miss). ``compare`` puts every method side by side for one run;
``paired_differences`` reads a method against the naive estimate over labs and values;
``resampled_differences`` does it for one run, over its generations; ``judge`` is what the
page, CLI, notebook and gallery call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.config import DATA_DIR, ModelSpec
from workbench.propinfer import Labeler, PropInferResult, estimate, labels_of, scored
from workbench.shadow_calibration import METHODS
from workbench.shadows import Calibrated, ShadowSet, calibrate
from workbench.stats import tails, two_stage_bootstrap_mean

# What each method assumes, as the page, CLI and documentation state it.
ASSUMPTIONS = {
    "naive": "the model writes each value as often as its training data held it; the interval is sampling noise alone (Wilson)",
    "james-stein": "shrinks toward the uniform share by a strength read from the sampled counts alone (Hausser & Strimmer's "
    "James–Stein estimator of cell frequencies); no shadows; the interval is the counts' bootstrap, blind to any bias",
    "base": "the generations mix the training shares with the base model's own habits, in one proportion fitted on the "
    "shadows; needs the base model sampled the same way",
    "pooled": "one line from the labeled share to the true share for every value, fitted on the shadows; it passes "
    "through (1/V, 1/V), so it is fixed shrinkage toward the uniform share with its strength fitted on the shadows",
    "linear": "a line per value (fitted on the shadows)",
    "ridge": "a ridge map from the labeled shares and word frequencies (fitted on the shadows)",
}
COUNTS_ONLY = ("naive", "james-stein")  # the estimates that need no shadows
SHIPPED_BENCHMARK = DATA_DIR / "propinfer"  # benchmarks/propinfer_calibration.py's shipped run


def shipped(folder: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The shipped calibration benchmark's (summary, differences) over all its standard labs —
    where the calibration holds and where it does not —, or None when it has not been run."""
    folder = Path(folder or SHIPPED_BENCHMARK)
    if not (folder / "summary.csv").is_file() or not (folder / "differences.csv").is_file():
        return None
    summary, differences = pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "differences.csv")
    return summary[summary["group"] == "all standard labs"], differences[differences["group"] == "all standard labs"]


def james_stein(counts: Sequence[int], confidence: float = 0.95, seed: int = 0, draws: int = 2000) -> pd.DataFrame:
    """Shrinkage of the sampled shares toward the uniform share 1/V, its strength from the counts
    alone (Hausser & Strimmer 2009): λ = (1 − Σ θ̂²) / ((n − 1) Σ (1/V − θ̂)²), clipped to [0, 1];
    share = λ/V + (1 − λ) θ̂. The interval: percentiles of the estimator over ``draws`` multinomial
    resamples of the counts. DataFrame(share, ci_low, ci_high, strength), one row per count."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 1 or len(counts) < 2 or (counts < 0).any():
        raise ValueError("James–Stein shrinkage needs the counts of at least two values, none negative.")
    n = counts.sum()
    if n < 2:
        raise ValueError(f"James–Stein shrinkage needs at least 2 labeled generations, not {int(n)}.")
    low_tail, high_tail = tails(confidence)

    def shrunk(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shares = sample / sample.sum(axis=-1, keepdims=True)
        spread = ((1 / len(counts) - shares) ** 2).sum(axis=-1, keepdims=True)
        strength = np.where(
            spread > 0, (1 - (shares**2).sum(axis=-1, keepdims=True)) / ((n - 1) * np.where(spread > 0, spread, 1)), 0.0
        )
        strength = np.clip(strength, 0.0, 1.0)
        return strength / len(counts) + (1 - strength) * shares, strength

    point, strength = shrunk(counts)
    resampled, _ = shrunk(np.random.default_rng(seed).multinomial(int(n), counts / n, size=draws).astype(float))
    low, high = np.quantile(resampled, [low_tail, high_tail], axis=0)
    return pd.DataFrame({"share": point, "ci_low": low, "ci_high": high, "strength": float(strength[0])})


def shadow_range(shadows: ShadowSet, labeler: Labeler, shares: Mapping[str, float]) -> pd.DataFrame:
    """Is the target where the shadows were? Per value: the target's labeled share beside the
    lowest and highest labeled share among the shadows; inside = within them. A map fitted on
    the shadows interpolates inside that range and extrapolates outside it.
    DataFrame(value, share, shadow_low, shadow_high, inside)."""
    observed = np.array([estimate(labels, labeler.values)["share"].to_numpy() for labels in shadows.labels(labeler)])
    table = pd.DataFrame({"value": labeler.values, "share": [float(shares[v]) for v in labeler.values]})
    table["shadow_low"], table["shadow_high"] = observed.min(axis=0), observed.max(axis=0)
    table["inside"] = (table["shadow_low"] <= table["share"]) & (table["share"] <= table["shadow_high"])
    return table


def shadow_evidence(
    shadows: ShadowSet, labeler: Labeler, method: str = "pooled", confidence: float = 0.95, seed: int = 0
) -> pd.Series:
    """Does the map beat the naive estimate on the shadows themselves? Its leave-one-shadow-out
    interval score minus the naive one (``paired_differences`` over the shadows and values)."""
    sweep = scored(shadows.sweep(labeler, method, confidence), confidence=confidence)
    sweep = sweep.assign(
        method=sweep["estimate"].map({"naive": "naive", "calibrated": method}), property=labeler.property
    )
    table = paired_differences(sweep, cluster="shadow", measures=("interval_score",), confidence=confidence, seed=seed)
    return table.iloc[0]


def leading(range_table: pd.DataFrame, evidence: pd.Series | None = None) -> tuple[str, str]:
    """(the estimate that leads, why): the calibrated one only where the map beats the naive
    estimate on the shadows (``evidence``: its interval-score difference, interval below 0) and
    every labeled share of the target lies inside the shadows' range; the naive one otherwise."""
    if evidence is not None and not evidence["high"] < 0:
        return "naive", (
            f"On the shadows themselves the map does not beat the naive estimate: its interval score minus the naive one, "
            f"leaving each shadow out, is {evidence['difference']:+.3f} [{evidence['low']:+.3f}, {evidence['high']:+.3f}]. "
            "The naive estimate leads; the calibrated one is shown beside it."
        )
    outside = range_table.loc[~range_table["inside"]]
    if outside.empty:
        return "calibrated", (
            "The map beats the naive estimate on the shadows, and every labeled share lies inside the range they showed: the "
            "calibration interpolates, so it leads."
        )
    named = ", ".join(
        f"{r.value} ({r.share:.3f}; shadows {r.shadow_low:.3f}–{r.shadow_high:.3f})" for r in outside.itertuples()
    )
    return "naive", (
        f"Outside the range the shadows showed: {named}. The calibration would extrapolate there, so the naive estimate leads; "
        "the calibrated one is shown beside it."
    )


def compare(
    result: PropInferResult,
    labeler: Labeler,
    shadows: ShadowSet | None = None,
    methods: Sequence[str] = ("naive", "james-stein", *METHODS),
    truth: Mapping[str, float] | None = None,
    base_shares: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Every method's estimate of the run's shares, one row per method and value:
    DataFrame(method, value, share, ci_low, ci_high[, true_share, error, covered, abs_error,
    width, interval_score]). The shadow methods need ``shadows``; "base" needs ``base_shares``
    (the base model's labeled shares, sampled as the run was) and is left out without them, as
    James–Stein is below 2 labeled generations."""
    unknown = set(methods) - set(ASSUMPTIONS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {', '.join(ASSUMPTIONS)}.")
    if shadows is None and set(methods) - set(COUNTS_ONLY):
        raise ValueError("The shadow methods need a shadow set.")
    counts = result.estimates["count"].to_numpy()
    frames = []
    for method in methods:
        if (method == "base" and base_shares is None) or (method == "james-stein" and counts.sum() < 2):
            continue
        if method == "naive":
            table = result.estimates[["value", "share", "ci_low", "ci_high"]]
        elif method == "james-stein":
            table = (
                james_stein(counts, result.cfg.confidence, result.cfg.seed)
                .drop(columns="strength")
                .assign(value=labeler.values)
            )
        else:
            anchor = base_shares if method == "base" else None
            calibrated = calibrate(result, shadows, labeler, method, anchor=anchor).table
            table = calibrated[["value", "calibrated", "cal_low", "cal_high"]].set_axis(
                ["value", "share", "ci_low", "ci_high"], axis=1
            )
        frames.append(table.assign(method=method))
    if not frames:
        raise ValueError("No method can estimate this run: it has no labeled generation.")
    table = pd.concat(frames, ignore_index=True)[["method", "value", "share", "ci_low", "ci_high"]]
    return table if truth is None else scored(table, truth, result.cfg.confidence)


def base_shares(base_run: PropInferResult) -> np.ndarray:
    """The base model's labeled shares (the "base" method's anchor) from its run."""
    shares = base_run.estimates["share"].to_numpy()
    if np.isnan(shares).any():
        raise ValueError("The base model's generations got no label: its habits cannot anchor a correction.")
    return shares


def score_summary(scores: pd.DataFrame, by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Per group: mae, mean width, mean interval score, coverage (share of intervals covering) and n."""
    return (
        scores.groupby(list(by), sort=False)
        .agg(mae=("abs_error", "mean"), width=("width", "mean"), interval_score=("interval_score", "mean"),
             coverage=("covered", "mean"), n=("covered", "size"))
        .reset_index()
    )  # fmt: skip


def paired_differences(
    scores: pd.DataFrame,
    against: str = "naive",
    cluster: str = "lab",
    measures: Sequence[str] = ("abs_error", "interval_score", "width"),
    confidence: float = 0.95,
    seed: int = 0,
    draws: int = 2000,
) -> pd.DataFrame:
    """Each method minus ``against`` on the same (cluster, property, value) rows, per property,
    with a paired two-stage bootstrap: clusters (labs) resampled, then the values within each
    (``stats.two_stage_bootstrap_mean``; with few clusters the interval is rough, and
    resampling both stages errs wide). Negative is better for every measure.
    DataFrame(method, property, measure, difference, low, high, n, clusters)."""
    key = [cluster, "property", "value"]
    base = scores.loc[scores["method"] == against, key + list(measures)]
    if base.empty:
        raise ValueError(f"No {against!r} rows to read the methods against.")
    rows = []
    others = scores.loc[scores["method"] != against]
    for (method, prop), group in others.groupby(["method", "property"], sort=False):
        paired = group.merge(base, on=key, suffixes=("", "_base"))
        clusters = [part for _, part in paired.groupby(cluster, sort=False)]
        for measure in measures:
            diffs = [(c[measure] - c[f"{measure}_base"]).to_numpy() for c in clusters]
            rows.append(
                (
                    method,
                    prop,
                    measure,
                    *two_stage_bootstrap_mean(diffs, confidence, seed, draws),
                    sum(map(len, diffs)),
                    len(diffs),
                )
            )
    return pd.DataFrame(rows, columns=["method", "property", "measure", "difference", "low", "high", "n", "clusters"])


def resampled_differences(
    result: PropInferResult,
    labeler: Labeler,
    shadows: ShadowSet,
    truth: Mapping[str, float],
    methods: Sequence[str] = ("james-stein", "pooled"),
    against: str = "naive",
    draws: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """One run's MAE by each method minus ``against``'s, with a percentile interval from
    resampling its generations with replacement (the run's own sampling noise: every method is
    recomputed on each resample). DataFrame(method, difference, low, high)."""

    def maes(run_: PropInferResult) -> pd.Series:
        return compare(run_, labeler, shadows, (against, *methods), truth).groupby("method")["abs_error"].mean()

    point = maes(result)
    rng = np.random.default_rng(seed)
    resampled = []
    for _ in range(draws):
        generations = result.generations.iloc[rng.integers(0, len(result.generations), len(result.generations))]
        estimates = estimate(
            labels_of(generations), labeler.values, result.cfg.interval, result.cfg.confidence, seed=result.cfg.seed
        )
        resampled.append(maes(replace(result, generations=generations, estimates=estimates)))
    low_tail, high_tail = tails(result.cfg.confidence)
    rows = []
    for method in methods:
        spread = np.array([r[method] - r[against] for r in resampled if method in r])
        rows.append((method, float(point[method] - point[against]), *np.quantile(spread, [low_tail, high_tail])))
    return pd.DataFrame(rows, columns=["method", "difference", "low", "high"])


@dataclass
class Judged:
    calibrated: Calibrated  # the chosen map's table, as ``calibrate`` gives it
    methods: pd.DataFrame  # ``compare``: every method's estimate (and scores, with the truth)
    where: pd.DataFrame  # ``shadow_range``: the run's labeled shares against the shadows'
    evidence: pd.Series  # ``shadow_evidence``: the map against naive on the shadows
    lead: str  # "calibrated" or "naive"
    why: str
    notes: list[str]  # methods left out, and why


def judge(
    result: PropInferResult,
    labeler: Labeler,
    shadows: ShadowSet,
    method: str = "pooled",
    truth: Mapping[str, float] | None = None,
    target: ModelSpec | None = None,
    base_run: PropInferResult | None = None,
) -> Judged:
    """A run read against its shadows, as every front end shows it: the chosen map, every method
    beside it, and which estimate leads (``leading``). ``base_run``: the base model sampled and
    labeled as the run was; it anchors the "base" method when it is the shadows' base model."""
    calibrated = calibrate(result, shadows, labeler, method, None if truth is None else dict(truth), target)
    anchor, notes = None, []
    if base_run is None:
        notes.append(
            f"No base correction: it needs the shadows' base model ({shadows.recipe.base}) run beside the target."
        )
    elif base_run.model != shadows.recipe.base:
        notes.append(
            f"No base correction: the base run is {base_run.model}, the shadows were fine-tuned from {shadows.recipe.base}."
        )
    else:
        try:
            anchor = base_shares(base_run)
        except ValueError as err:
            notes.append(f"No base correction: {err}")
    if result.estimates["count"].sum() < 2:
        notes.append("No James–Stein estimate: it needs at least 2 labeled generations.")
    methods = compare(result, labeler, shadows, truth=truth, base_shares=anchor)
    where = shadow_range(shadows, labeler, dict(zip(result.estimates["value"], result.estimates["share"])))
    evidence = shadow_evidence(shadows, labeler, method, result.cfg.confidence, result.cfg.seed)
    return Judged(calibrated, methods, where, evidence, *leading(where, evidence), notes)
