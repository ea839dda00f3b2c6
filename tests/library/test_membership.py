import math

import numpy as np
import pytest

from workbench import audit, lab_data, membership, stats
from workbench.session import load_session


def test_auc_and_tpr_at_fpr_on_hand_made_scores():
    assert stats.auc([3, 4], [1, 2]) == 1.0
    assert stats.auc([1, 2], [3, 4]) == 0.0
    assert stats.auc([1, 3], [2, 2]) == 0.5  # one win, one loss
    assert stats.auc([2], [2]) == 0.5  # a tie counts half
    negatives = list(range(100))  # 100 non-members: 1% is one false positive
    assert stats.tpr_at_fpr([99.5, 97.5, 50], negatives, 0.01) == pytest.approx(
        1 / 3
    )  # only 99.5 beats 98, the second highest
    assert stats.tpr_at_fpr([99.5, 97.5, 50], negatives, 0.02) == pytest.approx(2 / 3)
    assert stats.tpr_at_fpr([200, 300], negatives, 0.01) == 1.0


def test_tpr_at_an_fpr_below_one_over_n_is_not_estimable():
    assert math.isnan(stats.tpr_at_fpr([5, 6], list(range(999)), 0.001))
    assert not math.isnan(stats.tpr_at_fpr([5, 6], list(range(1000)), 0.001))
    figures = stats.roc_summary([5, 6, 7], list(range(500)), (0.01, 0.001), draws=50)
    assert math.isnan(figures["tpr@0.001"]) and math.isnan(figures["tpr@0.001_low"])
    assert figures["auc_low"] <= figures["auc"] <= figures["auc_high"]


def test_clopper_pearson_matches_known_values():
    assert stats.clopper_pearson(0, 10) == (0.0, pytest.approx(0.3085, abs=1e-4))
    low, high = stats.clopper_pearson(5, 10)
    assert low == pytest.approx(0.1871, abs=1e-4) and high == pytest.approx(0.8129, abs=1e-4)


def test_min_k_plus_plus_normalizes_by_the_distribution():
    moments = np.array([[-1.0, -3.0, -0.5], [-2.0, -2.0, -1.0], [1.0, 0.5, 0.5]])  # logp, mu, sigma
    # z = (1, -2, 1); the lowest 1 of 3 at k = 1/3
    assert membership.min_k_plus_plus(moments, k=1 / 3) == pytest.approx(-2.0)
    assert membership.min_k_plus_plus(moments, k=1.0) == pytest.approx(0.0)
    assert math.isnan(membership.min_k_plus_plus(np.zeros((3, 0))))


def test_the_blind_baseline_sees_texts_that_differ_and_not_texts_that_do_not():
    rng = np.random.default_rng(0)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    same = [" ".join(rng.choice(words, 12)) for _ in range(200)]
    member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    alike = membership.blind_scores(same, member)
    assert abs(stats.auc(alike[member], alike[~member]) - 0.5) < 0.12
    different = [t + (" my patient file" if m else " the weather today") for t, m in zip(same, member)]
    apart = membership.blind_scores(different, member)
    assert stats.auc(apart[member], apart[~member]) > 0.95
    with pytest.raises(ValueError, match="at least 5 members"):
        membership.blind_scores(same[:6], [True, True, False, False, False, False])


def test_the_lab_sets_are_deduplicated_and_apart():
    dataset = lab_data.make_dataset(n=80, canaries=(1, 2))
    members, nonmembers = membership.lab_sets(dataset, 300)
    assert len(nonmembers) == 300 and len(set(nonmembers)) == 300
    assert not set(members) & set(nonmembers)
    assert all("patient ID" not in m and "phone number" not in m for m in members)  # the canaries are the audit's


@pytest.fixture(scope="module")
def tiny():
    return load_session("tiny-llama")


