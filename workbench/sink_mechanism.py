"""Why a long run of one token breaks out: the attention-sink mechanism (Yona et al. 2025).

Their account: the model marks the first token of a sequence (an early attention head and an
MLP "sink neuron" give it an outlier hidden state), many heads then park their attention on
it (the attention sink), and a long run of one token comes to look like a first token too, so
the run draws the sink's attention and the model loses track of where it is. Three
measurements, each against length-matched prose (the same number of tokens of ordinary text):

- ``geometry``: per layer, the cosine similarity and the norm ratio between the hidden state
  at each repeated position and at the first position;
- ``sink_fractions``: the attention that chosen sink heads give the first token;
- ``sink_neurons``: early-layer MLP neurons whose activation at the first position is an
  outlier among the layer's neurons, and their activation at the repeated positions.

Position 0 is the first word when the tokenizer adds no BOS token (the default model's does
not); ``leading=True`` puts a special token first, so position 0 is that token and the word or
the prose starts at 1. Every table says which it measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from workbench.attention import hidden_states, mlp_activations, sink_scores
from workbench.contract import Progress, scaled_progress
from workbench.corpus import REFERENCE_CORPUS, read_documents
from workbench.prompts import repeated_token_prompt
from workbench.session import Session

PROSE_DOCUMENTS = (
    "a-tale-of-two-cities-opening.txt", "moby-dick-opening.txt", "pride-and-prejudice-opening.txt",
    "genesis-1-kjv.txt", "the-raven-opening.txt", "gettysburg-address.txt",
)  # fmt: skip
OUTLIER_MADS = 20.0  # a neuron is a candidate when its first-position activation is this many MADs from the layer's median


def leading_token(tokenizer) -> int:
    """The special token put first when ``leading``: the tokenizer's BOS, else its end-of-text token."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError("The tokenizer has neither a BOS nor an end-of-text token to put first.")
    return token


def prose_ids(tokenizer, length: int) -> list[int]:
    """``length`` tokens of ordinary prose: the shipped reference corpus's literary texts, in order."""
    documents = dict(read_documents(REFERENCE_CORPUS))
    ids = tokenizer.encode("\n\n".join(documents[name] for name in PROSE_DOCUMENTS), add_special_tokens=False)
    if len(ids) < length:
        raise ValueError(f"The prose holds {len(ids)} tokens; {length} were asked for.")
    return ids[:length]


def prompt_pair(tokenizer, word: str, repeats: int, leading: bool) -> dict[str, list[int]]:
    """The repeated prompt (the word ``repeats`` times, plain) and length-matched prose, both
    after the leading special token when ``leading``."""
    repeated = list(repeated_token_prompt(tokenizer, word, repeats).token_ids)
    first = [leading_token(tokenizer)] if leading else []
    return {"repeated": first + repeated, "prose": first + prose_ids(tokenizer, len(repeated))}


def geometry(session: Session, word: str, repeats: Sequence[int], leading: bool, progress: Progress | None = None) -> pd.DataFrame:
    """DataFrame(prompt, repeats, leading, layer, cosine, norm_ratio): per layer, the mean over
    positions p ≥ 1 of cos(h[p], h[0]) and of ‖h[p]‖ / ‖h[0]‖, for the repeated prompt and for
    prose of the same length (position 0 is the leading token when ``leading``)."""
    rows = []
    for k, count in enumerate(repeats):
        for name, ids in prompt_pair(session.tokenizer, word, count, leading).items():
            for layer, states in enumerate(hidden_states(session, ids)):
                first, rest = states[0], states[1:]
                cosine = torch.nn.functional.cosine_similarity(rest, first[None, :], dim=-1).mean().item()
                ratio = (rest.norm(dim=-1) / first.norm()).mean().item()
                rows.append({"prompt": name, "repeats": count, "leading": leading, "layer": layer, "cosine": cosine, "norm_ratio": ratio})
        if progress is not None:
            progress((k + 1) / len(repeats), f"hidden states at {count} repeats")
    return pd.DataFrame(rows)


