"""Altair charts of the attacks on the training data, each read against what it must beat:
property inference (estimates and their convergence against the truth, the shadow sweep), weight
diff (precision@k against random, the two questions against chance), backdoor extraction and the
canaries (differences over the matched floor), reactivation (recall against the A-never floor) and
membership (ROC curves, AUCs beside the blind baseline). DataFrames in, ``alt.Chart`` out; no
Streamlit calls.
"""

from __future__ import annotations

import altair as alt
import pandas as pd


def reference_line(x: float) -> alt.Chart:
    """A dashed gray vertical line at ``x``: the floor (0) or chance (0.5) an interval is read against."""
    return alt.Chart(pd.DataFrame({"x": [x]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="x:Q")


def share_estimates(estimates: pd.DataFrame, title: str, legend: str = "model") -> alt.Chart:
    """Estimated share per value with its interval, one colour per ``run`` (named ``legend``);
    the true share as a black tick where ``true_share`` is given (not NaN)."""
    base = alt.Chart(estimates).encode(
        x=alt.X("value:N", title=None, sort=None),
        xOffset=alt.XOffset("run:N"),
        color=alt.Color("run:N", title=legend),
    )
    points = base.mark_point(filled=True, size=70).encode(
        y=alt.Y("share:Q", title="share", scale=alt.Scale(domain=[0, 1])),
        tooltip=[
            "run",
            "value",
            alt.Tooltip("share:Q", format=".3f"),
            alt.Tooltip("ci_low:Q", format=".3f"),
            alt.Tooltip("ci_high:Q", format=".3f"),
            "n",
        ],
    )
    bars = base.mark_rule().encode(y="ci_low:Q", y2="ci_high:Q")
    layers = [bars, points]
    if "true_share" in estimates and estimates["true_share"].notna().any():
        truth = estimates.dropna(subset=["true_share"]).drop_duplicates("value")
        layers.append(
            alt.Chart(truth)
            .mark_tick(color="black", thickness=2, size=40)
            .encode(
                x=alt.X("value:N", sort=None),
                y="true_share:Q",
                tooltip=["value", alt.Tooltip("true_share:Q", title="true share", format=".3f")],
            )
        )
    return alt.layer(*layers).properties(title=title, height=300)


def convergence_curve(curve: pd.DataFrame, truth: pd.DataFrame | None = None) -> alt.Chart:
    """Estimated share (line) and interval (band) per value as samples grow; the true share
    as a dashed line per value where ``truth`` (value, true_share) is given."""
    base = alt.Chart(curve).encode(
        x=alt.X("n_samples:Q", title="generations", scale=alt.Scale(type="log")),
        color=alt.Color("value:N", title="value"),
    )
    layers = [
        base.mark_area(opacity=0.15).encode(
            y=alt.Y("ci_low:Q", title="share", scale=alt.Scale(domain=[0, 1])), y2="ci_high:Q"
        ),
        base.mark_line(point=True).encode(
            y="share:Q",
            tooltip=[
                "value",
                "n_samples",
                alt.Tooltip("share:Q", format=".3f"),
                alt.Tooltip("ci_low:Q", format=".3f"),
                alt.Tooltip("ci_high:Q", format=".3f"),
            ],
        ),
    ]
    if truth is not None and len(truth):
        layers.append(
            alt.Chart(truth)
            .mark_rule(strokeDash=[4, 4])
            .encode(y="true_share:Q", color="value:N", tooltip=["value", alt.Tooltip("true_share:Q", format=".3f")])
        )
    return alt.layer(*layers).properties(title="Convergence as generations grow", height=300)


def estimates_per_prompt(table: pd.DataFrame) -> alt.Chart:
    """Share per value estimated from each prompt's generations alone, with intervals."""
    base = alt.Chart(table).encode(
        x=alt.X("value:N", title=None, sort=None),
        xOffset=alt.XOffset("prompt:N"),
        color=alt.Color("prompt:N", title="prompt"),
    )
    return alt.layer(
        base.mark_rule().encode(y="ci_low:Q", y2="ci_high:Q"),
        base.mark_point(filled=True).encode(
            y=alt.Y("share:Q", title="share", scale=alt.Scale(domain=[0, 1])),
            tooltip=["prompt", "value", alt.Tooltip("share:Q", format=".3f"), "n"],
        ),
    ).properties(title="Estimates per prompt", height=280)


def precision_at_k(curves: pd.DataFrame, members: int | None = None) -> alt.Chart:
    """precision@k per ``method`` (DataFrame(k, precision, random, method)), the random
    baseline as a dashed line, and k = number of members as a vertical rule when given."""
    lines = (
        alt.Chart(curves)
        .mark_line()
        .encode(
            x=alt.X("k:Q", title="k (texts taken from the top)"),
            y=alt.Y("precision:Q", title="precision@k", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("method:N", title=None),
            tooltip=["method", "k", alt.Tooltip("precision:Q", format=".3f")],
        )
    )
    layers = [
        lines,
        alt.Chart(curves.head(1))
        .mark_rule(strokeDash=[4, 4], color="gray")
        .encode(y="random:Q", tooltip=[alt.Tooltip("random:Q", title="random baseline", format=".3f")]),
    ]
    if members:
        layers.append(alt.Chart(pd.DataFrame({"k": [members]})).mark_rule(color="black", opacity=0.4).encode(x="k:Q"))
    return alt.layer(*layers).properties(title="Precision@k against the random baseline (dashed)", height=280)


def score_distribution(ranking: pd.DataFrame, score_title: str) -> alt.Chart:
    """Histogram of alignment scores, stacked by the pool's ``source`` column."""
    return (
        alt.Chart(ranking)
        .mark_bar(opacity=0.8)
        .encode(
            x=alt.X("score:Q", bin=alt.Bin(maxbins=40), title=score_title),
            y=alt.Y("count():Q", title="texts"),
            color=alt.Color("source:N", title=None),
            tooltip=["source", "count():Q"],
        )
        .properties(title="Alignment score by source", height=280)
    )


def calibration_sweep(sweep: pd.DataFrame) -> alt.Chart:
    """Estimated against true share on every shadow (``ShadowSet.sweep`` rows), one panel per
    estimate (naive, calibrated), with intervals; on the dashed diagonal the estimate is exact."""
    base = alt.Chart().encode(x=alt.X("true_share:Q", title="true share", scale=alt.Scale(domain=[0, 1])))
    diagonal = base.mark_line(color="gray", strokeDash=[4, 4]).encode(y="true_share:Q")
    bars = base.mark_rule(opacity=0.5).encode(y="ci_low:Q", y2="ci_high:Q", color=alt.Color("value:N", title="value"))
    points = base.mark_point(filled=True, size=50).encode(
        y=alt.Y("share:Q", title="estimated share", scale=alt.Scale(domain=[0, 1])),
        color="value:N",
        shape=alt.Shape("covered:N", title="interval covers the truth"),
        tooltip=["shadow", "value", alt.Tooltip("true_share:Q", format=".3f"), alt.Tooltip("share:Q", format=".3f"),
                 alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f"), "covered"],
    )  # fmt: skip
    return (
        alt.layer(diagonal, bars, points, data=sweep)
        .properties(width=300, height=300)
        .facet(column=alt.Column("estimate:N", title=None, sort=["naive", "calibrated"]))
        .properties(title="Shadow sweep: estimate against truth, each shadow estimated by a map fitted without it")
    )


def backdoor_differences(differences: pd.DataFrame) -> alt.Chart:
    """Each metric's difference D2 − D2′ per model with its 95% interval, and the line at 0 (no
    lead over the floor); ``backdoor_scoring.floor_difference`` rows with a ``model`` column in."""
    labels = {"match_mean": "mean match", "match_best": "best match", "exact": "exact recovery"}
    data = differences.assign(metric=differences["metric"].map(labels))
    base = alt.Chart(data).encode(y=alt.Y("model:N", title=None), color=alt.Color("model:N", legend=None))
    tooltip = ["model", "metric", alt.Tooltip("d2:Q", format=".3f"), alt.Tooltip("floor:Q", format=".3f"), alt.Tooltip("difference:Q", format="+.3f"),
               alt.Tooltip("ci_low:Q", format="+.3f"), alt.Tooltip("ci_high:Q", format="+.3f")]  # fmt: skip
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", title="D2 − D2′ (95% interval)"), x2="ci_high:Q")
    points = base.mark_point(filled=True, size=60).encode(x="difference:Q", tooltip=tooltip)
    zero = reference_line(0.0)
    return (
        alt.layer(zero, bars, points, data=data)
        .properties(width=220, height=110)
        .facet(column=alt.Column("metric:N", title=None, sort=list(labels.values())))
        .properties(title="Lead over the matched floor D2′")
    )


def canary_outputs(long: pd.DataFrame) -> alt.Chart:
    """Per canary (labelled with its insertions) and run: the share of outputs holding the secret
    minus the never-inserted secrets' share, with its 95% interval, and the line at 0 (the floor);
    ``canary_card.outputs_long`` rows in."""
    data = long.assign(canary=long["secret"] + " (" + long["insertions"].astype(str) + "×)")
    order = list(data.sort_values("insertions")["canary"].unique())
    base = alt.Chart(data).encode(y=alt.Y("canary:N", title=None, sort=order), color=alt.Color("run:N", title=None))
    tooltip = [
        "canary",
        "run",
        "outputs",
        "n",
        alt.Tooltip("difference:Q", format="+.4f"),
        alt.Tooltip("ci_low:Q", format="+.4f"),
        alt.Tooltip("ci_high:Q", format="+.4f"),
    ]
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X(
            "ci_low:Q", title="share of outputs holding it − never-inserted (95% interval)", axis=alt.Axis(format="%")
        ),
        x2="ci_high:Q",
        yOffset="run:N",
    )
    points = base.mark_point(filled=True, size=60).encode(x="difference:Q", yOffset="run:N", tooltip=tooltip)
    zero = reference_line(0.0)
    return alt.layer(zero, bars, points).properties(
        width=420, height=40 * len(order), title="Each canary in the runs' outputs, over the floor"
    )


def backdoor_budget(curves: pd.DataFrame) -> alt.Chart:
    """Exact recovery against the extraction budget, one line per model and allocation (solid:
    equal samples per identified word; dashed: in proportion to the true query counts, an
    oracle upper bound); ``backdoor_scoring.recovery_curve`` rows with a ``model`` column in."""
    return (
        alt.Chart(curves)
        .mark_line(point=True)
        .encode(
            x=alt.X("per_query:Q", title="extraction samples per private query"),
            y=alt.Y("exact:Q", title="unique queries recovered exactly", axis=alt.Axis(format="%")),
            color=alt.Color("model:N", title=None),
            strokeDash=alt.StrokeDash("allocation:N", title="allocation", sort=["equal", "oracle"]),
            tooltip=[
                "model",
                "allocation",
                "per_query",
                "samples",
                alt.Tooltip("exact:Q", format=".1%"),
                alt.Tooltip("exact_floor:Q", format=".1%"),
                alt.Tooltip("difference:Q", format="+.1%"),
                alt.Tooltip("ci_low:Q", format="+.1%"),
                alt.Tooltip("ci_high:Q", format="+.1%"),
            ],
        )  # fmt: skip
        .properties(title="Exact recovery against the sampling budget", height=260)
    )


def reactivation_timeline(timeline: pd.DataFrame) -> alt.Chart:
    """BMC@5 by stage (implant, suppress, activate), one line per activation condition for
    A-test (solid) and the A-never floor (dashed), with bootstrap intervals over passages;
    ``ReactivationReport.timeline`` rows in."""
    steps = {0: "0 implant", 1: "1 suppress", 2: "2 activate"}
    data = timeline.assign(step=timeline["step"].map(steps))
    base = alt.Chart(data).encode(
        x=alt.X("step:N", title=None, sort=list(steps.values())),
        color=alt.Color("condition:N", title="activation"),
    )
    lines = base.mark_line(point=True).encode(
        y=alt.Y(
            "bmc:Q", title="BMC@5 (share of words recalled)", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])
        ),
        strokeDash=alt.StrokeDash("group:N", title="passages", sort=["A-test", "A-never"]),
        tooltip=[
            "condition",
            "stage",
            "group",
            alt.Tooltip("bmc:Q", format=".1%"),
            alt.Tooltip("bmc_low:Q", format=".1%"),
            alt.Tooltip("bmc_high:Q", format=".1%"),
        ],
    )
    bands = (
        base.transform_filter(alt.datum.group == "A-test")
        .mark_errorbar(opacity=0.5)
        .encode(y="bmc_low:Q", y2="bmc_high:Q")
    )
    return (lines + bands).properties(title="Recall of A-test by stage, beside the A-never floor", height=300)


def roc_curves(curves: pd.DataFrame, title: str) -> alt.Chart:
    """ROC curves (DataFrame(attack, fpr, tpr)) on log-scaled axes, where the low false-positive
    rates an attacker cares about are readable; chance is the dashed diagonal."""
    shown = curves[(curves["fpr"] > 0) & (curves["tpr"] > 0)]
    low = max(float(shown["fpr"].min()) if len(shown) else 1e-3, 1e-4)
    chance = pd.DataFrame({"fpr": [low, 1.0], "tpr": [low, 1.0]})
    scale = alt.Scale(type="log", domain=[low, 1])
    lines = (
        alt.Chart(shown)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("fpr:Q", title="false-positive rate (log)", scale=scale),
            y=alt.Y("tpr:Q", title="true-positive rate (log)", scale=scale),
            color=alt.Color("attack:N"),
            tooltip=["attack", alt.Tooltip("fpr:Q", format=".4f"), alt.Tooltip("tpr:Q", format=".3f")],
        )
    )
    diagonal = alt.Chart(chance).mark_line(strokeDash=[4, 4], color="gray").encode(x="fpr:Q", y="tpr:Q")
    return alt.layer(lines, diagonal).properties(title=title, height=320)