def test_membership_runs_on_a_model_and_refuses_bad_sets(tiny):
    dataset = lab_data.make_dataset(n=60, canaries=(1,))
    members, nonmembers = membership.lab_sets(dataset, 120)
    report = membership.run_membership(tiny, members, nonmembers, reference=tiny)
    assert set(membership.ATTACKS) | {"blind"} <= set(report.scores)
    assert (report.scores["reference"] == -1.0).all()  # the target is its own reference
    summary = report.summary(draws=50).set_index("attack")
    assert summary.loc["loss", "auc_low"] <= summary.loc["loss", "auc"] <= summary.loc["loss", "auc_high"]
    assert math.isnan(summary.loc["loss", "tpr@0.001"])  # 120 non-members cannot show 0.1%
    with pytest.raises(ValueError, match="both members and non-members"):
        membership.run_membership(tiny, members, [members[0], *nonmembers])
    with pytest.raises(ValueError, match="at least one member"):
        membership.run_membership(tiny, [], nonmembers)


def test_a_served_model_refuses_min_k_plus_plus_with_a_clear_message(tiny):
    class ScoredOnly(type(tiny)):
        full_distribution = False

    served = ScoredOnly(**{f: getattr(tiny, f) for f in tiny.__dataclass_fields__})
    with pytest.raises(ValueError, match="whole next-token distribution"):
        super(type(tiny), served).score_moments_ids([[1, 2, 3]])
    table = membership.attack_scores(served, ["one text here", "another text"])
    assert "min_k_pp" not in table and {"loss", "zlib", "min_k"} <= set(table)


def test_the_epsilon_bound_on_a_known_case():
    # perfect separation of 30 inserted from 200 never, distinct scores: every threshold up to 30 flagged is clean
    perfect = audit.epsilon_lower_bound(np.arange(30.0) + 200, np.arange(200.0))
    assert perfect["epsilon"] == pytest.approx(audit.max_epsilon(30, 200))
    each = 1 - 0.05 / len(audit.GUESS_SHARES)
    flagged = perfect["tp"]
    tpr_low = stats.clopper_pearson(flagged, 30, 2 * each - 1)[0]
    fpr_high = 1 - (1 - each) ** (1 / 200)  # Clopper–Pearson upper bound at 0 of 200
    assert perfect["fp"] == 0 and perfect["epsilon"] == pytest.approx(
        math.log((tpr_low - audit.DELTA) / fpr_high), rel=1e-6
    )
    assert perfect["tp"] == round(0.1 * 230)  # the best fixed threshold flags the top 10%, all inserted
    assert audit.max_epsilon(30, 2000) > audit.max_epsilon(30, 200)  # more canaries can show more


def test_the_null_lab_bound_holds_zero():
    rng = np.random.default_rng(1)
    shown = [audit.epsilon_lower_bound(rng.normal(size=100), rng.normal(size=100))["epsilon"] for _ in range(200)]
    assert np.mean(np.array(shown) > 0) <= 0.05


def test_an_audit_on_a_model_trained_on_no_canary_holds_zero(tiny):
    dataset = lab_data.make_dataset(n=200, canaries=(1, 2, 4, 8, 16) * 4)
    scores = audit.run_audit(tiny, dataset, n_never=60, alternatives=10)  # tiny-llama trained on none of them
    assert len(scores) == 80 and (scores["rank"] >= 1).all() and (scores["exposure"] <= math.log2(11) + 1e-9).all()
    null = audit.audit_table(audit.null_labels(scores))
    assert null["epsilon_lower"].iloc[-1] == 0.0
    table = audit.audit_table(scores)
    assert list(table["canaries"]) == [
        "inserted 1×",
        "inserted 2×",
        "inserted 4×",
        "inserted 8×",
        "inserted 16×",
        "all inserted",
    ]
    assert (table["epsilon_lower"] <= table["max_epsilon"]).all()


def test_the_shipped_audit_table_is_what_the_code_makes_of_the_shipped_scores():
    import pandas as pd

    scores = pd.read_parquet(membership.SHIPPED_MEMBERSHIP / "audit-scores.parquet")
    shipped = pd.read_csv(membership.SHIPPED_MEMBERSHIP / "audit.csv")
    labs = list(dict.fromkeys(scores["lab"]))
    made = pd.concat(
        [audit.audit_table(scores[scores["lab"] == lab].drop(columns="lab")).assign(lab=lab) for lab in labs],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(shipped, made, check_dtype=False)
    null = shipped[shipped["lab"].str.startswith("null lab")]
    assert (null["epsilon_lower"] == 0).all() and (shipped["epsilon_lower"] <= shipped["max_epsilon"] + 1e-12).all()
