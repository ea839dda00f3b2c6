"""The Attention sinks page, driven by AppTest on the tiny model."""

import pytest


@pytest.fixture
def page(open_app):
    at = open_app("app_pages/attention_sinks.py")
    assert at.title[0].value == "Attention sinks"
    at.number_input(key="as_repeats").set_value(30)
    at.button(key="as_run").click().run()
    assert not at.exception and not at.error
    return at


def test_scores_heatmaps_and_tables(page):
    assert len(page.get("vega_lite_chart")) >= 5  # three heatmaps, per-position, norms
    assert [m.label for m in page.metric] == ["Sink heads, normal prompt", "Sink heads, repeated prompt"]
    page.slider(key="as_threshold").set_value(0.0).run()
    assert len(page.dataframe[0].value) == 2 * 4  # every head passes a zero threshold
    labels = [b.label for b in page.get("download_button")]
    assert labels == ["Sink scores (CSV)", "Hidden norms (CSV)"]


def test_mitigation_runs_on_the_same_seeds(page):
    page.multiselect(key="as_mitigate_heads").set_value(["L0H1", "L1H2"])
    page.number_input(key="as_n").set_value(3)
    page.number_input(key="as_new_tokens").set_value(6)
    page.button(key="as_mitigate").click().run()
    assert not page.exception and not page.error
    table = page.dataframe[-1].value
    assert len(table) == 3 and {"output_baseline", "output_mitigated"} <= set(table.columns)
    assert "Mitigation (CSV)" in [b.label for b in page.get("download_button")]


def test_bad_inputs_keep_results(page):
    page.text_input(key="as_word").set_value("#abstract")
    page.button(key="as_run").click().run()
    assert any("not a single token" in e.value for e in page.error)
    page.text_input(key="as_word").set_value("poem")
    page.text_area(key="as_prompt").set_value("   ")
    page.button(key="as_run").click().run()
    assert any("The prompt is empty" in e.value for e in page.error)
    assert len(page.get("vega_lite_chart")) >= 5
    page.multiselect(key="as_mitigate_heads").set_value([])
    page.button(key="as_mitigate").click().run()
    assert any("at least one head" in e.value for e in page.error)


def test_switching_models_discards_stale_results(page):
    page.sidebar.selectbox(key="model_choice").select("tiny-gpt2").run()
    assert not page.exception
    assert any("The last results were for tiny-llama" in i.value for i in page.info)
    page.button(key="as_run").click().run()
    assert not page.exception and not page.error
    assert len(page.get("vega_lite_chart")) >= 5
