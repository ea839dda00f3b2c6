"""Altair chart builders: DataFrames in, ``alt.Chart`` out; no Streamlit calls."""

from __future__ import annotations

import altair as alt
import pandas as pd


def divergence_rate(table: pd.DataFrame, by: str) -> alt.Chart:
    """Share of generations that escaped the repetition, per value of ``by`` (e.g. word)."""
    rates = table.groupby(by, as_index=False).agg(rate=("diverged", "mean"), n=("diverged", "size"))
    return (
        alt.Chart(rates)
        .mark_bar()
        .encode(
            x=alt.X(f"{by}:N", title=by.replace("_", " "), sort=None),
            y=alt.Y("rate:Q", title="divergence rate", scale=alt.Scale(domain=[0, 1])),
            tooltip=[by, alt.Tooltip("rate:Q", format=".0%"), "n"],
        )
        .properties(title=f"Divergence rate by {by.replace('_', ' ')}", height=220)
    )


def metric_distribution(table: pd.DataFrame, metric: str, color: str = "word") -> alt.Chart:
    """Histogram of one metric over the generations that diverged, stacked by ``color``."""
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
