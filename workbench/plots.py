"""Altair chart builders: DataFrames in, ``alt.Chart`` out; no Streamlit calls.

This module holds the charts of how models behave — repeated tokens' outcomes and divergence,
attention sinks, hidden-state norms and geometry, the lab's loss curve, text similarity — and
``gallery_figure``, which draws any exploration's gallery entry. The charts of the attacks on
the training data are in ``workbench.plots_attacks``.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from workbench.plots_attacks import (
    attack_aucs,
    backdoor_differences,
    canary_outputs,
    reactivation_timeline,
    share_estimates,
    two_questions,
)

OUTCOME_COLORS = {
    "empty": "#bab0ac",
    "refused": "#b279a2",
    "never_repeated": "#9d755d",
    "repeated_only": "#4c78a8",
    "escaped": "#e45756",
}


def outcome_shares(summary: pd.DataFrame, x: str = "repeats", facet: str = "temperature") -> alt.Chart:
    """Stacked share of each outcome per value of ``x``, one panel per value of ``facet``
    (``divergence.outcome_summary`` rows in)."""
    outcomes = list(OUTCOME_COLORS)
    long = summary.melt(id_vars=[x, facet, "generations"], value_vars=outcomes, var_name="outcome", value_name="share")
    long["order"] = long["outcome"].map(outcomes.index)
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:O", title=x.replace("_", " ")),
            y=alt.Y("share:Q", title="share of generations", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color(
                "outcome:N", scale=alt.Scale(domain=outcomes, range=list(OUTCOME_COLORS.values())), sort=outcomes
            ),
            order=alt.Order("order:Q"),
            tooltip=[x, facet, "outcome", alt.Tooltip("share:Q", format=".0%"), "generations"],
        )
        .properties(width=160, height=200)
        .facet(column=alt.Column(f"{facet}:O", title=facet.replace("_", " ")))
        .properties(title="Outcomes")
    )


def divergence_rate(summary: pd.DataFrame, x: str = "repeats", color: str = "temperature") -> alt.Chart:
    """Divergence rate = escaped ÷ (escaped + repeated only) per value of ``x``, one line per
    ``color``, with 95% Wilson intervals (``divergence.outcome_summary`` rows in)."""
    data = summary[summary["n"] > 0]
    base = alt.Chart(data).encode(
        x=alt.X(f"{x}:O", title=x.replace("_", " ")),
        color=alt.Color(f"{color}:N", title=color.replace("_", " ")),
        tooltip=[
            x,
            color,
            alt.Tooltip("rate:Q", format=".0%"),
            alt.Tooltip("ci_low:Q", format=".0%"),
            alt.Tooltip("ci_high:Q", format=".0%"),
            "n",
        ],
    )
    points = base.mark_line(point=True).encode(
        y=alt.Y("rate:Q", title="divergence rate", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    )
    bars = base.mark_errorbar().encode(y=alt.Y("ci_low:Q", title="divergence rate"), y2="ci_high:Q")
    return (points + bars).properties(title="Divergence rate (of the samples that kept repeating)", height=220)


def metric_distribution(table: pd.DataFrame, metric: str, color: str = "word") -> alt.Chart:
    """Histogram of one metric over the generations that escaped, stacked by ``color``."""
    data = table.loc[table[metric].notna(), [metric, color]]
    return (
        alt.Chart(data)
        .mark_bar(opacity=0.8)
        .encode(
            x=alt.X(f"{metric}:Q", bin=alt.Bin(maxbins=30), title=metric.replace("_", " ")),
            y=alt.Y("count():Q", title="generations"),
            color=alt.Color(f"{color}:N"),
            tooltip=[color, "count():Q"],
        )
        .properties(title=metric.replace("_", " "), height=180)
    )


def sink_heatmap(scores: pd.DataFrame, title: str, difference: bool = False) -> alt.Chart:
    """Layer × head heatmap of sink scores (0–1), or of a difference of scores (−1–1)."""
    scale = (
        alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)
        if difference
        else alt.Scale(scheme="viridis", domain=[0, 1])
    )
    return (
        alt.Chart(scores)
        .mark_rect()
        .encode(
            x=alt.X("head:O", title="head"),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color("score:Q", scale=scale, title="Δ score" if difference else "sink score"),
            tooltip=["layer", "head", alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(title=title, height=320)
    )


def attention_by_position(profiles: pd.DataFrame, title: str) -> alt.Chart:
    """Attention to the sink token by query position, one line per ``prompt``."""
    return (
        alt.Chart(profiles)
        .mark_line()
        .encode(
            x=alt.X("position:Q", title="query position"),
            y=alt.Y("attention:Q", title="attention to the sink", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("prompt:N"),
            tooltip=["prompt", "position", alt.Tooltip("attention:Q", format=".3f")],
        )
        .properties(title=title, height=220)
    )


def norms_by_layer(profile: pd.DataFrame, title: str) -> alt.Chart:
    """Hidden-state norm per layer, one line per group of positions."""
    return (
        alt.Chart(profile)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", title="layer (0 = embeddings)", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("norm:Q", title="hidden-state L2 norm", scale=alt.Scale(type="log")),
            color=alt.Color("group:N", title="positions"),
            tooltip=["group", "layer", alt.Tooltip("norm:Q", format=".1f")],
        )
        .properties(title=title, height=260)
    )


def geometry_by_layer(geometry: pd.DataFrame, title: str) -> alt.Chart:
    """cos(h[p], h[0]) per layer, repeated prompt against prose, a line per repeat count
    (``sink_mechanism.geometry`` rows of one ``leading`` value in)."""
    return (
        alt.Chart(geometry, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:Q", title="layer (0 = embeddings)"),
            y=alt.Y("cosine:Q", title="cosine with position 0", scale=alt.Scale(domain=[-0.2, 1])),
            color=alt.Color("repeats:O", title="repeats"),
            strokeDash=alt.StrokeDash("prompt:N", title="prompt"),
            tooltip=[
                "prompt",
                "repeats",
                "layer",
                alt.Tooltip("cosine:Q", format=".3f"),
                alt.Tooltip("norm_ratio:Q", format=".3f"),
            ],
        )
    )


def loss_curve(curve: pd.DataFrame) -> alt.Chart:
    """Training loss per optimizer step, coloured by epoch."""
    return (
        alt.Chart(curve)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="optimizer step", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("loss:Q", title="training loss"),
            color=alt.Color("epoch:O"),
            tooltip=["step", "epoch", alt.Tooltip("loss:Q", format=".3f")],
        )
        .properties(title="Fine-tuning loss", height=240)
    )


def similarity_heatmap(pairs: pd.DataFrame) -> alt.Chart:
    """Extracted × candidate heatmap of cosine similarity; ``pairs`` has extracted, candidate, cosine."""
    return (
        alt.Chart(pairs)
        .mark_rect()
        .encode(
            x=alt.X("candidate:N", title="candidate", sort=None, axis=alt.Axis(labelLimit=120)),
            y=alt.Y("extracted:N", title="extracted", sort=None, axis=alt.Axis(labelLimit=120)),
            color=alt.Color("cosine:Q", scale=alt.Scale(scheme="viridis", domain=[-0.2, 1]), title="cosine"),
            tooltip=["extracted", "candidate", alt.Tooltip("cosine:Q", format=".3f")],
        )
        .properties(title="Embedding cosine similarity", height=alt.Step(14))
    )


def text_map(points: pd.DataFrame, title: str) -> alt.Chart:
    """UMAP scatter of texts, coloured by ``label``, with the text (cut to 200 characters) on hover."""
    data = points.assign(hover=points["text"].str.slice(0, 200)) if "text" in points else points.assign(hover="")
    return (
        alt.Chart(data)
        .mark_circle(size=60, opacity=0.7)
        .encode(
            x=alt.X("x:Q", title="UMAP 1", axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("y:Q", title="UMAP 2", axis=alt.Axis(labels=False, ticks=False)),
            color=alt.Color("label:N", title="texts"),
            tooltip=["label", alt.Tooltip("hover:N", title="text")],
        )
        .properties(title=title, height=420)
        .interactive()
    )


def gallery_figure(name: str, table: pd.DataFrame) -> alt.Chart:
    """The figure of a gallery entry (``workbench.gallery``), drawn from its stored table."""
    if name == "repeated_tokens":
        return outcome_shares(table, x="template", facet="repeats")
    if name == "attention_sinks":
        wide = table.pivot_table(index=["layer", "head"], columns="prompt", values="score").reset_index()
        return sink_heatmap(
            wide.assign(score=wide["repeated"] - wide["normal"]),
            "Sink score: repeated − normal prompt",
            difference=True,
        )
    if name == "property_inference":
        return share_estimates(table, "Estimate (interval) vs truth (black tick)", legend="estimate")
    if name == "compare":
        return similarity_heatmap(table)
    if name == "weight_diff":
        return two_questions(table)
    if name == "backdoor":
        return backdoor_differences(table)
    if name == "reactivation":
        return reactivation_timeline(table)
    if name == "membership":
        return attack_aucs(table)
    if name == "canary":
        return canary_outputs(table)
    raise ValueError(f"No gallery figure for {name!r}.")
