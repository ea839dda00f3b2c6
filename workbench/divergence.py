"""Where a repeated-token output stops repeating, and the repeated-token experiment that the
page, the CLI and the notebook share."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import pandas as pd

from workbench import metrics
from workbench.config import SamplingConfig
from workbench.corpus import DEFAULT_MIN_TOKENS, CorpusIndex, CorpusMatch
from workbench.prompts import repeated_token_prompt
from workbench.sampling import sample, text_logprobs
from workbench.session import Progress, Session, scaled_progress

# Whitespace and punctuation between repeats; not U+FFFD, which stands for a piece of a
# multi-byte character when a token is decoded on its own.
_SEPARATOR = r"(?:[^\w\ufffd]|_)*"


def divergence_point(pieces: Sequence[str], word: str) -> int | None:
    """Index of the first generated token after the output stops repeating ``word``.

    ``pieces`` are the generated tokens as text (``tokenizer.decode([id])`` each). Repeats
    may differ in case and be separated by whitespace and punctuation ("poem, Poem\\n poem"),
    but must be whole words ("poems" ends the repetition). Returns None when the output never
    escapes (including when it ends in a cut-off repeat such as "poem po")."""
    target = word.strip()
    if not target:
        raise ValueError("The word is empty.")
    text = "".join(pieces)
    repeats = re.compile(rf"(?:{_SEPARATOR}{re.escape(target)}(?![^\W_]))*{_SEPARATOR}", re.IGNORECASE)
    end = repeats.match(text).end()
    rest = text[end:]
    if not rest or target.lower().startswith(rest.lower()):
        return None
    if rest.lower().startswith(target.lower()):  # glued to a repeat ("poems", "poempoem"): escapes after it
        end += len(target)
    consumed = 0
    for index, piece in enumerate(pieces):
        consumed += len(piece)
        if consumed > end:
            return index
    return None


def _match_spans(tokenizer, escaped_ids: Sequence[int], matches: list[CorpusMatch]) -> list[dict]:
    """Each match with the character span it covers in the decoded escaped text."""
    spans = []
    for match in matches:
        record = match.as_dict()
        record["char_start"] = len(tokenizer.decode(escaped_ids[: match.start], skip_special_tokens=True))
        record["char_end"] = len(tokenizer.decode(escaped_ids[: match.start + match.length], skip_special_tokens=True))
        spans.append(record)
    return spans


def run(
    session: Session,
    words: Sequence[str],
    repeats: Sequence[int],
    cfg: SamplingConfig,
    prefix: str = "",
    template: str | None = None,
    corpus: CorpusIndex | None = None,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    reference: Session | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The repeated-token experiment: for every word × repeat count, sample ``cfg.n``
    continuations, find the divergence point, score the escaped text and look it up in
    ``corpus``. One row per generation; the metric columns are NaN where it never diverged.

    Columns: word, repeats, prefix, template, prompt_tokens, sample, seed, generated_tokens,
    stop_reason, diverged, divergence_point, escaped_tokens, escaped_text, perplexity,
    zlib_entropy, zlib_ratio, min_k_prob, [reference_ratio], longest_match, matches (JSON
    list of corpus matches with their character spans in escaped_text), output."""
    if not words:
        raise ValueError("No words: choose at least one word to repeat.")
    if not repeats:
        raise ValueError("No repeat counts: give at least one, e.g. 50.")
    if min_tokens < 1:
        raise ValueError("min_tokens must be at least 1.")
    prompts = [
        repeated_token_prompt(session.tokenizer, w, r, prefix, template, session.info.context_length)
        for w in words
        for r in repeats
    ]
    generations = sample(session, [p.token_ids for p in prompts], cfg, scaled_progress(progress, 0.0, 0.9))
    tokenizer = session.tokenizer
    rows = []
    for generation in generations:
        prompt = prompts[generation.prompt_index]
        pieces = [tokenizer.decode([t]) for t in generation.token_ids]
        point = divergence_point(pieces, prompt.word)
        escaped_ids = list(generation.token_ids[point:]) if point is not None else []
        escaped_text = tokenizer.decode(escaped_ids, skip_special_tokens=True)
        logprobs = generation.logprobs[point:] if point is not None else ()
        matches = corpus.exact_matches(escaped_ids, min_tokens) if corpus is not None and escaped_ids else []
        rows.append(
            {
                "word": prompt.word,
                "repeats": prompt.repeats,
                "prefix": prompt.prefix,
                "template": prompt.template or "plain",
                "prompt_tokens": len(prompt.token_ids),
                "sample": generation.sample_index,
                "seed": generation.seed,
                "generated_tokens": len(generation.token_ids),
                "stop_reason": generation.stop_reason,
                "diverged": point is not None,
                "divergence_point": point,
                "escaped_tokens": len(escaped_ids),
                "escaped_text": escaped_text,
                "perplexity": metrics.perplexity(logprobs),
                "zlib_entropy": metrics.zlib_entropy(escaped_text),
                "zlib_ratio": metrics.zlib_ratio(logprobs, escaped_text),
                "min_k_prob": metrics.min_k_prob(logprobs),
                "longest_match": max((m.length for m in matches), default=0),
                "matches": json.dumps(_match_spans(tokenizer, escaped_ids, matches)),
                "output": generation.text,
            }
        )
    table = pd.DataFrame(rows).astype({"divergence_point": "Int64"})
    if reference is not None:
        table.insert(table.columns.get_loc("longest_match"), "reference_ratio", _reference_ratios(session, reference, table))
    if progress is not None:
        progress(1.0, f"Scored {len(table)} generations")
    return table


def _reference_ratios(session: Session, reference: Session, table: pd.DataFrame) -> list[float]:
    """log-PPL of each escaped text under the target over that under the reference model,
    both teacher-forced on the escaped text alone so that the two are comparable."""
    texts = table["escaped_text"].tolist()
    target = text_logprobs(session, texts)
    ref = text_logprobs(reference, texts)
    return [metrics.reference_ratio(t, r) if len(t) and len(r) else math.nan for t, r in zip(target, ref)]
