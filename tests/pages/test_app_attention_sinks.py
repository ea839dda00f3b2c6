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


def test_the_mechanism_shows_a_saved_run_without_a_model_call_and_reruns(open_app, monkeypatch, tmp_path, tiny_llama):
    from workbench import sink_mechanism

    monkeypatch.setattr(sink_mechanism, "SHIPPED_MECHANISM", tmp_path / "none")
    at = open_app("app_pages/attention_sinks.py")
    assert any("No mechanism result is shipped" in i.value for i in at.info)
    at.button(key="as_mechanism_run").click().run()
    assert not at.exception and not at.error
    geometry, heads, neurons = (t.value for t in at.table)
    assert len(geometry) == 2 * 3 * 2 and len(heads) == 2 * 3  # leading or not × repeats (× prompts)

    tables = sink_mechanism.mechanism(tiny_llama, "poem", [10, 20], heads=2, neuron_layers=1)
    sink_mechanism.save_result(
        {**tables, "manifest": {"model": "tiny-llama", "word": "poem", "repeats": [10, 20]}}, tmp_path / "saved"
    )
    monkeypatch.setattr(sink_mechanism, "SHIPPED_MECHANISM", tmp_path / "saved")
    shipped = open_app("app_pages/attention_sinks.py")
    assert not shipped.exception
    assert any("tiny-llama, 'poem' at 10, 20 repeats" in c.value for c in shipped.caption)
    assert len(shipped.table[2].value) == 2 * 5  # the neurons: one layer's top 5, leading or not


def test_workshop_mode_caps_mitigation(open_app, monkeypatch):
    from workbench.ui.runs import run_board

    monkeypatch.setenv("WORKBENCH_WORKSHOP", "1")
    run_board.clear()
    try:
        at = open_app("app_pages/attention_sinks.py")
        at.number_input(key="as_repeats").set_value(30)
        at.button(key="as_run").click().run()
        assert any(c.value.startswith("Workshop mode:") for c in at.caption)
        at.number_input(key="as_n").set_value(40)  # 80 generations: with and without
        at.button(key="as_mitigate").click().run()
        assert any("80 generations of 32 new tokens is over the limit" in e.value for e in at.error)
    finally:
        run_board.clear()
