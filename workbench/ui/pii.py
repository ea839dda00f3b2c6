"""The pages' side of PII typing (``workbench.pii``): a column, a count, highlighted text; bad
text or Presidio's absence is an error in the page, and the rest of the page still shows."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench import backdoor_attack, canary_card, pii


@st.cache_data(show_spinner="Looking for personal data (Presidio)…", max_entries=32)
def _typed(texts: tuple[str, ...], prefix: str) -> pd.DataFrame:
    return pii.annotate(pd.DataFrame({"text": texts}), "text", prefix=prefix).drop(columns="text")


def with_pii(table: pd.DataFrame, column: str, prefix: str = "") -> pd.DataFrame | None:
    """``table`` with ``{prefix}pii`` and ``{prefix}pii_spans`` for ``column``; None (after an
    st.error) where Presidio is missing or a text cannot be analyzed."""
    try:
        found = _typed(tuple(table[column].fillna("").astype(str)), prefix)
    except ValueError as err:
        st.error(str(err))
        return None
    return table.assign(**{name: found[name].to_numpy() for name in found.columns})


def note() -> str:
    """What was looked for, and what was not."""
    try:
        missing = ", ".join(pii.not_checked())
    except ValueError:
        return ""
    return (
        f"Personal data typed by Presidio's pattern recognizers (phone, e-mail, card, IBAN, IP, SSN …) and the lab's "
        f"medical-record recognizer; {missing} need a spaCy NER model that is not installed, so they are not checked."
    )


def highlighted(text: str, where=st) -> None:
    """``text`` with every typed span marked (its type as a subscript), or the error."""
    try:
        shown = pii.highlighted(text, pii.find(text))
    except ValueError as err:
        where.error(str(err))
        return
    where.html(f"<pre style='white-space: pre-wrap'>{shown}</pre>")


@st.cache_data(show_spinner="Typing the victims' outputs and following the build's canaries…", max_entries=8)
def _victims(key: str, _samples: pd.DataFrame, _dataset, source: str):
    typed, shares = backdoor_attack.personal_data(_samples)
    return typed, shares, canary_card.victims_card(_dataset, _samples, source)


def victims(samples: pd.DataFrame, dataset, source: str):
    """(typed outputs, shares against the clean victim, canary card) of an attack's samples,
    computed once per samples; None after an st.error (Presidio missing, a build without canaries)."""
    key = str(pd.util.hash_pandas_object(samples[["model", "text", "refused", "public"]], index=False).sum())
    try:
        return _victims(key, samples, dataset, source)
    except ValueError as err:
        st.error(str(err))
        return None


PAGES = {
    "repeated tokens": "repeated_tokens",
    "victim": "backdoor",
    "audit": "membership",
}  # run name → the page that makes it


@st.cache_data(show_spinner="Following the shipped lab's canaries…")
def shipped_lab_card() -> canary_card.CanaryCard:
    return canary_card.shipped_lab_card()


@st.cache_data(show_spinner="Following the backdoor build's canaries…")
def shipped_backdoor_card() -> canary_card.CanaryCard:
    return canary_card.shipped_backdoor_card()


def show_card(card: canary_card.CanaryCard, key: str) -> None:
    """A canary card: the table, where each part came from (with the page that makes such runs),
    and what was not measured."""
    st.dataframe(card.readable(), key=key, hide_index=True)
    sources = []
    for name, source in card.sources.items():
        page = next((p for prefix, p in PAGES.items() if name.startswith(prefix)), None)
        sources.append(f"**{name}**: `{source}`" + (f" ([page]({page}))" if page else ""))
    st.caption(
        "Per canary: outputs of each run holding the secret verbatim (and of those, escapes), against never-inserted secrets "
        "of the same format in the same outputs (difference of rates, 95% interval); the nearest span typed as its kind, "
        "beside the never-inserted secrets' median distance; the audit's rank among its alternatives, exposure, its score's "
        "rank among every audited secret and whether the ε bound's threshold flags it. From — "
        + "; ".join(sources)
        + ". "
        + " ".join(card.not_measured)
        + " Measured tables and their reading: docs/results/pii.md."
    )
