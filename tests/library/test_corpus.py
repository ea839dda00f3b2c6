import json
import random

import pytest

from workbench.corpus import (
    REFERENCE_CORPUS,
    CorpusIndex,
    parse_documents,
    read_documents,
)
from workbench.overlap import exact_matches


class IdTokenizer:
    """Whitespace-separated integers as token ids: lets tests plant exact token runs."""

    def __len__(self):
        return 100

    def encode(self, text, add_special_tokens=False):
        return [int(t) for t in text.split()]

    def get_vocab(self):
        return {str(i): i for i in range(100)}


def _text(ids):
    return " ".join(map(str, ids))


def _brute_force_runs(corpus_docs, query, min_tokens):
    """Maximal runs of query found inside one document, by plain scanning."""

    def occurs(run):
        return any(any(doc[k : k + len(run)] == run for k in range(len(doc) - len(run) + 1)) for doc in corpus_docs)

    runs, previous_end = [], 0
    for start in range(len(query)):
        end = start
        while end < len(query) and occurs(query[start : end + 1]):
            end += 1
        if end - start >= min_tokens and end > previous_end:
            runs.append((start, end - start))
        previous_end = max(previous_end, end)
    return runs


def test_planted_run_is_found_with_document_and_offset():
    docs = [("a", _text(range(0, 40))), ("b", _text(range(50, 90)))]
    index = CorpusIndex.from_texts(docs, IdTokenizer())
    query = [99, 98] + list(range(55, 75)) + [97]
    (match,) = exact_matches(index, query, min_tokens=10)
    assert (match.start, match.length, match.document, match.offset, match.occurrences) == (2, 20, "b", 5, 1)
    assert exact_matches(index, query, min_tokens=21) == []


def test_runs_do_not_cross_documents():
    docs = [("a", _text(range(0, 20))), ("b", _text(range(20, 40)))]
    index = CorpusIndex.from_texts(docs, IdTokenizer())
    matches = exact_matches(index, list(range(10, 30)), min_tokens=5)
    assert [(m.start, m.length, m.document) for m in matches] == [(0, 10, "a"), (10, 10, "b")]


def test_matches_equal_a_brute_force_scan():
    rng = random.Random(0)
    docs = [[rng.randrange(8) for _ in range(200)] for _ in range(3)]
    index = CorpusIndex.from_texts([_text(d) for d in docs], IdTokenizer())
    for trial in range(30):
        source = docs[trial % 3]
        cut = rng.randrange(150)
        query = [rng.randrange(8) for _ in range(10)] + source[cut : cut + 30] + [rng.randrange(8) for _ in range(10)]
        expected = _brute_force_runs(docs, query, min_tokens=6)
        assert [(m.start, m.length) for m in exact_matches(index, query, min_tokens=6)] == expected
        assert any(length >= 30 for _, length in expected)


def test_counts_repeated_occurrences():
    index = CorpusIndex.from_texts([_text([1, 2, 3, 4]), _text([9, 1, 2, 3, 4])], IdTokenizer())
    (match,) = exact_matches(index, [1, 2, 3, 4], min_tokens=4)
    assert match.occurrences == 2 and match.document == "doc-0"


def test_save_and_load(tmp_path):
    index = CorpusIndex.from_texts([("x", _text(range(30)))], IdTokenizer())
    folder = index.save(tmp_path / "idx")
    loaded = CorpusIndex.from_path(folder, IdTokenizer())
    assert loaded.names == ["x"] and loaded.n_tokens == index.n_tokens
    assert exact_matches(loaded, list(range(5, 25)), 10) == exact_matches(index, list(range(5, 25)), 10)
    meta = json.loads((folder / "corpus-index.json").read_text())
    meta["tokenizer"] = "another"
    (folder / "corpus-index.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another tokenizer"):
        CorpusIndex.load(folder, IdTokenizer())


def test_parse_documents():
    assert parse_documents("a.txt", "héllo".encode()) == [("a.txt", "héllo")]
    lines = b'{"id": "first", "text": "one"}\n\n"two"\n{"text": "three"}\n'
    assert parse_documents("c.jsonl", lines) == [("first", "one"), ("c.jsonl:3", "two"), ("c.jsonl:4", "three")]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("bad.txt", b"\xff\xfe abc", "not UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{oops\n', "line 2 is not JSON"),
        ("bad.jsonl", b'{"body": "x"}\n', 'no "text" string'),
        ("bad.pdf", b"%PDF", "must end in .txt or .jsonl"),
    ],
)
def test_parse_documents_rejects(name, data, message):
    with pytest.raises(ValueError, match=message):
        parse_documents(name, data)


def test_read_documents_errors(tmp_path):
    with pytest.raises(ValueError, match="no .txt or .jsonl"):
        read_documents(tmp_path)
    with pytest.raises(ValueError, match="No corpus file"):
        read_documents(tmp_path / "missing")
    with pytest.raises(ValueError, match="no documents"):
        CorpusIndex.from_texts([], IdTokenizer())
    with pytest.raises(ValueError, match="min_tokens"):
        exact_matches(CorpusIndex.from_texts(["1 2"], IdTokenizer()), [1, 2], 0)


def test_reference_corpus_and_provenance(tiny_llama):
    documents = read_documents(REFERENCE_CORPUS)
    provenance = (REFERENCE_CORPUS / "PROVENANCE.md").read_text()
    assert len(documents) >= 15
    for name, text in documents:
        assert f"| {name} |" in provenance and len(text) > 100
    index = CorpusIndex.from_path(REFERENCE_CORPUS, tiny_llama.tokenizer)
    gettysburg = tiny_llama.tokenizer.encode(
        " Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in Liberty",
        add_special_tokens=False,
    )
    (match,) = exact_matches(index, gettysburg, min_tokens=10)
    assert match.document == "gettysburg-address.txt" and match.length >= len(gettysburg) - 2


def test_ids_outside_the_tokenizer_never_match():
    """A model may pad its vocabulary past the tokenizer: such ids, like the separator
    between documents, must break a run rather than bridge two documents."""
    index = CorpusIndex.from_texts([_text([2, 3]), _text([4, 5])], IdTokenizer())
    separator = len(IdTokenizer())
    assert exact_matches(index, [2, 3, separator, 4, 5], 3) == []
    (only,) = exact_matches(index, [1, 70_000, 2], 1)  # 1 is absent, 70000 is out of range
    assert (only.start, only.length, only.document) == (2, 1, "doc-0")
