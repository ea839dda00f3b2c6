"""Did the output reproduce training text? Every overlap measure of the workbench, defined once.

- ``exact_matches``: maximal runs of a token sequence found verbatim in a corpus index
  (tokengrams' suffix array, built and saved by ``workbench.corpus``);
- ``match_ratio``: the longest shared prefix (``shared_prefix``) with a pool of queries;
- ``matched_spans``: every maximal run two sequences share, from a suffix array over both;
- ``shared_run_pairs``: which texts of one list share a run of ≥ n tokens with which of another;
- ``trim_instruction``: matched spans with the stretches the instruction holds cut out;
- ``recall``: word coverage of a passage by its samples' trimmed spans: BMC@k (Liu et al.
  2026), the longest span and the spans over ``LONG_SPAN`` words, in ``words``.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the index pulls in tokengrams and transformers; a measure needs neither
    from workbench.corpus import CorpusIndex

DEFAULT_MIN_TOKENS = 50  # Nasr et al. 2023 count a 50-token verbatim run as memorized
BMC_K = 5  # BMC@k: Liu et al.'s 5-word spans
LONG_SPAN = 20  # words: their "spans over 20 words"
TRIM_M = 5  # their instruction trimming threshold m

# ---------------------------------------------------------------- exact runs against a corpus


@dataclass(frozen=True)
class CorpusMatch:
    start: int  # position of the run in the queried token ids
    length: int  # tokens
    document: str  # name of the first document holding it
    offset: int  # token offset of the run in that document
    occurrences: int  # how often the run occurs in the whole corpus

    def as_dict(self) -> dict:
        return asdict(self)


def exact_matches(
    corpus: CorpusIndex, token_ids: Sequence[int], min_tokens: int = DEFAULT_MIN_TOKENS
) -> list[CorpusMatch]:
    """Every maximal run of ≥ ``min_tokens`` consecutive ``token_ids`` found verbatim in
    ``corpus``. Two pointers: if ids[i:j] occurs, so does ids[i+1:j], so each run end only
    moves forward and the scan costs O(len(token_ids)) suffix-array lookups."""
    if min_tokens < 1:
        raise ValueError("min_tokens must be at least 1.")
    index = corpus.suffix_array
    ids = [int(i) for i in token_ids]
    # The separator and ids beyond the tokenizer (models may pad their vocabulary) never match.
    valid = [0 <= i < corpus.separator for i in ids]
    matches: list[CorpusMatch] = []
    end = previous_end = 0
    for start in range(len(ids)):
        end = max(end, start)
        while end < len(ids) and valid[end] and index.contains(ids[start : end + 1]):
            end += 1
        if end - start >= min_tokens and end > previous_end:
            run = ids[start:end]
            document, offset = corpus.locate(min(index.positions(run)))
            matches.append(CorpusMatch(start, end - start, document, offset, index.count(run)))
        previous_end = end
    return matches


# ---------------------------------------------------------------- shared prefix with a pool


def shared_prefix(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def match_ratio(reply: Sequence[int], queries: Sequence[Sequence[int]]) -> float:
    """max over queries x of 2|p| / (|x| + |r|), p the longest shared token prefix of x and
    the reply r; 0 when there is no query."""
    return max(
        (2 * shared_prefix(reply, x) / (len(x) + len(reply)) for x in queries if len(x) + len(reply)), default=0.0
    )


# ---------------------------------------------------------------- runs shared by two sequences


def _suffix_array(ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Suffix array of non-negative ids by prefix doubling (numpy sorts, O(N log² N)) and
    Kasai's LCP array: lcp[r] = common prefix length of suffixes sa[r - 1] and sa[r]; lcp[0] = 0."""
    n = len(ids)
    if n == 0:
        return [], []
    rank = np.asarray(ids, dtype=np.int64)
    step = 1
    while True:
        second = np.full(n, -1, dtype=np.int64)  # -1: the suffix ends, so it sorts first
        second[: max(n - step, 0)] = rank[step:]
        sa = np.lexsort((second, rank))
        new_class = np.empty(n, dtype=np.int64)
        new_class[0] = 0
        new_class[1:] = (rank[sa][1:] != rank[sa][:-1]) | (second[sa][1:] != second[sa][:-1])
        rank = np.empty(n, dtype=np.int64)
        rank[sa] = np.cumsum(new_class)
        if rank[sa[-1]] == n - 1:
            break
        step *= 2
    sa_list, rank_list, seq = sa.tolist(), rank.tolist(), list(ids)
    lcp = [0] * n
    h = 0
    for i in range(n):
        r = rank_list[i]
        if r == 0:
            h = 0
            continue
        j = sa_list[r - 1]
        while i + h < n and j + h < n and seq[i + h] == seq[j + h]:
            h += 1
        lcp[r] = h
        h = max(h - 1, 0)
    return sa_list, lcp


