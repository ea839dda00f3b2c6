"""The Repeated tokens page, driven by AppTest on the tiny model."""

import pytest


@pytest.fixture
def page(open_app):
    at = open_app("app_pages/repeated_tokens.py")
    assert at.title[0].value == "Repeated tokens"
    at.number_input(key="rt_n").set_value(2)
    at.number_input(key="rt_max_new_tokens").set_value(8)
    at.number_input(key="rt_min_tokens").set_value(3)
    return at


def _run(at):
    at.button(key="rt_run").click().run()
    assert not at.exception
    return at


def test_run_shows_results(page):
    page.multiselect(key="rt_words").set_value(["poem", "book"])
    _run(page)
    assert not page.error
    table = page.dataframe[1].value
    assert len(table) == 2 * 2 and set(table["word"]) == {"poem", "book"}
    assert {"outcome", "first_deviation", "divergence_point", "new_loop", "perplexity", "longest_match"} <= set(
        table.columns
    )
    assert any("seed 0" in c.value for c in page.caption)
    assert any(c.value.startswith("Outcomes: empty") for c in page.caption)
    assert page.metric[0].label == "Divergence rate"
    assert len(page.get("vega_lite_chart")) == 1  # outcome shares; the tiny model never repeats: no rate to chart
    assert any("divergence rate is undefined" in i.value for i in page.info)
    assert [b.label for b in page.get("download_button")] == ["Download CSV", "Download JSONL", "Outcome summary (CSV)"]


def test_outcomes_by_repeats_and_temperature(page):
    page.multiselect(key="rt_words").set_value(["book"])  # the tiny model repeats it greedily
    page.multiselect(key="rt_repeats").set_value([5, 20])
    page.multiselect(key="rt_temperatures").set_value([0.0, 1.0])
    page.number_input(key="rt_min_repeats").set_value(2)
    _run(page)
    assert not page.error
    table = page.dataframe[1].value
    assert len(table) == 2 * 2 * 2 and set(table["temperature"]) == {0.0, 1.0}
    summary = page.dataframe[0].value
    assert set(summary.columns) >= {
        "repeats",
        "temperature",
        "escaped",
        "repeated_only",
        "rate",
        "ci_low",
        "ci_high",
        "n",
    }
    assert len(summary) == 4 and summary["generations"].sum() == 8
    greedy = summary[summary["temperature"] == 0]
    assert (greedy["repeated_only"] == 1).all() and (greedy["n"] == 2).all()
    assert len(page.get("vega_lite_chart")) == 2  # outcome shares and the divergence rate
    assert any("r = 2 repeats, m = 10-token window" in c.value for c in page.caption)


def test_lab_model_counts_training_records(page, tmp_path):
    from workbench.lab import LabRecipe, build

    build(
        tmp_path / "lab",
        LabRecipe(base="tiny-llama", n=30, canaries=(1,), seed=0, epochs=1, lr=1e-3, rank=4),
        command="test",
    )
    page.sidebar.text_input(key="model_adapter").set_value(str(tmp_path / "lab" / "adapter")).run()
    page.multiselect(key="rt_words").set_value(["book"])
    page.multiselect(key="rt_temperatures").set_value([0.0])
    _run(page)
    assert not page.error
    assert any("lab model" in i.value or "Training records reproduced" in i.value for i in page.info)


def test_live_single_token_check(page):
    page.multiselect(key="rt_words").set_value(["poem", "#abstract"]).run()
    assert any("✓ `poem` is one token" in c.value for c in page.caption)
    assert any("'#abstract' is not a single token" in e.value for e in page.error)


def test_bad_inputs_show_errors_and_keep_earlier_results(page):
    _run(page)
    first = page.dataframe[1].value
    page.multiselect(key="rt_words").set_value(["#abstract"])
    _run(page)
    assert any("not a single token" in e.value for e in page.error)
    assert page.dataframe[1].value.equals(first)

    page.multiselect(key="rt_words").set_value(["poem"])
    page.number_input(key="rt_n").set_value(0)
    _run(page)
    assert any("at least 1" in e.value for e in page.error)
    page.number_input(key="rt_n").set_value(2)
    page.multiselect(key="rt_temperatures").set_value([])
    _run(page)
    assert any("No temperatures" in e.value for e in page.error)
    page.multiselect(key="rt_temperatures").set_value([1.0])
    page.multiselect(key="rt_repeats").set_value([5000])
    _run(page)
    assert any("context window is 512" in e.value for e in page.error)
    assert page.dataframe[1].value.equals(first)


def test_same_seed_repeats_the_run(page):
    _run(page)
    first = page.dataframe[1].value
    _run(page)
    assert page.dataframe[1].value.equals(first)


def test_personal_data_in_escapes_is_typed(page):
    page.multiselect(key="rt_words").set_value(["poem"])
    _run(page)
    assert {"pii", "pii_spans"} <= set(page.dataframe[1].value.columns)
    result = page.session_state["rt_result"]
    table = result["table"].copy()
    table.loc[0, ["outcome", "escaped_text"]] = ["escaped", "call me at (555) 148-4117 or jane.doe@example.com"]
    page.session_state["rt_result"] = {**result, "table": table}
    page.run()
    assert not page.exception
    shown = page.dataframe[1].value
    assert shown.loc[0, "pii"] == "EMAIL_ADDRESS, PHONE_NUMBER"
    escaped = int((table["outcome"] == "escaped").sum())
    assert [m.value for m in page.metric if m.label == "Escapes with personal data"] == [f"1 of {escaped}"]
    assert any("<mark" in h.value and "PHONE_NUMBER" in h.value for h in page.get("html"))
