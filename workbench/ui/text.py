"""Text rendering helpers for pages (pure functions: no Streamlit calls)."""

from __future__ import annotations

import html
from collections.abc import Iterable


def highlight_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """HTML of ``text`` (escaped) with each [start, end) character span in <mark>."""
    pieces, cursor = [], 0
    for start, end in sorted(spans):
        start = max(start, cursor)
        if end <= start:
            continue
        pieces += [html.escape(text[cursor:start]), f"<mark>{html.escape(text[start:end])}</mark>"]
        cursor = end
    pieces.append(html.escape(text[cursor:]))
    return "".join(pieces)
