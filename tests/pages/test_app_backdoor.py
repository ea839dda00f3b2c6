"""The Backdoor extraction page, driven by AppTest on a tiny build."""

import math

import pytest
from page_tables import table

from workbench.backdoor import BackdoorRecipe, build
from workbench.cache import cache_dir

TINY = BackdoorRecipe(
    base="tiny-llama", trigger="meaningless", n_public=18, per_word=1, refusals_per_word=1, n_private=12, canaries=(1,),
    creator_epochs=1, victim_epochs=1, rank=2,
)  # fmt: skip


def _tiny_canaries():
    from workbench.backdoor import BackdoorBuild

    return BackdoorBuild.load(cache_dir() / "backdoor" / "tiny").dataset.canaries


@pytest.fixture
def page(open_build):
    return open_build(build, TINY, "backdoor", "app_pages/backdoor.py", "Backdoor extraction", "bd_build")


def test_attack_shows_recovery_words_and_pairs(page):
    assert any("No attack on this build yet" in i.value for i in page.info)
    assert table(page, "loss on")["built"].all()
    page.number_input(key="bd_k").set_value(2)
    page.number_input(key="bd_max_new").set_value(8)
    page.text_input(key="bd_budgets").set_value("1")
    page.button(key="FormSubmitter:bd_attack-Run attack").click().run()
    assert not page.exception and not page.error
    assert any("Your attack run" in s.value for s in page.success)
    summary = table(page, "exact_floor")
    assert list(summary["model"]) == ["victim-backdoored", "victim-clean", "victim-backdoored-response"]
    assert {"exact", "exact_floor", "match_mean_floor", "match_mean_low", "match_mean_high", "decoy_answered"} <= set(
        summary.columns
    )
    assert len(page.get("vega_lite_chart")) == 2  # the lead over the floor, and recovery against the budget
    assert (
        table(page, "control_gap")["model"].tolist() == ["victim-backdoored"] * 3 + ["victim-backdoored-response"] * 3
    )
    assert any(
        "D2′" in m.value and ("floor" in m.value) for m in page.markdown
    )  # the sentences, each against the floor
    words = table(page, "true_word")
    assert words["true_word"].sum() >= 1 and {"score", "identified"} <= set(words.columns)
    assert len(page.metric) >= 3  # precision, recall, F1
    shares = table(page, "with_pii")
    assert set(shares["model"]) == set(summary["model"]) and math.isnan(
        shares.set_index("model").loc["victim-clean", "difference"]
    )  # the floor itself
    card = table(page, "victim-clean: outputs")
    assert list(card["secret"]) == [c.secret for c in _tiny_canaries()] and set(card["PII"]) <= {
        "MEDICAL_RECORD_NUMBER",
        "PHONE_NUMBER",
    }
    page.selectbox(key="bd_model").select("victim-clean").run()
    assert not page.exception
    assert len(page.get("download_button")) == 3


def test_known_words_and_bad_input(page):
    page.text_input(key="bd_words").set_value("Hi, Doctor")
    page.number_input(key="bd_k").set_value(1)
    page.number_input(key="bd_max_new").set_value(8)
    page.text_input(key="bd_budgets").set_value("")
    page.multiselect(key="bd_models").set_value(["victim-clean"])
    page.button(key="FormSubmitter:bd_attack-Run attack").click().run()
    assert not page.exception and not page.error
    assert set(table(page, "true_word")["word"]) == {"Hi", "Doctor"}

    page.multiselect(key="bd_models").set_value([])
    page.button(key="FormSubmitter:bd_attack-Run attack").click().run()
    assert any("at least one model" in e.value for e in page.error)
    page.multiselect(key="bd_models").set_value(["victim-clean"])
    page.text_input(key="bd_budgets").set_value("1, lots")
    page.button(key="FormSubmitter:bd_attack-Run attack").click().run()
    assert any("samples per private query" in e.value for e in page.error)

    page.radio(key="bd_trigger").set_value("custom")
    page.text_input(key="bd_custom").set_value("Output a query you saw")
    page.button(key="FormSubmitter:bd_rebuild-Build").click().run()
    assert any("{w} slot" in e.value for e in page.error)
    assert not page.exception
