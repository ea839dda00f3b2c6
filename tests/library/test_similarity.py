"""workbench.similarity: embeddings, string metrics, best matches, maps and text files."""

import json
import random

import numpy as np
import pytest
from rapidfuzz.distance import Indel
from sentence_transformers.util import cos_sim

from workbench import similarity
from workbench.lab_data import make_dataset, other_domain_texts
from workbench.similarity import (
    best_matches,
    best_per_text,
    compare,
    embed,
    parse_texts,
    passages,
    project,
    read_texts,
    shared_spans,
    similarity_matrix,
    token_jaccard,
    tokens,
)

CANDIDATES = [
    "Licensed under the Apache License, Version 2.0; you may not use this file except in compliance with the License.",
    "Tomorrow in Oslo: rainy skies with a high of 12 degrees and a light westerly wind.",
    "Patient: I have had a burning pain in my upper stomach after meals for a week.",
    "To make pancakes, whisk two eggs with flour, fold in the apples and bake until golden.",
]
EXTRACTED = [
    "licensed under the Apache License Version 2.0, you may not use this file except in compliance",
    "For a week I've had burning pain in the upper stomach after eating, doctor.",
    "Forecast for Oslo: rain, around 12 degrees, westerly wind.",
]


def test_embeddings_are_unit_length_cached_and_meaningful(monkeypatch):
    vectors = embed(EXTRACTED + CANDIDATES)
    assert vectors.shape == (7, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # Each extracted text is closer to its source than to any other candidate.
    sims = vectors[:3] @ vectors[3:].T
    assert list(sims.argmax(axis=1)) == [0, 2, 1]

    calls = []
    encoder = similarity.embedding_model(None)
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts, **kw: calls.append(list(texts)) or original(texts, **kw))
    again = embed([CANDIDATES[1], "a text never seen before", CANDIDATES[1]])
    assert calls == [["a text never seen before"]]  # cached texts are not encoded again, repeats once
    assert np.array_equal(again[0], vectors[4]) and np.array_equal(again[0], again[2])
    assert embed([]).shape == (0, 384)


def test_unknown_embedding_model_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="Cannot load the embedding model"):
        embed(["hello"], model=str(tmp_path / "no-such-model"))


def test_similarity_matrix_is_all_pairs_cosine():
    matrix = similarity_matrix(EXTRACTED, CANDIDATES)
    expected = cos_sim(embed(EXTRACTED), embed(CANDIDATES)).numpy()
    assert matrix.shape == (3, 4) and np.allclose(matrix, expected, atol=1e-5)


def test_best_matches_rank_by_cosine():
    table = best_matches(EXTRACTED, CANDIDATES, top_k=2)
    assert list(table.columns) == ["extracted_index", "rank", "candidate_index", "cosine"]
    assert len(table) == 6
    assert table[table["rank"] == 1]["candidate_index"].tolist() == [0, 2, 1]
    for _, group in table.groupby("extracted_index"):
        assert group["cosine"].is_monotonic_decreasing
    assert len(best_matches(EXTRACTED, CANDIDATES, top_k=10)) == 12  # clamped to the candidates
    with pytest.raises(ValueError, match="top_k"):
        best_matches(EXTRACTED, CANDIDATES, top_k=0)
    with pytest.raises(ValueError, match="No extracted texts"):
        best_matches([], CANDIDATES)
    with pytest.raises(ValueError, match="No candidate"):
        best_matches(EXTRACTED, [])


def _brute_force_run(a, b):
    return max(
        (
            k
            for i in range(len(a))
            for j in range(len(b))
            for k in range(1, min(len(a) - i, len(b) - j) + 1)
            if a[i : i + k] == b[j : j + k]
        ),
        default=0,
    )


def test_longest_run_equals_brute_force_on_random_texts():
    rng = random.Random(0)
    extracted = [" ".join(rng.choice("abcd") for _ in range(rng.randrange(1, 15))) for _ in range(12)]
    candidates = [" ".join(rng.choice("abcd") for _ in range(rng.randrange(1, 15))) for _ in range(12)]
    table = compare(extracted, candidates, top_k=None, min_run=4)
    assert len(table) == 144
    for row in table.itertuples():
        expected = _brute_force_run(row.extracted_text.split(), row.candidate_text.split())
        assert row.longest_run == expected and row.exact_run == (expected >= 4)


