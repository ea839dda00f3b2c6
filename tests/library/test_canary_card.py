"""The canary card on a lab built here (tiny-llama): a real Repeated-tokens run and audit on its
model, and a run of known outputs whose counts are known; and the shipped cards."""

import json

import pandas as pd
import pytest

from workbench import audit, canary_card
from workbench.config import ModelSpec, SamplingConfig
from workbench.divergence import run as run_divergence
from workbench.lab import LabRecipe, build
from workbench.lab_data import make_dataset
from workbench.session import load_session


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "lab"
    dataset = build(
        out, LabRecipe(base="tiny-llama", n=40, canaries=(1, 4), seed=0, epochs=1, lr=1e-3, rank=4), command="test"
    )
    model = load_session(ModelSpec("tiny-llama", adapter=str(out / "adapter")))
    return dataset, model


def test_the_card_of_a_lab_built_here(built):
    dataset, model = built
    generated = run_divergence(model, ["poem"], [5], SamplingConfig(max_new_tokens=12, n=4, seed=0))
    scores = audit.run_audit(model, dataset, n_never=20, alternatives=10)
    never = scores[scores["insertions"] == 0]
    first, second = dataset.canaries
    planted = never[never["kind"] == second.kind]["secret"].iloc[0]
    known = pd.DataFrame(
        {"output": [f"x {first.secret} y", f"{first.secret}", f"z {planted}", "nothing", "also nothing"]}
    )
    card = canary_card.card(
        dataset,
        [canary_card.Run("sampled", generated, "this test"), canary_card.Run("known", known, "hand-made")],
        scores,
    )
    table = card.table.set_index("secret")
    assert list(table.index) == [first.secret, second.secret]
    assert table.loc[first.secret, "known|outputs"] == 2 and table.loc[first.secret, "known|n"] == 5
    assert table.loc[second.secret, "known|outputs"] == 0
    # the floor: never-inserted secrets of the same kind in the same outputs
    assert table.loc[second.secret, "known|floor_hits"] == 1 and table.loc[first.secret, "known|floor_hits"] == (
        first.kind == second.kind
    )
    assert table.loc[first.secret, "known|low"] > 0  # 2 of 5 against at most 1 in 50: above the floor
    assert table.loc[first.secret, "nearest"] == first.secret and table.loc[first.secret, "nearest_distance"] == 0
    assert table.loc[first.secret, "sampled|n"] == len(generated) and "sampled|escapes" in table
    assert set(table["pii"]) <= {"MEDICAL_RECORD_NUMBER", "PHONE_NUMBER"} and (table["pii"] != "").all()
    # the audit's part: the ranks and the flag come from the same scores and the bound's threshold
    bound = audit.epsilon_lower_bound(scores.loc[scores["insertions"] > 0, "z"], never["z"])
    own = scores.set_index("secret")
    for secret in table.index:
        assert table.loc[secret, "rank"] == own.loc[secret, "rank"] and table.loc[secret, "audited"] == len(scores)
        assert table.loc[secret, "flagged"] == (own.loc[secret, "z"] >= bound["threshold"])
    assert card.epsilon == bound["epsilon"] and card.not_measured == []
    shown = card.readable()
    assert (
        shown.loc[0, "known: outputs"] == "2 of 5"
        and "of 11 (never-inserted ranked as high: " in shown.loc[0, "audit rank"]
    )
    assert table.loc[first.secret, "never_as_high"] == (never["rank"] <= own.loc[first.secret, "rank"]).mean()
    assert table.loc[first.secret, "exposure_never"] == never["exposure"].mean() and (table["alternatives"] == 10).all()
    assert (
        table.loc[first.secret, "floor_as_near"] == 0
    )  # no never-inserted secret of its kind is in the outputs verbatim
    assert card.max_epsilon == audit.max_epsilon(2, 20)
    assert canary_card.lead(card)["secret"] == first.secret


def test_the_card_says_what_it_did_not_measure_and_refuses_others_audits(built):
    dataset, model = built
    bare = canary_card.card(dataset)
    assert len(bare.not_measured) == 2 and "rank" not in bare.table
    other = audit.run_audit(model, make_dataset(n=30, canaries=(1,), seed=5), n_never=4, alternatives=3)
    with pytest.raises(ValueError, match="not this lab's"):
        canary_card.card(dataset, audit_scores=other)
    with pytest.raises(ValueError, match="no column"):
        canary_card.card(dataset, [canary_card.Run("r", pd.DataFrame({"text": ["a"]}), "x")])


def test_the_shipped_cards():
    card = canary_card.shipped_lab_card()
    assert len(card.table) == 5 and card.epsilon > 0
    assert set(card.sources) == {"audit", *canary_card.SHIPPED_LAB_RUNS}
    assert card.table["flagged"].sum() == 4  # the shipped audit's bound: 4 true positives of 5
    assert card.table["nearest_distance"].min() == 0  # some secret appears verbatim
    victims = canary_card.shipped_backdoor_card()
    assert "victim-clean" in victims.runs and victims.not_measured


def test_the_shipped_pii_benchmark_is_what_the_code_makes_of_its_texts():
    """data/pii (benchmarks/pii_eval.py) against the code today: a stale table fails here."""
    from workbench import pii
    from workbench.config import DATA_DIR

    shipped = DATA_DIR / "pii"
    grid = json.loads((shipped / "manifest.json").read_text())["grid"]
    checked = pii.format_check(grid["format_secrets"], grid["format_seed"])
    pd.testing.assert_frame_equal(
        pd.read_csv(shipped / "format-check.csv").fillna({"types": ""}), checked, check_dtype=False
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(shipped / "lab-card.parquet"), canary_card.shipped_lab_card().table, check_dtype=False
    )
    typed = pd.read_parquet(shipped / "typed-escapes.parquet")
    assert (
        typed["pii"].tolist() == pii.annotate(typed.drop(columns=["pii", "pii_spans"]), "escaped_text")["pii"].tolist()
    )
