"""workbench.propinfer_judge: shrinkage baselines, scores and paired differences on hand-made numbers."""

import numpy as np
import pandas as pd
import pytest

from workbench.lab_vocabulary import DIAGNOSES
from workbench.propinfer import NAME_TEMPLATES, lab_labeler, names_labeler, scored
from workbench.propinfer_judge import james_stein, leading, paired_differences, score_summary
from workbench.shadow_calibration import Calibration, feature_rows
from workbench.shadows import draw_shares
from workbench.stats import two_stage_bootstrap_mean

VALUES = list(DIAGNOSES)


def test_james_stein_shrinks_by_the_strength_the_counts_give():
    # θ̂ = (.6, .2, .2): λ = (1 − .44) / (9 × ((1/3 − .6)² + 2 (1/3 − .2)²)) = 0.5833
    table = james_stein([6, 2, 2], seed=0, draws=500)
    assert table["strength"].iloc[0] == pytest.approx(0.56 / (9 * (0.071111 + 2 * 0.017778)), abs=1e-4)
    assert table["share"].tolist() == pytest.approx(
        [0.58333 / 3 + 0.41667 * 0.6, 0.58333 / 3 + 0.41667 * 0.2, 0.58333 / 3 + 0.41667 * 0.2], abs=1e-4
    )
    assert table["share"].sum() == pytest.approx(1)
    assert (table["ci_low"] <= table["share"]).all() and (table["share"] <= table["ci_high"]).all()
    # uniform counts stay uniform; a value seen always is not shrunk (λ = 0 when Σθ̂² = 1)
    assert james_stein([50, 50, 50])["share"].tolist() == pytest.approx([1 / 3] * 3)
    assert james_stein([100, 0, 0])["share"].tolist() == pytest.approx([1, 0, 0])
    # many samples shrink little: the counts tell the shares apart
    assert james_stein([6000, 2000, 2000])["strength"].iloc[0] < 0.001
    for bad in ([5], [3, -1], [1, 0]):
        with pytest.raises(ValueError, match="James–Stein"):
            james_stein(bad)


def test_the_pooled_map_is_fixed_shrinkage_toward_uniform():
    rng = np.random.default_rng(0)
    truth = np.array([list(d["diagnosis"].values()) for d in draw_shares(0, 6)])
    rows = []
    for t in truth:  # any labeled shares at all: the fitted line passes through (1/V, 1/V)
        counts = rng.multinomial(200, rng.dirichlet(np.ones(6)) * 0.5 + t * 0.5)
        rows.append(feature_rows([v for v, c in zip(VALUES, counts) for _ in range(c)], VALUES))
    pooled = Calibration("pooled").fit(rows, truth, VALUES)
    slope = pooled.coef_[0, 0]
    assert pooled.intercept_ == pytest.approx(np.full(6, (1 - slope) / 6))


def test_the_base_correction_undoes_a_mix_with_the_base_models_habits():
    rng = np.random.default_rng(1)
    habits = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    truth = np.array([list(d["diagnosis"].values()) for d in draw_shares(2, 8)])
    rows = []
    for t in truth:  # generations: half the training shares, half what the base writes anyway
        counts = rng.multinomial(4000, 0.5 * t + 0.5 * habits)
        rows.append(feature_rows([v for v, c in zip(VALUES, counts) for _ in range(c)], VALUES))
    base = Calibration("base", anchor=habits).fit(rows, truth, VALUES)
    assert base.coef_[0, 0] == pytest.approx(2.0, abs=0.1)
    assert base.residual_sd_.max() < 0.03
    target = np.array([0.4, 0.02, 0.08, 0.3, 0.1, 0.1])
    counts = rng.multinomial(4000, 0.5 * target + 0.5 * habits)
    predicted = base.predict(feature_rows([v for v, c in zip(VALUES, counts) for _ in range(c)], VALUES))
    assert predicted["calibrated"].to_numpy() == pytest.approx(target, abs=0.04)
    with pytest.raises(ValueError, match="base model's labeled shares"):
        Calibration("base")
    with pytest.raises(ValueError, match="base model's labeled shares"):
        Calibration("pooled", anchor=habits)
    with pytest.raises(ValueError, match="has 2 values|have 2 values"):
        Calibration("base", anchor=[0.5, 0.5]).fit(rows, truth, VALUES)


