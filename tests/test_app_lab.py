"""The Ground-truth lab page, driven by AppTest."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def page(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_MODEL", "tiny-llama")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/lab.py").run()
    assert not at.exception and at.title[0].value == "Ground-truth lab"
    return at


def test_shipped_build_is_browsable(page):
    truth = page.dataframe[0].value
    assert set(truth["property"]) == {"diagnosis", "gender"}
    assert len(page.dataframe[1].value) == 5  # canaries
    assert len(page.get("vega_lite_chart")) == 1  # loss curve
    assert "canary" in page.dataframe[2].value.columns


def test_rebuild_on_the_tiny_model(page):
    page.selectbox(key="lab_base").select("tiny-llama")
    page.number_input(key="lab_n").set_value(40)
    page.text_input(key="lab_canaries_text").set_value("1, 2")
    page.number_input(key="lab_epochs").set_value(1)
    page.button(key="FormSubmitter:lab_rebuild-Rebuild").click().run()
    assert not page.exception and not page.error
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
    page.selectbox(key="lab_base").select("tiny-gpt2")
    page.number_input(key="lab_n").set_value(20)
    page.text_input(key="lab_canaries_text").set_value("")
    page.number_input(key="lab_epochs").set_value(1)
    page.button(key="FormSubmitter:lab_rebuild-Rebuild").click().run()
    assert not page.exception and not page.error
    assert len(page.dataframe[1].value) == 0  # no canaries, no crash
