"""Overlap measures on hand-computed cases, and against brute-force references on random
sequences (exact runs against a corpus are tested in test_corpus.py)."""

import random

import pytest

from workbench.overlap import (
    match_ratio,
    matched_spans,
    recall,
    shared_prefix,
    shared_run_pairs,
    trim_instruction,
    words,
)
from workbench.stats import bootstrap_mean


def _brute_spans(generated, passage, prompt, min_words):
    """Every end pair (i in generated, j in passage), in that order, of a run neither side
    extends, by walking back from it; prompt runs are looked for at every offset."""
    runs = []
    for i in range(len(generated)):
        for j in range(len(passage)):
            length = 0
            while length <= min(i, j) and generated[i - length] == passage[j - length]:
                length += 1
            extends = i + 1 < len(generated) and j + 1 < len(passage) and generated[i + 1] == passage[j + 1]
            run = list(passage[j - length + 1 : j + 1])
            repeats_prompt = any(list(prompt[k : k + length]) == run for k in range(len(prompt) - length + 1))
            if length >= max(min_words, 1) and not extends and not repeats_prompt:
                runs.append((j - length + 1, length))
    return runs


def _random_sequence(rng, alphabet, most):
    return [rng.choice(alphabet) for _ in range(rng.randrange(most + 1))]


def test_spans_by_hand():
    passage = words("the cat sat on the warm mat by the door")
    assert words("The cat, sat!") == ["the", "cat", "sat"]
    # "the cat sat on" (4 words at 0), "warm mat by the door" (5 words at 5)
    assert sorted(matched_spans(words("so the cat sat on a warm mat by the door"), passage, min_words=2)) == [
        (0, 4),
        (5, 5),
    ]
    assert matched_spans(words("so the cat sat on a warm mat by the door"), passage, min_words=5) == [(5, 5)]
    # a run that only repeats the prompt is left out; a longer one that reaches past it stays
    assert matched_spans(words("warm mat by the door"), passage, words("find the warm mat by the door please")) == []
    assert matched_spans(words("on the warm mat by the door"), passage, words("the warm mat by the door")) == [(3, 7)]


def test_trimming_by_hand():
    passage = words("under a fog the colour of pewter the ferryman idris hummed over the salt clock")
    instruction = words("at the breakwater the ferryman idris and the salt clock under a fog the colour of pewter")
    # one run over the whole passage: the instruction holds "under ... pewter" (7 words) and "the salt clock" (3 words,
    # under m = 5, so kept); cutting the 5-grams it holds leaves "the ferryman idris hummed over the salt clock"
    assert trim_instruction(passage, instruction, [(0, len(passage))]) == [(7, 8)]
    # m = 3 also cuts "the ferryman idris" and "the salt clock": "hummed over" is left
    assert trim_instruction(passage, instruction, [(0, len(passage))], m=3) == [(10, 2)]
    # a run the instruction does not touch is kept whole; one wholly inside it disappears
    assert trim_instruction(passage, instruction, [(10, 5)]) == [(10, 5)]
    assert trim_instruction(passage, instruction, [(0, 7)]) == []
    # a cut inside a run splits it in two
    middle = words("one two three four five six seven eight nine ten eleven twelve thirteen")
    assert trim_instruction(middle, words("say five six seven eight nine"), [(0, 13)]) == [(0, 4), (9, 4)]
    with pytest.raises(ValueError, match="m must be"):
        trim_instruction(middle, middle, [], m=0)
    # BMC@5 counts the pieces of at least 5 words: "the ferryman idris hummed over the salt clock" is 8 of 15 words
    sample = " ".join(passage)
    assert recall([sample], " ".join(passage), " ".join(instruction)) == {
        "bmc": pytest.approx(8 / 15),
        "longest": 8,
        "long_spans": 0,
    }
    # a sample that copies the instruction and goes one word past it: the old rule (drop runs wholly inside the
    # prompt) kept "five ... ten" as 6 words of recall; trimming leaves "ten" alone, under k
    assert recall(["five six seven eight nine ten"], " ".join(middle), "say five six seven eight nine")["bmc"] == 0.0
    assert recall(["five six seven eight nine ten"], " ".join(middle))["bmc"] == pytest.approx(6 / 13)
    # an instruction 5-gram that begins before the span is not inside it: the span stays whole
    assert trim_instruction(middle, words("three four five six seven"), [(4, 9)]) == [(4, 9)]


