"""The Membership page, driven by AppTest on the tiny models."""

import pytest
from page_tables import table

from workbench.lab import LabRecipe, build


@pytest.fixture
def page(open_app):
    at = open_app("app_pages/membership.py")
    assert at.title[0].value == "Membership"
    return at


@pytest.mark.slow
def test_uploads_are_scored_and_bad_uploads_are_errors(page):
    page.selectbox(key="mi_reference").select("(none)")
    page.button(key="FormSubmitter:mi_form-Score").click().run()
    assert any("Upload both" in e.value for e in page.error) and not page.exception
    members = "\n".join(f"member {i} kept a diary" for i in range(10)).encode()
    nonmembers = "\n".join(f"another person, {i}, wrote a letter" for i in range(12)).encode()
    page.file_uploader(key="mi_members").set_value(("m.txt", members, "text/plain"))
    page.file_uploader(key="mi_nonmembers").set_value(("n.txt", b"\x00\x01binary", "text/plain"))
    page.button(key="FormSubmitter:mi_form-Score").click().run()
    assert any("binary" in e.value for e in page.error) and not page.exception
    page.file_uploader(key="mi_nonmembers").set_value(("n.txt", nonmembers, "text/plain"))
    page.button(key="FormSubmitter:mi_form-Score").click().run()
    assert not page.exception and not page.error
    yours = table(page, "AUC [95%]", last=True)
    assert set(yours["attack"]) == {"loss", "zlib", "min_k", "min_k_pp", "blind"}
    assert yours["TPR at 0.1% FPR"].eq("not estimable").all()
    assert any("The audit needs a lab model" in i.value for i in page.info)


def test_the_shipped_measurement_is_shown_without_a_model_call(page):
    """The shipped benchmark's attack table and audit table, before any model is asked."""
    import pandas as pd

    from workbench.membership import SHIPPED_MEMBERSHIP, MembershipReport, readable

    expected = readable(MembershipReport.load(SHIPPED_MEMBERSHIP / "membership").summary())
    shown = [d.value for d in page.dataframe if "AUC [95%]" in d.value.columns][0]
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected)
    assert set(shown["attack"]) == {"loss", "zlib", "min_k", "min_k_pp", "reference", "blind"}
    audits = [d.value for d in page.dataframe if "ε lower bound" in d.value.columns][0]
    assert any("null lab" in lab for lab in audits["lab"]) and any("6 epochs" in lab for lab in audits["lab"])
    null = audits[audits["lab"].str.contains("null lab") & (audits["canaries"] == "all inserted")]
    assert (null["ε lower bound"] == "0.00").all()  # random labels on an untrained model show nothing
    assert len(page.get("vega_lite_chart")) >= 1
    from workbench.canary_card import shipped_lab_card

    card = next(d.value for d in page.dataframe if "audit rank" in d.value.columns)
    pd.testing.assert_frame_equal(card, shipped_lab_card().readable())
    assert any("data/membership/audit-scores.parquet" in c.value and "(membership)" in c.value for c in page.caption)


@pytest.mark.slow
def test_a_lab_build_is_attacked_and_audited(page, tmp_path):
    build(tmp_path / "lab", LabRecipe(base="tiny-llama", n=60, canaries=(1, 2) * 4, epochs=1, rank=2), command="test")
    page.sidebar.text_input(key="model_adapter").set_value(str(tmp_path / "lab" / "adapter")).run()
    page.radio(key="mi_source").set_value("The lab's members and same-style non-members")
    page.number_input(key="mi_n_nonmembers").set_value(100)
    page.selectbox(key="mi_reference").select("tiny-llama")
    page.button(key="FormSubmitter:mi_form-Score").click().run()
    assert not page.exception and not page.error
    assert "reference" in set(table(page, "AUC [95%]", last=True)["attack"])
    page.number_input(key="mi_n_never").set_value(16)
    page.number_input(key="mi_alternatives").set_value(4)
    page.button(key="FormSubmitter:mi_audit_form-Audit").click().run()
    assert not page.exception and not page.error
    scores = table(page, "z", last=True)
    assert len(scores) == 24 and (scores["insertions"] > 0).sum() == 8
    card = table(page, "audit rank", last=True)
    assert (
        len(card) == 8 and card["audit rank"].str.contains(" of 5 (never-inserted ranked as high: ", regex=False).all()
    )
    assert "repeated tokens (this session): outputs" not in card  # no Repeated tokens run on this model in this session

    page.session_state["rt_result"] = {"model": "someone else's model", "table": None}
    page.checkbox(key="mi_null").check()
    page.button(key="FormSubmitter:mi_audit_form-Audit").click().run()
    assert not page.exception and any("null labels" in i.value for i in page.info)
