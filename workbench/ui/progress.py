"""The last run's results kept in the user's session (a run's progress is the run board's:
``ui.runs.wait_for_run``)."""

from __future__ import annotations

from typing import Any

import streamlit as st


def last_result(key: str, hint: str) -> Any:
    """This user's last results under ``key``; without any, ``hint`` and the end of the page's run."""
    result = st.session_state.get(key)
    if result is None:
        st.info(hint)
        st.stop()
    return result
