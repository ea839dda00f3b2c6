"""The Reactivation page, driven by AppTest on a tiny build."""

import pytest
from page_tables import table

from workbench.reactivation import STAGES, ReactivationRecipe, build

TINY = ReactivationRecipe(
    base="tiny-llama", n_test=2, n_train=2, n_never=2, n_other=2, n_control=2, n_retain=2,
    implant_epochs=1, suppress_epochs=1, activate_epochs=1, rank=2, samples=2, max_new_tokens=8,
)  # fmt: skip


@pytest.fixture
def page(open_build):
    return open_build(build, TINY, "reactivation", "app_pages/reactivation.py", "Reactivation", "re_build")


def test_measure_shows_the_timeline_and_a_sample(page):
    assert any("no measurement yet" in i.value for i in page.info)
    assert list(table(page, "trains on")["stage"]) == list(STAGES)
    page.number_input(key="re_samples").set_value(1)
    page.button(key="FormSubmitter:re_measure-Measure").click().run()
    assert not page.exception and not page.error
    assert any("Your measurement" in s.value for s in page.success)
    summary = table(page, "bmc_low")
    assert set(summary["stage"]) == set(STAGES) and set(summary["group"]) == {"A-test", "A-never"}
    gaps = table(page, "BMC@5 gap [95%]")
    assert len(gaps) == 2 * len(STAGES) - 1 and gaps["reading"].str.contains("A-never floor").all()
    unlearning = [d.value for d in page.dataframe if "BMC@5 gap [95%]" in d.value.columns][
        1
    ]  # the shipped unlearning build's
    assert {"suppress", "activate-A-train"} <= set(unlearning["stage"])
    assert len(page.get("vega_lite_chart")) == 1
    page.selectbox(key="re_stage").select("suppress").run()
    assert not page.exception
    assert any("Prompt (summary instruction): Write a passage" in c.value for c in page.caption)
    page.radio(key="re_instruction").set_value("held-out").run()
    assert not page.exception
    assert any("Prompt (held-out instruction): Orla Quenby's book" in c.value for c in page.caption)
    assert len(page.get("download_button")) == 3


def test_bad_input(page):
    page.multiselect(key="re_stages").set_value([])
    page.button(key="FormSubmitter:re_measure-Measure").click().run()
    assert any("at least one stage" in e.value for e in page.error)
    assert not page.exception
