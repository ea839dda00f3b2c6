"""Long runs on a page: a progress bar driven by the library's progress callbacks, and the
last run's results kept in the user's session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from workbench.contract import Progress


@contextmanager
def progress_bar(text: str = "Starting…") -> Iterator[Progress]:
    """Yield a progress callback for a long library call; the bar goes away when the block
    ends, also when the call fails (its error is shown in the bar's place)."""
    bar = st.progress(0.0, text=text)
    try:
        yield lambda fraction, message: bar.progress(min(fraction, 1.0), text=message)
    finally:
        bar.empty()


def last_result(key: str, hint: str) -> Any:
    """This user's last results under ``key``; without any, ``hint`` and the end of the page's run."""
    result = st.session_state.get(key)
    if result is None:
        st.info(hint)
        st.stop()
    return result