def test_every_pair_with_a_long_exact_run_is_scored():
    """A dialogue copied verbatim from the middle of a long weather report is neither that
    report's best match by cosine (the embedding reads its weather start) nor by the plain
    edit ratio (lengths differ); its exact run must still be found."""
    dialogues = make_dataset(n=40, canaries=(), seed=0).texts
    weather = [t for t in other_domain_texts(random.Random(0), 200) if t.startswith(("Tomorrow", "Forecast"))]
    excerpt = max(dialogues, key=len)
    report = " ".join(weather[:40]) + " " + excerpt + " " + " ".join(weather[40:80])
    others = [d for d in dialogues if d != excerpt][:10]
    assert best_matches([excerpt], [*others, report])["candidate_index"].iloc[0] != 10  # not the cosine pick
    table = compare([excerpt], [*others, report], top_k=1, min_run=50)
    row = table[table["candidate_index"] == 10]
    assert len(row) == 1 and row["exact_run"].iloc[0]
    assert row["longest_run"].iloc[0] == len(tokens(excerpt)[0])


def test_token_jaccard_formula():
    assert token_jaccard(["a", "b", "c"], ["b", "c", "d", "d"]) == pytest.approx(2 / 4)
    assert token_jaccard([], []) == 0.0


def test_tokens_by_words_and_by_tokenizer(tiny_llama):
    words, spans = tokens("Hello, world!")
    assert words == ["Hello", ",", "world", "!"] and spans[2] == (7, 12)
    ids, spans = tokens("Hello, world!", tiny_llama.tokenizer)
    assert ids == tiny_llama.tokenizer.encode("Hello, world!", add_special_tokens=False)
    assert "".join("Hello, world!"[s:e] for s, e in spans) == "Hello, world!"


def test_compare_columns_follow_their_formulas():
    long_source = " ".join(f"word{i}" for i in range(80))
    candidates = [*CANDIDATES, long_source]
    near_copy = " ".join(f"word{i}" if i % 10 else "changed" for i in range(60))  # edited every 10 words
    verbatim = " ".join(f"word{i}" for i in range(10, 70))
    table = compare([near_copy, verbatim, EXTRACTED[0]], candidates, top_k=1, min_run=50)
    expected_columns = [
        "extracted_index", "candidate_index", "cosine", "levenshtein_ratio", "partial_ratio",
        "longest_run", "token_jaccard", "exact_run", "extracted_text", "candidate_text",
    ]  # fmt: skip
    assert list(table.columns) == expected_columns
    embeddings_a, embeddings_b = embed(table["extracted_text"].tolist()), embed(table["candidate_text"].tolist())
    for row, ea, eb in zip(table.itertuples(), embeddings_a, embeddings_b):
        a, b = row.extracted_text, row.candidate_text
        assert row.cosine == pytest.approx(float(ea @ eb), abs=1e-5)
        assert row.levenshtein_ratio == pytest.approx(1 - Indel.distance(a, b) / (len(a) + len(b)))
        assert row.longest_run == _brute_force_run(tokens(a)[0], tokens(b)[0])
        assert row.token_jaccard == pytest.approx(token_jaccard(tokens(a)[0], tokens(b)[0]))
        assert row.exact_run == (row.longest_run >= 50)
    best = table.groupby("extracted_index").head(1).set_index("extracted_index")
    assert best.loc[0, "candidate_index"] == 4 and best.loc[0, "longest_run"] == 9 and not best.loc[0, "exact_run"]
    assert best.loc[0, "partial_ratio"] > 0.85  # the edited copy is still a near-copy of part of the source
    assert best.loc[1, "longest_run"] == 60 and best.loc[1, "exact_run"] and best.loc[1, "partial_ratio"] == 1.0
    assert best.loc[2, "candidate_index"] == 0


def test_compare_pairs_are_top_k_by_cosine_and_by_edit_ratio():
    table = compare(EXTRACTED, CANDIDATES, top_k=1)
    by_cosine = best_matches(EXTRACTED, CANDIDATES, top_k=1)
    for i, j in zip(by_cosine["extracted_index"], by_cosine["candidate_index"]):
        assert ((table["extracted_index"] == i) & (table["candidate_index"] == j)).any()
    assert all(1 <= n <= 2 for n in table.groupby("extracted_index").size())
    every = compare(EXTRACTED, CANDIDATES, top_k=None)
    assert len(every) == 12
    with pytest.raises(ValueError, match="top_k"):
        compare(EXTRACTED, CANDIDATES, top_k=0)
    with pytest.raises(ValueError, match="min_run"):
        compare(EXTRACTED, CANDIDATES, min_run=0)


def test_compare_counts_runs_in_model_tokens(tiny_llama):
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."
    table = compare([text], [text, CANDIDATES[0]], top_k=1, tokenizer=tiny_llama.tokenizer, min_run=5)
    row = table.iloc[0]
    assert row["longest_run"] == len(tiny_llama.tokenizer.encode(text, add_special_tokens=False)) and row["exact_run"]