def _longest_prefixes_in(text: Sequence[int], source: Sequence[int], separator: int) -> list[int]:
    """For each position q of ``text``, the length of the longest prefix of text[q:] that
    occurs in ``source``: the largest LCP with a suffix of ``source``, which in the suffix
    array of source + [separator] + text is the nearest such suffix on either side."""
    joined = [*source, separator, *text]
    sa, lcp = _suffix_array(joined)
    offset = len(source) + 1
    best = [0] * len(text)
    for order in (range(len(sa)), range(len(sa) - 1, -1, -1)):
        run = 0  # the smallest LCP since the last suffix of source; 0 before the first
        previous = None
        for r in order:
            if previous is not None:
                run = min(run, lcp[max(r, previous)])
            previous = r
            position = sa[r]
            if position < len(source):
                run = len(joined)
            elif position >= offset:
                best[position - offset] = max(best[position - offset], run)
    return best


def _maximal_pairs(a: Sequence[int], b: Sequence[int], separator: int, least: int) -> list[tuple[int, int, int]]:
    """Every (i, j, length ≥ least) with a[i : i + length] == b[j : j + length] that neither
    side can extend left or right: the maximal pairs of the suffix array of a + [separator] + b
    (Abouelhoda, Kurtz & Ohlebusch 2004, after Gusfield's suffix-tree algorithm).

    Walking the LCP intervals bottom up, two suffixes from different children of an interval
    share exactly its depth; they are reported there when their preceding tokens differ (left
    maximal). Positions are kept per preceding token, so only pairs that are reported are
    visited, and the smaller interval is merged into the larger: O(N log N + pairs)."""
    joined = [*a, separator, *b]
    sa, lcp = _suffix_array(joined)
    n, start_b = len(a), len(a) + 1
    found: list[tuple[int, int, int]] = []

    def leaf(position: int) -> list:
        before = joined[position - 1] if position else -1  # -1: no token before the start of a
        if position < n:
            return [float("inf"), {before: [position]}, {}, 1]
        if position >= start_b:
            return [float("inf"), {}, {before: [position - start_b]}, 1]
        return [float("inf"), {}, {}, 0]  # the separator's suffix belongs to neither side

    def merge(node: list, child: list) -> None:
        depth = node[0]
        if depth >= least:
            for mine, theirs, a_first in ((node[1], child[2], True), (node[2], child[1], False)):
                for token, positions in mine.items():
                    for other, other_positions in theirs.items():
                        if token != other:
                            for x in positions:
                                found.extend((x, y, depth) if a_first else (y, x, depth) for y in other_positions)
        if child[3] > node[3]:  # keep the larger groups, move the smaller ones in
            node[1], child[1], node[2], child[2] = child[1], node[1], child[2], node[2]
        for side in (1, 2):
            for token, positions in child[side].items():
                if token in node[side]:
                    node[side][token].extend(positions)
                else:
                    node[side][token] = positions
        node[3] += child[3]

    stack = [[0, {}, {}, 0]]
    for r in range(len(sa) + 1):
        depth = lcp[r] if 0 < r < len(sa) else 0
        child = None
        while stack[-1][0] > depth:
            node = stack.pop()
            if child is not None:
                merge(node, child)
            child = node
        if child is not None:
            if stack[-1][0] < depth:
                stack.append([depth, child[1], child[2], child[3]])
            else:
                merge(stack[-1], child)
        if r < len(sa):
            stack.append(leaf(sa[r]))
    return found


