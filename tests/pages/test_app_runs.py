"""Runs through the server's run board, driven by AppTest: identical requests from two
sessions share one computation and say so; different ones never mix; workshop caps."""

import pytest

from workbench.ui.runs import run_board


@pytest.fixture
def page(open_app):
    def start(seed: int = 0):
        at = open_app("app_pages/repeated_tokens.py")
        at.number_input(key="rt_n").set_value(2)
        at.number_input(key="rt_max_new_tokens").set_value(8)
        at.number_input(key="rt_seed").set_value(seed)
        return at

    return start


def _shared(at) -> bool:
    return any(c.value.startswith("Shared:") for c in at.caption)


def test_an_identical_run_from_another_session_is_shared_and_a_different_one_is_not(page):
    run_board.clear()
    first = page()
    first.button(key="rt_run").click().run()
    assert not first.exception and not first.error and not _shared(first)
    second = page()
    second.button(key="rt_run").click().run()
    assert not second.exception and _shared(second)
    assert second.dataframe[1].value.equals(first.dataframe[1].value)
    other = page(seed=1)
    other.button(key="rt_run").click().run()
    assert not _shared(other)
    assert not other.dataframe[1].value["seed"].equals(first.dataframe[1].value["seed"])


def test_workshop_mode_caps_a_run_and_says_so(page, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSHOP", "1")
    run_board.clear()
    try:
        at = page()
        assert any(c.value.startswith("Workshop mode:") for c in at.caption)
        at.number_input(key="rt_n").set_value(500)
        at.button(key="rt_run").click().run()
        assert any("over the limit" in e.value for e in at.error)
    finally:
        run_board.clear()