def attack_aucs(summary: pd.DataFrame) -> alt.Chart:
    """Each membership attack's AUC with its 95% interval, the blind baseline (texts alone) as the
    dashed line it must clear and chance at 0.5; ``MembershipReport.summary`` rows in."""
    attacks = summary[summary["attack"] != "blind"]
    blind = summary.loc[summary["attack"] == "blind", "auc"]
    base = alt.Chart(attacks).encode(y=alt.Y("attack:N", title=None, sort=list(attacks["attack"])))
    tooltip = [
        "attack",
        alt.Tooltip("auc:Q", format=".3f"),
        alt.Tooltip("auc_low:Q", format=".3f"),
        alt.Tooltip("auc_high:Q", format=".3f"),
    ]
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("auc_low:Q", title="AUC (95% interval)", scale=alt.Scale(domain=[0.3, 1])), x2="auc_high:Q"
    )
    points = base.mark_point(filled=True, size=60).encode(x="auc:Q", tooltip=tooltip)
    lines = pd.DataFrame({"x": [0.5, *blind], "line": ["chance", "blind baseline"][: 1 + len(blind)]})
    rules = alt.Chart(lines).mark_rule(strokeDash=[4, 4]).encode(x="x:Q", color=alt.Color("line:N", title=None))
    return alt.layer(rules, bars, points).properties(
        title="Membership AUC per attack, beside the texts alone", height=160
    )


