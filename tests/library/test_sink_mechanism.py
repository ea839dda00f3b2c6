"""The sink mechanism's measurements, on the seeded tiny model."""

import pytest

from workbench import sink_mechanism as mechanism


def test_prose_is_cut_to_the_length_asked(tiny_llama):
    assert len(mechanism.prose_ids(tiny_llama.tokenizer, 300)) == 300
    with pytest.raises(ValueError, match="were asked for"):
        mechanism.prose_ids(tiny_llama.tokenizer, 10**6)


def test_a_leading_token_comes_first_in_both_prompts(tiny_llama):
    pair = mechanism.prompt_pair(tiny_llama.tokenizer, "poem", 12, leading=True)
    first = mechanism.leading_token(tiny_llama.tokenizer)
    assert pair["repeated"][0] == pair["prose"][0] == first
    assert len(pair["repeated"]) == len(pair["prose"]) == 13 and len(set(pair["repeated"][1:])) == 1


def test_without_a_first_token_a_run_of_one_token_cannot_tell_its_positions_apart(tiny_llama):
    # Identical tokens and rotary positions: every position attends to identical values, so
    # every repeated position's state is the first position's, at every layer.
    table = mechanism.geometry(tiny_llama, "poem", [10, 40], leading=False)
    repeated, prose = table[table["prompt"] == "repeated"], table[table["prompt"] == "prose"]
    assert len(repeated) == len(prose) == 2 * (tiny_llama.info.n_layers + 1)
    assert repeated["cosine"].min() == pytest.approx(1.0, abs=1e-5) and repeated["norm_ratio"].min() == pytest.approx(
        1.0, abs=1e-4
    )
    assert prose["cosine"].max() < 0.9
    after_leading = mechanism.geometry(tiny_llama, "poem", [10], leading=True)
    assert after_leading.loc[after_leading["prompt"] == "repeated", "cosine"].max() < 0.99


def test_sink_heads_are_chosen_on_prose_and_measured_on_both_prompts(tiny_llama):
    heads = mechanism.top_sink_heads(tiny_llama, 3, calibration_length=64)
    assert len(set(heads)) == 3
    table = mechanism.sink_fractions(tiny_llama, heads, "poem", [10, 30], leading=False)
    assert len(table) == 2 * 2 * 3 and table["sink_fraction"].between(0, 1).all()


def test_sink_neurons_are_the_layers_outliers_at_the_first_position(tiny_llama):
    table = mechanism.sink_neurons(tiny_llama, "poem", 20, layers=[0, 1], leading=True, top=4)
    assert list(table.groupby("layer").size()) == [4, 4]
    for _, layer in table.groupby("layer"):
        assert list(layer["robust_z"].abs()) == sorted(layer["robust_z"].abs(), reverse=True)
    assert (table["candidate"] == (table["robust_z"].abs() >= mechanism.OUTLIER_MADS)).all()


def test_the_mechanism_measures_with_and_without_a_leading_token(tiny_llama):
    tables = mechanism.mechanism(tiny_llama, "poem", [10, 20], heads=2, neuron_layers=1)
    assert set(tables) == {"geometry", "sink_fractions", "sink_neurons"}
    assert all(set(t["leading"]) == {False, True} for t in tables.values())


def test_the_causal_test_pairs_every_condition_with_the_baseline_on_the_same_seeds(tiny_llama):
    from workbench.config import SamplingConfig

    chosen = mechanism.conditions(tiny_llama, {0: [1, 2]}, [(1, 0)], draws=2, seed=0)
    assert list(chosen) == [
        "baseline",
        "sink neurons ablated",
        "sink heads scaled",
        "random neurons 0",
        "random heads 0",
        "random neurons 1",
        "random heads 1",
    ]
    cfg = SamplingConfig(max_new_tokens=12, n=6, seed=1, batch_size=8)
    per_sample, summary = mechanism.causal_test(tiny_llama, [("poem", 8, "prefill")], chosen, cfg)
    assert len(per_sample) == 7 * 6
    seeds = per_sample.groupby("condition")["seed"].apply(tuple)
    assert seeds.nunique() == 1  # the same seeds under every condition
    baseline = summary[summary["condition"] == "baseline"].iloc[0]
    assert (baseline["difference"], baseline["p_value"]) == (0, 1.0)
    assert summary["perplexity"].gt(1).all()
    assert not summary.loc[summary["condition"].str.startswith("random"), "effect"].any()


def test_an_effect_needs_an_interval_clear_of_zero_and_controls_that_move_less():
    import pandas as pd

    def per_sample(escapes: dict[str, int], n: int = 60) -> pd.DataFrame:
        rows = []
        for condition, count in escapes.items():
            rows += [
                {
                    "prompt": "p",
                    "condition": condition,
                    "sample": i,
                    "seed": i,
                    "outcome": "escaped" if i < count else "repeated_only",
                    "escaped": i < count,
                }
                for i in range(n)
            ]
        return pd.DataFrame(rows)

    flat = {name: 10.0 for name in ("baseline", "sink heads scaled", "random heads 0", "random heads 1")}
    clear = mechanism.summarize_causal(
        per_sample({"baseline": 40, "sink heads scaled": 5, "random heads 0": 38, "random heads 1": 41}), flat
    )
    assert clear.set_index("condition").loc["sink heads scaled", "effect"]
    matched = mechanism.summarize_causal(
        per_sample({"baseline": 40, "sink heads scaled": 5, "random heads 0": 4, "random heads 1": 41}), flat
    )
    assert not matched.set_index("condition").loc["sink heads scaled", "effect"]  # a random control moved it as much
    # the sentences carry the verdict, the random controls' largest move and the damage beside the baseline's
    said = mechanism.describe_causal(clear)
    assert (
        len(said) == 1
        and "0.67 → 0.08" in said[0]
        and "up to 0.03" in said[0]
        and "an effect beyond its random controls" in said[0]
    )
    assert "a random control moved it as much" in mechanism.describe_causal(matched)[0]
    same = mechanism.summarize_causal(
        per_sample({"baseline": 40, "sink heads scaled": 40, "random heads 0": 40, "random heads 1": 40}), flat
    )
    assert "not distinguishable from the baseline" in mechanism.describe_causal(same)[0]
