"""workbench.selec_judge: the domain and members questions apart, and the retraining test."""

import numpy as np
import pandas as pd
import pytest

from workbench.selec_judge import member_figures, precision_at_k, retraining_test, two_questions, worth


def hand_pool():
    """4 members and 6 same-style non-members, then 10 other-domain texts."""
    return pd.DataFrame({
        "member": [True] * 4 + [False] * 16,
        "source": ["training"] * 4 + ["same-style held out"] * 6 + ["other domain"] * 10,
    })  # fmt: skip


def test_precision_at_k_by_hand_and_with_ties():
    assert precision_at_k([5, 4, 1], [3, 2, 0]) == pytest.approx(2 / 3)  # top 3: 5, 4, 3
    assert precision_at_k([5, 4, 1], [3, 2, 0], k=1) == 1.0
    assert precision_at_k([1, 1], [1, 1]) == pytest.approx(0.5)  # all tied: the expected share
    with pytest.raises(ValueError, match="k must be between"):
        precision_at_k([1], [0], k=3)


def test_a_ranking_that_finds_only_the_domain_scores_chance_on_the_members_question():
    """Same-style texts all above the other domain, members interleaved with their look-alikes:
    the domain question is answered well, the members question at chance."""
    pool = hand_pool()
    domain_only = np.r_[[9, 7, 5, 3], [10, 8, 6, 4, 2, 1], np.arange(10) - 20.0]
    perfect = np.r_[[9, 8, 7, 6], [5, 4, 3, 2, 1, 0], np.arange(10) - 20.0]
    table = two_questions(
        pool, {"domain only": domain_only, "perfect": perfect}, baseline="perfect", draws=200
    ).set_index("method")
    # members (9, 7, 5, 3) win 5 + 4 + 3 + 2 = 14 of their 24 same-style pairs and all 40 against the other domain
    assert table.loc["domain only", "domain_auc"] == pytest.approx((14 + 40) / 64)
    assert table.loc["domain only", "auc"] == pytest.approx(14 / 24)
    assert table.loc["domain only", "style_auc"] == 1.0  # every same-style text above the other domain
    assert table.loc["domain only", "precision"] == pytest.approx(2 / 4) and table.loc[
        "domain only", "random"
    ] == pytest.approx(0.4)
    assert table.loc["domain only", "chance"] == "not distinguishable from chance"
    assert (
        table.loc["perfect", "auc"] == 1.0
        and table.loc["perfect", "precision"] == 1.0
        and table.loc["perfect", "domain_auc"] == 1.0
    )
    assert table.loc["domain only", "minus_baseline"] == pytest.approx(14 / 24 - 1)
    assert (
        table.loc["domain only", "gap_high"] < 0
        and table.loc["domain only", "against_baseline"] == "below the perfect baseline"
    )
    assert np.isnan(table.loc["perfect", "minus_baseline"])  # the baseline against itself is not a row's claim


def test_members_question_needs_estimable_sizes():
    figures = member_figures(np.arange(30.0) + 20, np.arange(40.0), draws=200)
    assert figures["tpr"] == pytest.approx(12 / 30)  # 5% of 40 allows 2 false positives: members above 37 are 38…49
    assert figures["auc_low"] <= figures["auc"] <= figures["auc_high"]
    few = member_figures([1.0, 2.0], [0.0] * 10, draws=50)
    assert np.isnan(few["tpr"])  # 1/10 non-members is more than 5%: not estimable
    with pytest.raises(ValueError, match="members and same-style"):
        two_questions(hand_pool().assign(member=False), {"x": np.zeros(20)})
    with pytest.raises(ValueError, match="one score per pool text"):
        two_questions(hand_pool(), {"x": np.zeros(3)})
    with pytest.raises(ValueError, match='"member" and "source"'):
        two_questions(pd.DataFrame({"member": [True, False]}), {"x": [1, 0]})


def test_worth_places_a_selection_between_random_and_the_truth():
    table = pd.DataFrame({
        "selection": ["random 0", "random 1", "true members", "top 2"],
        "heldout_loss": [3.0, 3.2, 2.0, 2.55], "gap": [0.0, 0.0, -1.0, -0.25],
    })  # fmt: skip
    shown = worth(table).set_index("selection")
    assert shown.loc["top 2", "heldout_loss_worth"] == pytest.approx(0.5) and shown.loc[
        "top 2", "gap_worth"
    ] == pytest.approx(0.25)
    assert shown.loc["true members", "gap_worth"] == 1.0
    with pytest.raises(ValueError, match="random"):
        worth(table[table["selection"] != "random 0"].assign(selection=["a", "true members", "b"]))


def test_retraining_on_members_lowers_their_loss(tmp_path):
    from workbench.lab_data import make_dataset, nonmember_texts
    from workbench.training import TrainingRecipe

    dataset = make_dataset(n=40, canaries=(), seed=0)
    members = [r["text"] for r in dataset.dialogues][:8]
    heldout = nonmember_texts(dataset, 8)
    recipe = TrainingRecipe(epochs=10, lr=1e-2, rank=4, batch_size=4, seed=0)
    table, losses = retraining_test("tiny-llama", {"true members": members}, members, heldout, tmp_path, recipe)
    assert len(losses) == 2 * (8 + 8) and set(losses["set"]) == {"member", "held out"}
    table = table.set_index("selection")
    assert table.loc["true members", "gap"] == pytest.approx(
        losses.query("selection == 'true members' and set == 'member'")["loss"].mean()
        - losses.query("selection == 'true members' and set == 'held out'")["loss"].mean()
    )
    assert list(table.index) == ["base model (no fine-tune)", "true members"]
    assert table.loc["true members", "gap"] < table.loc["base model (no fine-tune)", "gap"] - 0.05
    assert table.loc["true members", "gap_high"] < 0  # the trained members are likelier than their look-alikes
    assert (tmp_path / "true members" / "adapter_config.json").is_file()
    with pytest.raises(ValueError, match="held-out records are in a selection"):
        retraining_test("tiny-llama", {"x": heldout[:2]}, members, heldout, tmp_path, recipe)


def test_against_random_pairs_each_held_out_record():
    from workbench.selec_judge import against_random

    rows = []
    for selection, losses in {"random 0": [1.0, 2.0, 3.0], "random 1": [3.0, 2.0, 1.0], "top": [2.5, 2.5, 2.5]}.items():
        rows += [{"selection": selection, "set": "held out", "text": f"t{i}", "loss": v} for i, v in enumerate(losses)]
        rows.append({"selection": selection, "set": "member", "text": "m", "loss": 9.0})  # members do not count
    table = against_random(pd.DataFrame(rows)).set_index("selection")
    assert table.loc["top", "minus_random"] == pytest.approx(0.5)
    assert (table.loc["top", "minus_random_low"], table.loc["top", "minus_random_high"]) == pytest.approx((0.5, 0.5))
    assert np.isnan(table.loc["random 0", "minus_random"])
    with pytest.raises(ValueError, match="no random"):
        against_random(pd.DataFrame(rows).query("selection == 'top'"))
