import json
import math

import pytest

from workbench.config import SamplingConfig
from workbench.corpus import CorpusIndex
from workbench.divergence import divergence_point, run


@pytest.mark.parametrize(
    "pieces, expected",
    [
        ([" poem", " poem", ",", " Poem", "\n", "The", " sun"], 5),
        ([" poem", " poem", " poem"], None),
        ([" poem", " po"], None),  # cut off inside a repeat: never escaped
        ([" poem", " poems"], 1),  # a longer word is not a repeat
        ([" POEM!!", " poem", " 123"], 2),
        ([" poem.", "\n\nOnce"], 1),
        (["Hello"], 0),
        ([], None),
    ],
)
def test_divergence_point(pieces, expected):
    assert divergence_point(pieces, "poem") == expected


def test_divergence_point_word_with_punctuation():
    assert divergence_point([" c++", " C++", " then"], "c++") == 2


def test_divergence_point_empty_word():
    with pytest.raises(ValueError):
        divergence_point([" poem"], " ")


def test_run_on_tiny_model(tiny_llama):
    cfg = SamplingConfig(max_new_tokens=12, n=3, seed=1, batch_size=4)
    table = run(tiny_llama, ["poem", "book"], [5, 20], cfg)
    assert len(table) == 2 * 2 * 3
    assert list(table.groupby(["word", "repeats"]).size()) == [3, 3, 3, 3]
    diverged = table[table["diverged"]]
    assert (diverged["escaped_tokens"] == diverged["generated_tokens"] - diverged["divergence_point"]).all()
    assert diverged["perplexity"].gt(1).all() and diverged["min_k_prob"].lt(0).all()
    assert table.loc[~table["diverged"], "perplexity"].map(math.isnan).all()
    again = run(tiny_llama, ["poem", "book"], [5, 20], cfg)
    assert again["output"].equals(table["output"])


def test_run_finds_leaked_corpus_text(tiny_llama):
    """Greedy output of the random model is put in the corpus: the lookup must find it."""
    cfg = SamplingConfig(max_new_tokens=24, temperature=0, n=1)
    first = run(tiny_llama, ["poem"], [8], cfg).iloc[0]
    assert first["diverged"] and first["escaped_tokens"] >= 10
    corpus = CorpusIndex.from_texts([("noise", "unrelated words"), ("leak", "intro " + first["escaped_text"])], tiny_llama.tokenizer)
    row = run(tiny_llama, ["poem"], [8], cfg, corpus=corpus, min_tokens=5).iloc[0]
    matches = json.loads(row["matches"])
    assert row["longest_match"] >= 5 and matches[0]["document"] == "leak"
    assert row["escaped_text"][matches[0]["char_start"] : matches[0]["char_end"]] in first["escaped_text"]


def test_run_with_reference_model(tiny_llama, tiny_gpt2):
    table = run(tiny_llama, ["poem"], [5], SamplingConfig(max_new_tokens=10, n=2), reference=tiny_gpt2)
    scored = table[table["escaped_tokens"] >= 2]
    assert len(scored) and scored["reference_ratio"].gt(0).all()


@pytest.mark.parametrize(
    "words, repeats, message", [([], [5], "No words"), (["poem"], [], "No repeat counts"), (["#abstract"], [5], "single token")]
)
def test_run_bad_input(tiny_llama, words, repeats, message):
    with pytest.raises(ValueError, match=message):
        run(tiny_llama, words, repeats, SamplingConfig(max_new_tokens=4))


@pytest.mark.parametrize(
    "pieces, expected",
    [
        ([" poem", " poem", " \ufffd", "\ufffd", "\ufffd", "本"], 2),  # split UTF-8 character: not a separator
        ([" poem", "poem", " x"], 1),  # glued to a repeat
        ([" poem", "s"], 1),  # " poems" split after the repeat
    ],
)
def test_divergence_point_review_cases(pieces, expected):
    assert divergence_point(pieces, "poem") == expected
