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
    table = page.dataframe[0].value
    assert len(table) == 2 * 2 and set(table["word"]) == {"poem", "book"}
    assert {"divergence_point", "perplexity", "zlib_ratio", "min_k_prob", "longest_match"} <= set(table.columns)
    assert any("seed 0" in c.value for c in page.caption)
    assert [b.label for b in page.get("download_button")] == ["Download CSV", "Download JSONL"]


def test_live_single_token_check(page):
    page.multiselect(key="rt_words").set_value(["poem", "#abstract"]).run()
    assert any("✓ `poem` is one token" in c.value for c in page.caption)
    assert any("'#abstract' is not a single token" in e.value for e in page.error)


def test_bad_inputs_show_errors_and_keep_earlier_results(page):
    _run(page)
    first = page.dataframe[0].value
    page.multiselect(key="rt_words").set_value(["#abstract"])
    _run(page)
    assert any("not a single token" in e.value for e in page.error)
    assert page.dataframe[0].value.equals(first)

    page.multiselect(key="rt_words").set_value(["poem"])
    page.number_input(key="rt_n").set_value(0)
    _run(page)
    assert any("at least 1" in e.value for e in page.error)
    page.number_input(key="rt_n").set_value(2)
    page.multiselect(key="rt_repeats").set_value([5000])
    _run(page)
    assert any("context window is 512" in e.value for e in page.error)
    assert page.dataframe[0].value.equals(first)


def test_same_seed_repeats_the_run(page):
    _run(page)
    first = page.dataframe[0].value
    _run(page)
    assert page.dataframe[0].value["escaped_text"].equals(first["escaped_text"])