def test_scores_charge_width_and_misses():
    table = pd.DataFrame({"value": ["a", "b"], "share": [0.3, 0.7], "ci_low": [0.2, 0.0], "ci_high": [0.4, 1.0]})
    out = scored(table, {"a": 0.5, "b": 0.5})
    assert out["covered"].tolist() == [False, True]
    assert out["width"].tolist() == pytest.approx([0.2, 1.0])
    assert out["interval_score"].tolist() == pytest.approx([0.2 + 40 * 0.1, 1.0])  # 2/α = 40 at 95%
    assert out["abs_error"].tolist() == pytest.approx([0.2, 0.2])
    s = score_summary(out.assign(method="m"))
    assert s.loc[0, "mae"] == pytest.approx(0.2) and s.loc[0, "coverage"] == 0.5 and s.loc[0, "n"] == 2


def test_paired_differences_over_labs_and_values():
    rows = []
    for lab in ("l1", "l2", "l3"):
        for value, error in (("a", 0.10), ("b", 0.20)):
            rows.append(
                {
                    "lab": lab,
                    "property": "p",
                    "value": value,
                    "method": "naive",
                    "abs_error": error,
                    "interval_score": 1.0,
                    "width": 0.1,
                }
            )
            rows.append(
                {
                    "lab": lab,
                    "property": "p",
                    "value": value,
                    "method": "better",
                    "abs_error": error - 0.05,
                    "interval_score": 0.5,
                    "width": 0.3,
                }
            )
    table = paired_differences(pd.DataFrame(rows), draws=300).set_index("measure")
    assert set(table["property"]) == {"p"}
    assert table.loc["abs_error", "difference"] == pytest.approx(-0.05)
    assert table.loc["abs_error", "high"] == pytest.approx(-0.05)  # every pair differs by the same amount
    assert (
        table.loc["width", "difference"] == pytest.approx(0.2)
        and table.loc["width", "clusters"] == 3
        and table.loc["width", "n"] == 6
    )
    with pytest.raises(ValueError, match="No 'naive' rows"):
        paired_differences(pd.DataFrame(rows).query("method == 'better'"))


def test_two_stage_bootstrap_resamples_clusters_and_their_values():
    mean, low, high = two_stage_bootstrap_mean([[1.0, 1.0], [3.0, 3.0, 3.0]], draws=2000)
    assert mean == pytest.approx(11 / 5)
    assert low < 2.0 < high  # two clusters far apart: the interval spans both
    assert two_stage_bootstrap_mean([[0.5], [0.5]])[1:] == pytest.approx((0.5, 0.5))
    assert np.isnan(two_stage_bootstrap_mean([])[0])


def test_leading_names_the_values_outside_the_shadows_range():
    inside = pd.DataFrame(
        {
            "value": ["a", "b"],
            "share": [0.2, 0.8],
            "shadow_low": [0.1, 0.5],
            "shadow_high": [0.5, 0.9],
            "inside": [True, True],
        }
    )
    assert leading(inside)[0] == "calibrated"
    outside = inside.assign(share=[0.02, 0.98], inside=[False, False])
    lead, why = leading(outside)
    assert lead == "naive" and "a (0.020; shadows 0.100–0.500)" in why and "extrapolate" in why
    # inside the range, but the map does not beat naive on the shadows themselves: naive leads
    no_better = pd.Series({"difference": -0.01, "low": -0.05, "high": 0.03})
    lead, why = leading(inside, no_better)
    assert lead == "naive" and "does not beat the naive estimate" in why and "+0.030" in why
    assert leading(inside, pd.Series({"difference": -0.1, "low": -0.2, "high": -0.01}))[0] == "calibrated"


def test_the_names_labeler_is_written_from_the_value_names_alone():
    labeler = lab_labeler("diagnosis", "names")
    assert labeler.values == VALUES
    for value, descriptions in labeler.descriptions.items():
        assert descriptions == [t.format(property="diagnosis", value=value) for t in NAME_TEMPLATES]
    vocabulary = {
        word for f in DIAGNOSES.values() for key in ("conditions", "symptoms") for p in f[key] for word in p.split()
    }
    words = {w.strip(".").lower() for ds in labeler.descriptions.values() for d in ds for w in d.split()}
    assert not words & {w.lower() for w in vocabulary} - {"a", "the", "is", "of", "with"} - {
        v.split()[0] for v in VALUES
    }
    gender = names_labeler("gender", ["female", "male"])
    assert gender.label(["The patient is a woman, female, 54 years old.", "He is a male patient."]) == [
        "female",
        "male",
    ]
    with pytest.raises(ValueError, match="Unknown labeler kind"):
        lab_labeler("diagnosis", "vibes")
