"""The build picker of the pages that ship a prebuilt pipeline (backdoor, reactivation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import streamlit as st

from workbench.builds import Recipe
from workbench.cache import cache_dir

Build = TypeVar("Build")


def build_picker(shipped: Path, recipe_type: type[Recipe], load: Callable[[Path], Build], key: str) -> Build:
    """A selectbox of the shipped build and those rebuilt into the recipe's cache folder (folders
    with its manifest); returns the chosen one loaded, or shows why it cannot be and stops the page."""
    builds = {f"shipped (data/{shipped.name})": shipped} | {
        f"rebuilt: {p.name}": p
        for p in sorted((cache_dir() / recipe_type.KIND).glob("*"))
        if (p / recipe_type.MANIFEST).is_file()
    }
    choice = st.selectbox("Build", list(builds), key=key)
    try:
        return load(builds[choice])
    except ValueError as err:
        st.error(str(err))
        st.stop()