def top_sink_heads(session: Session, k: int, calibration_length: int = 256, leading: bool = False) -> list[tuple[int, int]]:
    """The ``k`` heads with the highest sink score on prose of ``calibration_length`` tokens —
    prose, so that choosing the heads does not look at the repeated prompts they are measured on."""
    first = [leading_token(session.tokenizer)] if leading else []
    scores = sink_scores(session, first + prose_ids(session.tokenizer, calibration_length))
    top = scores.sort_values("score", ascending=False).head(k)
    return [(int(r.layer), int(r.head)) for r in top.itertuples()]


def sink_fractions(
    session: Session, heads: Sequence[tuple[int, int]], word: str, repeats: Sequence[int], leading: bool, progress: Progress | None = None
) -> pd.DataFrame:
    """DataFrame(prompt, repeats, leading, layer, head, sink_fraction): the attention each head
    gives position 0, averaged over the later positions, for the repeated prompt and prose of the
    same length."""
    rows = []
    for k, count in enumerate(repeats):
        for name, ids in prompt_pair(session.tokenizer, word, count, leading).items():
            scores = sink_scores(session, ids).set_index(["layer", "head"])["score"]
            rows += [{"prompt": name, "repeats": count, "leading": leading, "layer": layer, "head": head, "sink_fraction": float(scores[(layer, head)])} for layer, head in heads]
        if progress is not None:
            progress((k + 1) / len(repeats), f"sink heads at {count} repeats")
    return pd.DataFrame(rows)


def sink_neurons(session: Session, word: str, repeats: int, layers: Sequence[int], leading: bool, top: int = 5) -> pd.DataFrame:
    """Candidate sink neurons of ``layers``: per layer, the ``top`` neurons whose activation at
    position 0 of prose lies furthest from the layer's median, in median absolute deviations
    (robust_z); a candidate when |robust_z| ≥ ``OUTLIER_MADS``. Beside it, the neuron's mean
    activation at the later positions of prose and of the repeated prompt, and at position 0 of
    the repeated prompt. DataFrame(layer, neuron, leading, first_prose, rest_prose, first_repeated,
    rest_repeated, robust_z, candidate)."""
    pair = prompt_pair(session.tokenizer, word, repeats, leading)
    acts = {name: mlp_activations(session, ids, layers) for name, ids in pair.items()}
    rows = []
    for layer in layers:
        first = acts["prose"][layer][0]
        median = np.median(first)
        mad = np.median(np.abs(first - median)) or 1e-12
        z = (first - median) / mad
        for neuron in np.argsort(-np.abs(z))[:top]:
            rows.append({
                "layer": layer, "neuron": int(neuron), "leading": leading,
                "first_prose": float(first[neuron]), "rest_prose": float(acts["prose"][layer][1:, neuron].mean()),
                "first_repeated": float(acts["repeated"][layer][0, neuron]),
                "rest_repeated": float(acts["repeated"][layer][1:, neuron].mean()),
                "robust_z": float(z[neuron]), "candidate": bool(abs(z[neuron]) >= OUTLIER_MADS),
            })  # fmt: skip
    return pd.DataFrame(rows)


def mechanism(
    session: Session, word: str, repeats: Sequence[int], heads: int = 8, neuron_layers: int = 4, progress: Progress | None = None
) -> dict[str, pd.DataFrame]:
    """The three measurements (geometry, sink fractions, sink neurons) with and without a
    leading special token; the neurons in the first ``neuron_layers`` layers, at the most repeats."""
    session.require_weights("The sink mechanism")
    tables: dict[str, list[pd.DataFrame]] = {"geometry": [], "sink_fractions": [], "sink_neurons": []}
    for k, leading in enumerate((False, True)):
        part = scaled_progress(progress, k / 2, (k + 1) / 2, "leading token: " if leading else "no leading token: ")
        tables["geometry"].append(geometry(session, word, repeats, leading, scaled_progress(part, 0, 0.5)))
        chosen = top_sink_heads(session, heads, leading=leading)
        tables["sink_fractions"].append(sink_fractions(session, chosen, word, repeats, leading, scaled_progress(part, 0.5, 0.95)))
        tables["sink_neurons"].append(sink_neurons(session, word, max(repeats), range(min(neuron_layers, session.info.n_layers)), leading))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