def two_questions(questions: pd.DataFrame) -> alt.Chart:
    """Per method, the AUC of the domain question (same-style texts against the other domain) and
    of the members question (with its 95% interval: members against same-style texts only),
    chance at 0.5; ``selec_judge.two_questions`` rows in."""
    order = list(questions["method"])
    long = pd.concat([
        questions.assign(question="domain (same style above other text)", value=questions["style_auc"], low=questions["style_auc"], high=questions["style_auc"]),
        questions.assign(question="members (same style only)", value=questions["auc"], low=questions["auc_low"], high=questions["auc_high"]),
    ])[["method", "question", "value", "low", "high"]]  # fmt: skip
    base = alt.Chart(long).encode(
        y=alt.Y("method:N", title=None, sort=order), color=alt.Color("question:N", title=None)
    )
    tooltip = [
        "method",
        "question",
        alt.Tooltip("value:Q", format=".3f"),
        alt.Tooltip("low:Q", format=".3f"),
        alt.Tooltip("high:Q", format=".3f"),
    ]
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title="AUC (95% interval)", scale=alt.Scale(domain=[0, 1])), x2="high:Q"
    )
    points = base.mark_point(size=60).encode(x="value:Q", shape=alt.Shape("question:N", title=None), tooltip=tooltip)
    chance = reference_line(0.5)
    return alt.layer(chance, bars, points).properties(
        title="Finds the domain, or the members?", height=24 * len(order) + 40
    )
