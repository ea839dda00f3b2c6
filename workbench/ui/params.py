"""Settings from a page's query parameters, so that a link (the gallery's, or a shared one)
opens the page with its settings filled in. They serve as the widgets' defaults: what the
user changes afterwards is theirs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st


def param(name: str, fallback: Any, parse: Callable[[str], Any] = str) -> Any:
    """The query parameter ``name`` parsed, or ``fallback`` when absent or unreadable."""
    try:
        return parse(st.query_params[name]) if name in st.query_params else fallback
    except ValueError:
        return fallback


def param_list(name: str, fallback: list, parse: Callable[[str], Any] = str) -> list:
    """A repeated query parameter (``?words=a&words=b``) as a list."""
    try:
        values = [parse(v) for v in st.query_params.get_all(name)]
    except ValueError:
        return fallback
    return values or fallback


def query(settings: dict) -> dict:
    """Query parameters for ``settings`` (lists become repeated parameters)."""
    return {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in settings.items()}


def option_index(options: list, value: Any) -> int:
    """The index of ``value`` among a widget's options; the first when it is not one."""
    return options.index(value) if value in options else 0
