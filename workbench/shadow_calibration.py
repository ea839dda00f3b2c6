"""The calibration maps of property inference (PropInfer 2025): from what a model's generations
show (labeled shares, word frequencies) to the true shares in its fine-tuning data, learned on
shadow models whose truth is known (``workbench.shadows``).

``feature_rows`` turns labeled generations into the rows a map reads; ``Calibration`` fits
one of the ``METHODS`` (pooled, linear, ridge, base) on the shadows, checks it by leaving one
shadow out, predicts a target's shares with intervals, and says whether naive intervals can be
trusted for models like the shadows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.linear_model import RidgeCV

from workbench.propinfer import lab_labeler

METHODS = {
    "pooled": "one line for all values: true share = a + b × labeled share",
    "linear": "a line per value: true share = a_v + b_v × labeled share",
    "ridge": "ridge regression on the labeled shares and word frequencies",
    "base": "a correction by the base model's habits: true share = b + s × (labeled share − b), b the base's labeled share",
}
SHADOW_METHODS = {
    m: what for m, what in METHODS.items() if m != "base"
}  # the maps that need nothing but the shadow set
TRUST_RATIO = 2.0  # naive errors this many times the sampling noise: the naive intervals cannot be trusted
RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def checked_method(method: str) -> str:
    """``method`` when it is one of ``METHODS``; ValueError otherwise."""
    if method not in METHODS:
        raise ValueError(f"Unknown calibration method {method!r}; choose one of {', '.join(METHODS)}.")
    return method


def word_patterns(property: str) -> list[str]:
    """The words of PropInfer's word-frequency features: the lab keyword labeler's patterns."""
    return [p for patterns in lab_labeler(property).patterns.values() for p in patterns]


def feature_rows(
    labels: Sequence[str | None],
    values: Sequence[str],
    texts: Sequence[str] | None = None,
    patterns: Sequence[str] | None = None,
) -> np.ndarray:
    """One row per labeled generation: its label one-hot over ``values``, then, with
    ``patterns`` (regular expressions, case-insensitive), 1 where its text matches each.

    The mean row is what a calibration maps: the labeled shares, then the share of labeled
    generations that use each word."""
    keep = [i for i, label in enumerate(labels) if label is not None]
    onehot = np.array([[labels[i] == v for v in values] for i in keep], dtype=float).reshape(len(keep), len(values))
    if not patterns:
        return onehot
    if texts is None or len(texts) != len(labels):
        raise ValueError("Word features need every generation's text.")
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    words = np.array([[bool(c.search(texts[i])) for c in compiled] for i in keep], dtype=float).reshape(
        len(keep), len(compiled)
    )
    return np.hstack([onehot, words])


def _normalise(raw: np.ndarray) -> np.ndarray:
    """Shares from a map's raw output: negatives set to 0, each row scaled to sum to 1
    (uniform where nothing is left)."""
    clipped = np.clip(raw, 0.0, None)
    totals = clipped.sum(axis=1, keepdims=True)
    uniform = np.full_like(clipped, 1.0 / clipped.shape[1])
    return np.where(totals > 0, clipped / np.where(totals > 0, totals, 1.0), uniform)


class Calibration:
    """A map from what generations show to the true shares, learned on shadow models.

    method "pooled": true_v ≈ a + b · x_v for every value v, x_v the labeled share of v (least
    squares over all shadows and values: two parameters, well determined by a few shadows).
    Shares sum to 1, so the mean of both x and true is 1/V and the line passes through
    (1/V, 1/V): the pooled map is fixed shrinkage toward the uniform share, its strength 1 − b
    fitted on the shadows.
    "linear": true_v ≈ a_v + b_v · x_v, a line per value (least squares over the shadows). "ridge": every true share from the labeled shares and the word
    frequencies together (ridge regression on standardized features, its penalty per value
    chosen by leave-one-out). "base": true_v ≈ c_v + s · (x_v − c_v), one slope s about
    ``anchor`` c, the base model's labeled shares (least squares through it; s > 1 moves the
    estimate away from what the base writes anyway). Every map is affine, raw = c + W x̄ with x̄ the mean feature row;
    the calibrated shares are raw with negatives set to 0, scaled to sum to 1.

    The interval of a calibrated share: ± z · sd, sd² = W Σ Wᵀ / n (the target's sampling
    variance through the map; Σ the covariance of its feature rows, n its labeled
    generations) + residual_sd_² (mean squared leave-one-shadow-out error: what the map
    misses on a model it has not seen). The residuals already hold the shadows' own
    sampling noise, so the interval errs wide. Clipped to [0, 1].

    Fitted state: intercept_ (c), coef_ (W, V × features), loo_ (K × V shares of each shadow
    from a map fitted without it), residual_sd_ (V), naive_ (K × V labeled shares), n_ (K),
    truth_ (K × V), values_."""

    def __init__(self, method: str = "pooled", confidence: float = 0.95, anchor: Sequence[float] | None = None):
        self.method = checked_method(method)
        if not 0 < confidence < 1:
            raise ValueError("confidence must be in (0, 1), e.g. 0.95.")
        if (method == "base") != (anchor is not None):
            raise ValueError("The base correction needs the base model's labeled shares (anchor); only it takes them.")
        self.confidence = confidence
        self.anchor = None if anchor is None else np.asarray(anchor, dtype=float)

    def _fit_map(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_values = Y.shape[1]
        if self.method == "base":
            if self.anchor.shape != (n_values,):
                raise ValueError(f"The base model's shares have {self.anchor.size} values, the labeler {n_values}.")
            fixed = self.anchor
            dx, dy = (X[:, :n_values] - fixed).ravel(), (Y - fixed).ravel()
            slope = float(dx @ dy / (dx @ dx)) if dx @ dx > 1e-12 else 1.0
            coef = np.zeros((n_values, X.shape[1]))
            coef[:, :n_values] = slope * np.eye(n_values)
            return fixed * (1 - slope), coef
        if self.method == "pooled":
            x, y = X[:, :n_values].ravel(), Y.ravel()
            slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 1e-12 else (0.0, y.mean())
            coef = np.zeros((n_values, X.shape[1]))
            coef[:, :n_values] = slope * np.eye(n_values)
            return np.full(n_values, intercept), coef
        if self.method == "linear":
            coef, intercept = np.zeros((n_values, X.shape[1])), Y.mean(axis=0)
            for v in range(n_values):
                x = X[:, v]
                if np.ptp(x) > 1e-12:
                    coef[v, v], intercept[v] = np.polyfit(x, Y[:, v], 1)
            return intercept, coef
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        model = RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=True).fit((X - mean) / scale, Y)
        coef = model.coef_ / scale
        return model.intercept_ - coef @ mean, coef

    def fit(self, rows: Sequence[np.ndarray], truth: np.ndarray, values: Sequence[str]) -> Calibration:
        """``rows``: each shadow's feature rows (``feature_rows``); ``truth``: K × V true shares."""
        truth = np.asarray(truth, dtype=float)
        values = list(values)
        if len(rows) != len(truth) or truth.ndim != 2 or truth.shape[1] != len(values):
            raise ValueError(
                "Give one set of feature rows and one row of true shares (one per value) for every shadow."
            )
        if len(rows) < 3:
            raise ValueError(f"A calibration needs at least 3 shadows, not {len(rows)}.")
        if any(len(r) == 0 for r in rows):
            raise ValueError("A shadow has no labeled generation: the labeler does not fit these shadows.")
        X = np.stack([r.mean(axis=0) for r in rows])
        self.values_ = values
        self.intercept_, self.coef_ = self._fit_map(X, truth)
        loo = []
        for k in range(len(X)):
            keep = np.arange(len(X)) != k
            intercept, coef = self._fit_map(X[keep], truth[keep])
            loo.append(_normalise((intercept + coef @ X[k])[None, :])[0])
        self.loo_ = np.array(loo)
        self.residual_sd_ = np.sqrt(((self.loo_ - truth) ** 2).mean(axis=0))
        self.naive_, self.n_, self.truth_ = X[:, : len(values)], np.array([len(r) for r in rows]), truth
        return self

    def predict(self, rows: np.ndarray) -> pd.DataFrame:
        """Calibrated shares of a target from its feature rows: DataFrame(value, calibrated,
        cal_low, cal_high, sd, sampling_sd, map_sd)."""
        rows = np.asarray(rows, dtype=float)
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(
                "No labeled generation to calibrate: the labeler matched none of the target's generations."
            )
        if rows.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"The target has {rows.shape[1]} features, the calibration {self.coef_.shape[1]}.")
        point = _normalise((self.intercept_ + self.coef_ @ rows.mean(axis=0))[None, :])[0]
        covariance = np.atleast_2d(np.cov(rows, rowvar=False, ddof=0))
        sampling_sd = np.sqrt(
            np.clip(np.einsum("vf,fg,vg->v", self.coef_, covariance, self.coef_) / len(rows), 0.0, None)
        )
        sd = np.sqrt(sampling_sd**2 + self.residual_sd_**2)
        z = norm.ppf(0.5 + self.confidence / 2)
        return pd.DataFrame(
            {
                "value": self.values_,
                "calibrated": point,
                "cal_low": np.clip(point - z * sd, 0.0, 1.0),
                "cal_high": np.clip(point + z * sd, 0.0, 1.0),
                "sd": sd,
                "sampling_sd": sampling_sd,
                "map_sd": self.residual_sd_,
            }
        )

    def trust(self) -> pd.DataFrame:
        """Are naive intervals trustworthy for models like the shadows? Per value: naive_rmse
        (root mean square of labeled share − truth over the shadows), sampling_sd (what
        binomial sampling alone gives: root mean of x(1 − x)/n), ratio = naive_rmse /
        sampling_sd, and calibrated_rmse (leave-one-out). A ratio far above 1 means the
        naive estimates miss by more than their intervals allow."""
        naive_rmse = np.sqrt(((self.naive_ - self.truth_) ** 2).mean(axis=0))
        sampling_sd = np.sqrt((self.naive_ * (1 - self.naive_) / self.n_[:, None]).mean(axis=0))
        ratio = naive_rmse / np.where(sampling_sd > 0, sampling_sd, np.nan)
        return pd.DataFrame(
            {
                "value": self.values_,
                "naive_rmse": naive_rmse,
                "sampling_sd": sampling_sd,
                "ratio": ratio,
                "calibrated_rmse": self.residual_sd_,
            }
        )

    @property
    def naive_trusted(self) -> bool:
        """False when, for some value, the naive errors on the shadows exceed TRUST_RATIO × sampling noise."""
        return bool((self.trust()["ratio"].fillna(np.inf) <= TRUST_RATIO).all())

    def verdict(self) -> str:
        """The trust check in one plain sentence."""
        table = self.trust()
        worst = table.loc[table["ratio"].fillna(np.inf).idxmax()]
        shadows = f"On the {len(self.n_)} shadow models"
        if self.naive_trusted:
            return (
                f"{shadows} the naive estimates miss the truth by about what sampling noise explains (at most "
                f"{worst['ratio']:.1f}× for {worst['value']}); their intervals can be used."
            )
        return (
            f"Do not trust the naive intervals. {shadows} the naive estimate of {worst['value']} misses the truth by "
            f"{worst['naive_rmse']:.3f} (root mean square), {worst['ratio']:.1f}× what sampling noise explains "
            f"({worst['sampling_sd']:.3f}): the model's generations are biased, and the interval does not see it. "
            "Use the calibrated estimate and its interval."
        )
