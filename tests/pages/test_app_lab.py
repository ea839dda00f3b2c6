"""The Ground-truth lab page, driven by AppTest."""

import pytest


@pytest.fixture
def page(open_app, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))  # rebuilds stay out of the real cache
    at = open_app("app_pages/lab.py")
    assert at.title[0].value == "Ground-truth lab"
    return at


def _rebuild(at, base: str, n: int, canaries: str) -> None:
    at.selectbox(key="lab_base").select(base)
    at.number_input(key="lab_n").set_value(n)
    at.text_input(key="lab_canaries_text").set_value(canaries)
    at.number_input(key="lab_epochs").set_value(1)
    at.button(key="FormSubmitter:lab_rebuild-Rebuild").click().run()
    assert not at.exception


def test_shipped_build_is_browsable(page):
    truth = page.dataframe[0].value
    assert set(truth["property"]) == {"diagnosis", "gender"}
    assert len(page.dataframe[1].value) == 5  # canaries
    assert len(page.get("vega_lite_chart")) == 1  # loss curve
    assert "canary" in page.dataframe[2].value.columns


def test_rebuild_on_the_tiny_model(page):
    _rebuild(page, "tiny-llama", 40, "1, 2")
    assert not page.error
    assert any("Built" in s.value for s in page.success)
    chooser = page.selectbox(key="lab_build")
    assert len(chooser.options) == 2 and chooser.value.startswith("rebuilt: ")
    assert len(page.dataframe[1].value) == 2  # the rebuilt lab's two canaries are shown


def test_bad_shares_and_canaries(page):
    page.number_input(key="lab_share_digestive").set_value(0.9)
    page.button(key="FormSubmitter:lab_rebuild-Rebuild").click().run()
    assert any("must sum to 1" in e.value for e in page.error)
    page.number_input(key="lab_share_digestive").set_value(0.3)
    page.text_input(key="lab_canaries_text").set_value("1, x")
    page.button(key="FormSubmitter:lab_rebuild-Rebuild").click().run()
    assert any("whole numbers" in e.value for e in page.error)
    page.text_input(key="lab_canaries_text").set_value("100, 200")
    page.number_input(key="lab_n").set_value(50)
    page.button(key="FormSubmitter:lab_rebuild-Rebuild").click().run()
    assert any("leaves no room" in e.value for e in page.error)
    assert not page.exception


def test_empty_canary_list_builds_and_shows(page):
    _rebuild(page, "tiny-gpt2", 20, "")
    assert not page.error
    assert len(page.dataframe[1].value) == 0  # no canaries, no crash


def test_builds_are_off_in_workshop_mode(page, monkeypatch):
    from workbench.ui.runs import run_board

    monkeypatch.setenv("WORKBENCH_WORKSHOP", "1")
    run_board.clear()
    try:
        _rebuild(page, "tiny-llama", 40, "1, 2")
        assert any("Builds are off in workshop mode" in e.value for e in page.error)
        assert len(page.selectbox(key="lab_build").options) == 1  # nothing was built
    finally:
        run_board.clear()
