"""Shared by the page tests: a page opened on a tiny build made in the test's own cache."""

import pytest

from workbench.cache import cache_dir


@pytest.fixture
def open_build(open_app, monkeypatch, tmp_path):
    """open_build(build, recipe, kind, page, title, key) -> AppTest of ``page`` with ``recipe``
    built into ``<cache>/<kind>/tiny`` and chosen in the build picker ``key``."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))

    def start(build, recipe, kind: str, page: str, title: str, key: str):
        build(cache_dir() / kind / "tiny", recipe)
        at = open_app(page)
        assert at.title[0].value == title
        at.selectbox(key=key).select("rebuilt: tiny").run()
        assert not at.exception
        return at

    return start
