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
    assert repeated["cosine"].min() == pytest.approx(1.0, abs=1e-5) and repeated["norm_ratio"].min() == pytest.approx(1.0, abs=1e-4)
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