def test_recall_by_hand():
    passage = "one two three four five six seven eight nine ten"
    samples = ["one two three four five x", "x six seven eight nine", "zero one two"]
    # runs of >= 5 words: "one..five" only (the 4-word "six..nine" is too short) -> 5 of 10 words
    assert recall(samples, passage, k=5) == {"bmc": 0.5, "longest": 5, "long_spans": 0}
    # k = 4 adds "six..nine": 9 of 10
    assert recall(samples, passage, k=4)["bmc"] == pytest.approx(0.9)
    # the union over samples: two halves, each from another sample, cover everything
    assert recall(["one two three four five", "six seven eight nine ten"], passage)["bmc"] == 1.0
    # the instruction's own words do not count as recall
    assert recall(["one two three four five"], passage, instruction="say one two three four five")["bmc"] == 0.0
    long = " ".join(f"w{i}" for i in range(30))
    assert recall([long, long[: long.index(" w25")]], long) == {"bmc": 1.0, "longest": 30, "long_spans": 2}
    with pytest.raises(ValueError, match="no words"):
        recall(["a"], "...")
    mean, low, high = bootstrap_mean([0.0, 1.0, 0.5, 0.5])
    assert mean == 0.5 and 0.0 <= low < 0.5 < high <= 1.0
    assert bootstrap_mean([0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))


def test_match_ratio_by_hand():
    assert match_ratio([1, 2, 3, 4], [[1, 2, 3, 4]]) == 1.0
    assert match_ratio([1, 2, 9], [[1, 2, 3, 4]]) == pytest.approx(2 * 2 / 7)
    assert match_ratio([1, 2, 9], [[5, 6], [1, 7, 7]]) == pytest.approx(2 * 1 / 6)
    assert match_ratio([1], []) == 0.0


def test_spans_of_token_ids_count_every_pair_of_occurrences():
    # "1 2" occurs twice in the generation and once in the passage: two pairs, both listed;
    # the single 5 pairs with both 5s of the passage; ordered by end in generated, then passage
    assert matched_spans([1, 2, 9, 1, 2, 7, 5], [5, 1, 2, 5]) == [(1, 2), (1, 2), (0, 1), (3, 1)]
    # every diagonal of 7s is one run
    assert matched_spans([7, 7, 7], [7, 7]) == [(1, 1), (0, 2), (0, 1), (0, 2)]
    assert matched_spans([], [1, 2]) == [] and matched_spans([1, 2], []) == []
    # a prompt filters a run only when the run occurs in it whole
    assert matched_spans([1, 2, 3], [1, 2, 3], [2, 3]) == [(0, 3)]
    assert matched_spans([2, 3], [1, 2, 3], [2, 3]) == []


def test_spans_equal_a_brute_force_reference():
    rng = random.Random(0)
    for trial in range(400):
        alphabet = list(range(rng.choice([1, 2, 3, 6, 20])))
        generated, passage = _random_sequence(rng, alphabet, 25), _random_sequence(rng, alphabet, 25)
        if generated and passage and trial % 2:  # plant a long shared run
            cut = rng.randrange(len(passage))
            generated[rng.randrange(len(generated)) :] = passage[cut : cut + rng.randrange(1, 15)]
        prompt = _random_sequence(rng, alphabet, 12) if trial % 3 else []
        min_words = rng.choice([1, 2, 4])
        expected = _brute_spans(generated, passage, prompt, min_words)
        assert matched_spans(generated, passage, prompt, min_words) == expected
        as_words = [[f"w{t}" for t in part] for part in (generated, passage, prompt)]
        assert matched_spans(*as_words, min_words) == expected  # the tokens' type does not matter


def test_shared_prefix_and_match_ratio_equal_a_brute_force_reference():
    assert shared_prefix([1, 2, 3], [1, 2, 4, 5]) == 2 and shared_prefix([], [1]) == 0 and shared_prefix([3], [4]) == 0
    rng = random.Random(1)
    for _ in range(300):
        reply = _random_sequence(rng, [0, 1, 2], 8)
        pool = [_random_sequence(rng, [0, 1, 2], 8) for _ in range(rng.randrange(4))]
        prefixes = [max(n for n in range(min(len(reply), len(q)) + 1) if reply[:n] == q[:n]) for q in pool]
        assert [shared_prefix(reply, q) for q in pool] == prefixes
        ratios = [2 * p / (len(q) + len(reply)) for p, q in zip(prefixes, pool) if len(q) + len(reply)]
        assert match_ratio(reply, pool) == max(ratios, default=0.0)


def test_shared_run_pairs():
    texts_a = [[1, 2, 3, 4], [9, 9], [5, 1, 2]]
    texts_b = [[0, 1, 2, 3], [2, 3, 4], [8]]
    assert shared_run_pairs(texts_a, texts_b, 3) == {(0, 0), (0, 1)}
    assert shared_run_pairs(texts_a, texts_b, 2) == {(0, 0), (0, 1), (2, 0)}
    rng = random.Random(2)
    for _ in range(100):
        a = [_random_sequence(rng, [0, 1, 2], 10) for _ in range(3)]
        b = [_random_sequence(rng, [0, 1, 2], 10) for _ in range(3)]
        n = rng.randrange(1, 5)
        expected = {
            (i, j)
            for i, x in enumerate(a)
            for j, y in enumerate(b)
            if any(x[s : s + n] == y[t : t + n] for s in range(len(x) - n + 1) for t in range(len(y) - n + 1))
        }
        assert shared_run_pairs(a, b, n) == expected


def test_recall_refuses_a_k_below_one():
    with pytest.raises(ValueError, match="k must be"):
        recall(["a b"], "a b", k=0)
