"""The Compare page, driven by AppTest."""

import json

import pandas as pd
import pytest

GETTYSBURG_START = "Four score and seven years ago our fathers brought forth on this continent, a new nation"


@pytest.fixture
def page(open_app):
    at = open_app("app_pages/compare.py")
    assert at.title[0].value == "Compare"
    return at


def _compare(at):
    at.button(key="cmp_run").click().run()
    assert not at.exception
    return at


def test_pasted_texts_against_the_reference_corpus(page):
    page.text_area(key="cmp_paste").set_value(f"{GETTYSBURG_START}\nThe weather was nice in the park today.")
    _compare(page)
    assert not page.error
    best = page.dataframe[0].value
    assert best["extracted_id"].tolist() == ["pasted:1", "pasted:2"]
    assert best.loc[0, "candidate_id"] == "gettysburg-address.txt"
    assert {"cosine", "levenshtein_ratio", "partial_ratio", "max_longest_run", "extracted"} <= set(best.columns)
    assert len(page.get("vega_lite_chart")) == 1  # heatmap of 2 × 16 texts
    assert any("<mark>" in h.value and "Four score" in h.value for h in page.get("html"))
    assert [b.label for b in page.get("download_button")] == [
        "Best matches (CSV)",
        "All scored pairs (CSV)",
        "All scored pairs (JSONL)",
    ]

    page.slider(key="cmp_cosine_threshold").set_value(0.0).run()  # thresholds apply without a rerun of the comparison
    assert page.dataframe[0].value["extracted"].all()
    page.button(key="cmp_map_run").click().run()
    assert not page.exception and len(page.get("vega_lite_chart")) == 2


def test_uploads_and_passages(page):
    extracted = "".join(
        json.dumps({"escaped_text": t}) + "\n" for t in [GETTYSBURG_START, "unrelated words about cooking pasta"]
    )
    page.radio(key="cmp_extracted_source").set_value("Upload").run()
    page.file_uploader(key="cmp_extracted_file").set_value(("run.jsonl", extracted.encode(), "application/jsonl"))
    page.text_input(key="cmp_extracted_field").set_value("escaped_text")
    page.radio(key="cmp_candidate_source").set_value("Upload").run()
    page.file_uploader(key="cmp_candidate_file").set_value(
        (
            "docs.txt",
            f"{GETTYSBURG_START} conceived in Liberty\ncooking pasta takes ten minutes\n".encode(),
            "text/plain",
        )
    )
    page.number_input(key="cmp_passage_words").set_value(5)
    _compare(page)
    assert not page.error
    best = page.dataframe[0].value
    assert best.loc[0, "candidate_id"].startswith("docs.txt:1@")  # passages of the first line


def test_lab_training_set_as_candidates(page):
    from workbench.lab import SHIPPED_LAB
    from workbench.lab_data import LabDataset

    record = LabDataset.load(SHIPPED_LAB / "dataset").records[3]
    page.text_area(key="cmp_paste").set_value(record["text"].replace("\n", " "))
    page.radio(key="cmp_candidate_source").set_value("Lab training set")
    _compare(page)
    best = page.dataframe[0].value
    assert best.loc[0, "cosine"] > 0.95 and best.loc[0, "extracted"]
    assert len(page.get("vega_lite_chart")) == 0  # 300 candidates: no heatmap
    assert any("up to 60 texts" in c.value for c in page.caption)


def test_texts_carried_over_from_the_repeated_tokens_page(page):
    table = pd.DataFrame(
        {"word": ["poem"] * 3, "repeats": [50] * 3, "sample": [0, 1, 2], "temperature": [1.0] * 3,
         "outcome": ["escaped", "repeated_only", "escaped"],
         "escaped_text": [GETTYSBURG_START, "", "Lorem ipsum dolor sit amet"]}
    )  # fmt: skip
    page.session_state["rt_result"] = {"table": table}
    page.run()
    source = page.radio(key="cmp_extracted_source")
    assert source.options[0] == "Last repeated-tokens run"
    source.set_value("Last repeated-tokens run").run()
    assert any("2 escaped texts" in c.value for c in page.caption)
    _compare(page)
    best = page.dataframe[0].value
    assert best["candidate_id"].tolist() == ["gettysburg-address.txt", "lorem-ipsum.txt"]


def test_bad_inputs_show_errors_and_keep_earlier_results(page):
    _compare(page)
    assert any("Paste at least one" in e.value for e in page.error)
    page.text_area(key="cmp_paste").set_value(GETTYSBURG_START)
    _compare(page)
    first = page.dataframe[0].value
    page.radio(key="cmp_extracted_source").set_value("Upload").run()
    _compare(page)
    assert any("Upload a .txt or .jsonl file" in e.value for e in page.error)
    for name, data, message in [
        ("bin.txt", b"\x00\x01\x02", "binary"),
        ("empty.txt", b"", "is empty"),
        ("latin.txt", "caf\u00e9".encode("latin-1"), "not UTF-8"),
    ]:
        page.file_uploader(key="cmp_extracted_file").set_value((name, data, "text/plain"))
        _compare(page)
        assert any(message in e.value for e in page.error), message
        assert page.dataframe[0].value.equals(first)


def test_personal_data_is_typed_in_both_texts(page):
    page.text_area(key="cmp_paste").set_value(
        "Could you call me? My phone number is (555) 204-1557.\nThe weather was nice in the park today."
    )
    page.radio(key="cmp_candidate_source").set_value("Lab training set")
    _compare(page)
    best = page.dataframe[0].value
    assert best["pii"].tolist() == ["PHONE_NUMBER", ""]
    assert best.loc[0, "candidate_pii"] == "PHONE_NUMBER" and "(555) 204-1557" in best.loc[0, "pii_spans"]
    assert [m.value for m in page.metric if m.label == "With personal data"] == ["1 of 2"]
    assert any("PERSON" in c.value and "not checked" in c.value for c in page.caption)
    assert any("<mark" in h.value and "PHONE_NUMBER" in h.value for h in page.get("html"))


def test_without_presidio_the_page_says_how_to_install_it_and_still_compares(page, monkeypatch):
    import sys

    import streamlit as st

    from workbench import pii

    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    pii._engine.cache_clear()
    st.cache_data.clear()
    try:
        page.text_area(key="cmp_paste").set_value(GETTYSBURG_START)
        _compare(page)
        assert any("pip install presidio-analyzer" in e.value for e in page.error)
        assert page.dataframe[0].value.loc[0, "candidate_id"] == "gettysburg-address.txt"
        assert "pii" not in page.dataframe[0].value
    finally:
        pii._engine.cache_clear()
        st.cache_data.clear()