def matched_spans(
    generated: Sequence[Hashable], passage: Sequence[Hashable], prompt: Sequence[Hashable] = (), min_words: int = 1
) -> list[tuple[int, int]]:
    """Maximal runs of tokens (words, or ids) the generation shares with the passage, as
    (start in the passage, length), at least ``min_words`` long, ordered by where they end
    in the generation, then in the passage; a run that occurs whole in the prompt only
    repeats the prompt and is left out.

    Every pair of occurrences counts: a run the generation holds twice, or the passage
    twice, is listed once for each pair. Found as the maximal pairs of a suffix array over
    both sequences: O(N log N + runs) for N tokens in all, plus the sort rounds of the
    suffix array (at most log N numpy sorts); a table of every (i, j) would cost O(n·m)."""
    vocabulary: dict[Hashable, int] = {}
    ids = [[vocabulary.setdefault(token, len(vocabulary)) for token in part] for part in (generated, passage, prompt)]
    separator = len(vocabulary)
    pairs = _maximal_pairs(ids[0], ids[1], separator, max(min_words, 1))
    if ids[2]:
        in_prompt = _longest_prefixes_in(ids[1], ids[2], separator)
        pairs = [(i, j, length) for i, j, length in pairs if length > in_prompt[j]]
    pairs.sort(key=lambda pair: (pair[0] + pair[2], pair[1] + pair[2]))
    return [(j, length) for _, j, length in pairs]


def shared_run_pairs(texts_a: list[list], texts_b: list[list], min_run: int) -> set[tuple[int, int]]:
    """Every (i, j) such that texts_a[i] and texts_b[j] share a run of ≥ min_run tokens: both
    share one of its min_run-grams, found through a table of texts_b's min_run-grams."""
    holders: dict[tuple, set[int]] = {}
    for j, run in enumerate(texts_b):
        for start in range(len(run) - min_run + 1):
            holders.setdefault(tuple(run[start : start + min_run]), set()).add(j)
    return {
        (i, j)
        for i, run in enumerate(texts_a)
        for start in range(len(run) - min_run + 1)
        for j in holders.get(tuple(run[start : start + min_run]), ())
    }


# ---------------------------------------------------------------- word coverage


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation: what verbatim spans are counted in."""
    return re.findall(r"[\w'-]+", text.lower())


def trim_instruction(
    passage: Sequence[Hashable], instruction: Sequence[Hashable], spans: Sequence[tuple[int, int]], m: int = TRIM_M
) -> list[tuple[int, int]]:
    """The pieces of matched ``spans`` ((start in the passage, length)) left once every
    stretch the instruction holds is cut out, as Liu et al. (2026, Algorithm 1) trim: "spans
    that overlap with the prompt instruction are trimmed (with threshold m = 5)" — every m
    consecutive passage words inside a span that also occur as m consecutive words of the
    instruction are removed, and the span falls apart around them. Pieces of every length
    are returned; BMC@k keeps those of at least k words."""
    if m < 1:
        raise ValueError("m must be at least 1.")
    asked = {tuple(instruction[i : i + m]) for i in range(len(instruction) - m + 1)}
    pieces = []
    for start, length in spans:
        removed = np.zeros(length, dtype=bool)
        for i in range(length - m + 1):
            if tuple(passage[start + i : start + i + m]) in asked:
                removed[i : i + m] = True
        piece = None
        for i, cut in enumerate([*removed, True]):
            if not cut and piece is None:
                piece = i
            elif cut and piece is not None:
                pieces.append((start + piece, i - piece))
                piece = None
    return pieces


def recall(samples: Sequence[str], passage: str, instruction: str = "", k: int = BMC_K, m: int = TRIM_M) -> dict:
    """A passage's recall over samples, from the runs each sample shares with the passage
    trimmed of what the instruction holds (``trim_instruction``): ``bmc`` (BMC@k: the share of
    the passage's words covered by pieces of ≥ k words, over the union of the samples),
    ``longest`` (the longest piece of one sample) and ``long_spans`` (pieces over LONG_SPAN
    words, counted over the samples)."""
    if k < 1:
        raise ValueError("k must be at least 1.")
    target, asked = words(passage), words(instruction)
    if not target:
        raise ValueError("The passage has no words.")
    covered = np.zeros(len(target), dtype=bool)
    longest = long_spans = 0
    for text in samples:
        for start, length in trim_instruction(target, asked, matched_spans(words(text), target), m):
            longest = max(longest, length)
            long_spans += length > LONG_SPAN
            if length >= k:
                covered[start : start + length] = True
    return {"bmc": float(covered.mean()), "longest": longest, "long_spans": long_spans}