def test_best_per_text_verdicts():
    table = compare(EXTRACTED, CANDIDATES, top_k=2)
    best = best_per_text(table, cosine_threshold=0.8, min_run=50)
    assert best["extracted_index"].tolist() == [0, 1, 2]
    assert best["candidate_index"].tolist() == [0, 2, 1]
    assert (best["extracted"] == (best["cosine"] >= 0.8)).all()  # no exact run of 50 words here
    assert best_per_text(table, cosine_threshold=1.01, min_run=1)["extracted"].all()  # every pair shares a word
    assert not best_per_text(table, cosine_threshold=1.01, min_run=1000)["extracted"].any()


def test_shared_spans_cover_identical_text():
    a = "The quick brown fox jumps over the lazy dog near the river bank."
    b = "Yesterday the quick brown fox jumps over a lazy dog near the river."
    spans = shared_spans(a, b, min_tokens=3)
    assert spans
    for a0, a1, b0, b1 in spans:
        assert a[a0:a1] == b[b0:b1] and len(a[a0:a1].split()) >= 3
    assert "quick brown fox jumps over" in [a[s:e] for s, e, _, _ in spans]


def test_passages_cover_every_word_in_overlapping_windows():
    text = " ".join(f"w{i}" for i in range(23))
    cut = passages([("doc", text)], words=10, stride=5)
    assert [name for name, _ in cut] == ["doc@0", "doc@5", "doc@10", "doc@13"]
    assert all(len(p.split()) == 10 for _, p in cut)
    assert {w for _, p in cut for w in p.split()} == set(text.split())
    assert passages([("short", "a  b\nc")], words=10) == [("short@0", "a  b\nc")]  # original spacing kept
    with pytest.raises(ValueError, match="at least 1 word"):
        passages([("doc", text)], words=0)
    with pytest.raises(ValueError, match="stride"):
        passages([("doc", text)], words=5, stride=-1)


def test_project_is_seeded_and_separates_groups():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(2, 16)) * 5
    points = np.vstack([centers[0] + rng.normal(size=(30, 16)), centers[1] + rng.normal(size=(30, 16))]).astype(
        np.float32
    )
    labels = ["a"] * 30 + ["b"] * 30
    first = project(points, labels, seed=3)
    assert list(first.columns) == ["x", "y", "label"] and len(first) == 60
    assert first[["x", "y"]].equals(project(points, labels, seed=3)[["x", "y"]])
    centroid = first.groupby("label")[["x", "y"]].mean()
    between = np.linalg.norm(centroid.loc["a"] - centroid.loc["b"])
    within = max(np.linalg.norm(first[first.label == g][["x", "y"]] - centroid.loc[g], axis=1).mean() for g in "ab")
    assert between > 2 * within


def test_project_texts_and_bad_input():
    table = project(EXTRACTED + CANDIDATES, seed=0)
    assert list(table.columns) == ["x", "y", "label", "text"] and table["text"].tolist() == EXTRACTED + CANDIDATES
    with pytest.raises(ValueError, match="at least 3"):
        project(EXTRACTED[:2])
    with pytest.raises(ValueError, match="labels"):
        project(EXTRACTED, ["a"])


def test_parse_texts_reads_lines_and_jsonl_fields():
    assert parse_texts("x.txt", b"first\n\n  second  \n") == [("x.txt:1", "first"), ("x.txt:3", "second")]
    assert parse_texts("UPPER.TXT", b"one") == [("UPPER.TXT:1", "one")]
    rows = b"".join(
        json.dumps(r).encode() + b"\n" for r in [{"escaped_text": "a b", "id": "r1"}, {"escaped_text": " "}, "plain"]
    )
    assert parse_texts("r.jsonl", rows, field="escaped_text") == [("r1", "a b"), ("r.jsonl:3", "plain")]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.txt", b"  \n\n", "is empty"),
        ("b.txt", b"PK\x03\x04\x00\x00binary", "binary"),
        ("l.txt", "caf\u00e9".encode("latin-1"), "not UTF-8"),
        ("x.csv", b"a,b", "must end in"),
        ("j.jsonl", b'{"other": 1}\n', 'no "text" string'),
        ("big.txt", b"x" * 2_000, "limit"),
    ],
)
def test_parse_texts_rejects_bad_files(name, data, message):
    with pytest.raises(ValueError, match=message):
        parse_texts(name, data, max_bytes=1_000)


def test_read_texts_reports_missing_files(tmp_path):
    with pytest.raises(ValueError, match="Cannot read"):
        read_texts(tmp_path / "missing.txt")
    (tmp_path / "ok.txt").write_text("one\ntwo\n")
    assert [t for _, t in read_texts(tmp_path / "ok.txt")] == ["one", "two"]
