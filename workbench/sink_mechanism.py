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

And the causal test (``causal_test``): the divergence rate on the same seeds with the sink
neurons ablated, with the sink heads scaled down, and with as many randomly chosen neurons and
heads; paired comparisons with the baseline (McNemar), and the perplexity of held-out prose
under each condition, so that damage is visible.

Position 0 is the first word when the tokenizer adds no BOS token (the default model's does
not); ``leading=True`` puts a special token first, so position 0 is that token and the word or
the prose starts at 1. Every table says which it measured.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.attention import (
    ablated_neurons,
    hidden_states,
    mlp_activations,
    mlp_width,
    scaled_heads,
    sink_scores,
)
from workbench.config import DATA_DIR, SamplingConfig
from workbench.contract import Progress, scaled_progress
from workbench.corpus import REFERENCE_CORPUS, read_documents
from workbench.divergence import run
from workbench.prompts import repeated_token_prompt
from workbench.sampling import text_logprobs
from workbench.session import Session
from workbench.stats import mcnemar

SHIPPED_MECHANISM = DATA_DIR / "benchmarks" / "sink-divergence"  # benchmarks/sink_divergence.py on the default model
TABLES = ("geometry", "sink_fractions", "sink_neurons")
HELD_OUT_PROSE = (
    "us-constitution-preamble.txt",
    "declaration-of-independence-opening.txt",
    "hamlet-to-be-or-not-to-be.txt",
)
OUTLIER_MADS = (
    20.0  # a neuron is a candidate when its first-position activation is this many MADs from the layer's median
)


def leading_token(tokenizer) -> int:
    """The special token put first when ``leading``: the tokenizer's BOS, else its end-of-text token."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError("The tokenizer has neither a BOS nor an end-of-text token to put first.")
    return token


def prose_ids(tokenizer, length: int) -> list[int]:
    """``length`` tokens of ordinary text: the shipped reference corpus's documents in name
    order (literature, speeches and licences), those kept for ``held_out_perplexity`` left out."""
    documents = [text for name, text in sorted(read_documents(REFERENCE_CORPUS)) if name not in HELD_OUT_PROSE]
    ids = tokenizer.encode("\n\n".join(documents), add_special_tokens=False)
    if len(ids) < length:
        raise ValueError(f"The prose holds {len(ids)} tokens; {length} were asked for.")
    return ids[:length]


def prompt_pair(tokenizer, word: str, repeats: int, leading: bool) -> dict[str, list[int]]:
    """The repeated prompt (the word ``repeats`` times, plain) and length-matched prose, both
    after the leading special token when ``leading``."""
    repeated = list(repeated_token_prompt(tokenizer, word, repeats).token_ids)
    first = [leading_token(tokenizer)] if leading else []
    return {"repeated": first + repeated, "prose": first + prose_ids(tokenizer, len(repeated))}


def geometry(
    session: Session, word: str, repeats: Sequence[int], leading: bool, progress: Progress | None = None
) -> pd.DataFrame:
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
                rows.append(
                    {
                        "prompt": name,
                        "repeats": count,
                        "leading": leading,
                        "layer": layer,
                        "cosine": cosine,
                        "norm_ratio": ratio,
                    }
                )
        if progress is not None:
            progress((k + 1) / len(repeats), f"hidden states at {count} repeats")
    return pd.DataFrame(rows)


def top_sink_heads(
    session: Session, k: int, calibration_length: int = 256, leading: bool = False
) -> list[tuple[int, int]]:
    """The ``k`` heads with the highest sink score on prose of ``calibration_length`` tokens —
    prose, so that choosing the heads does not look at the repeated prompts they are measured on."""
    first = [leading_token(session.tokenizer)] if leading else []
    scores = sink_scores(session, first + prose_ids(session.tokenizer, calibration_length))
    top = scores.sort_values("score", ascending=False).head(k)
    return [(int(r.layer), int(r.head)) for r in top.itertuples()]


def sink_fractions(
    session: Session,
    heads: Sequence[tuple[int, int]],
    word: str,
    repeats: Sequence[int],
    leading: bool,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """DataFrame(prompt, repeats, leading, layer, head, sink_fraction): the attention each head
    gives position 0, averaged over the later positions, for the repeated prompt and prose of the
    same length."""
    rows = []
    for k, count in enumerate(repeats):
        for name, ids in prompt_pair(session.tokenizer, word, count, leading).items():
            scores = sink_scores(session, ids).set_index(["layer", "head"])["score"]
            rows += [
                {
                    "prompt": name,
                    "repeats": count,
                    "leading": leading,
                    "layer": layer,
                    "head": head,
                    "sink_fraction": float(scores[(layer, head)]),
                }
                for layer, head in heads
            ]
        if progress is not None:
            progress((k + 1) / len(repeats), f"sink heads at {count} repeats")
    return pd.DataFrame(rows)


def sink_neurons(
    session: Session, word: str, repeats: int, layers: Sequence[int], leading: bool, top: int = 5
) -> pd.DataFrame:
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
    session: Session,
    word: str,
    repeats: Sequence[int],
    heads: int = 8,
    neuron_layers: int = 4,
    progress: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """The three measurements (geometry, sink fractions, sink neurons) with and without a
    leading special token; the neurons in the first ``neuron_layers`` layers, at the most repeats."""
    session.require_weights("The sink mechanism")
    tables: dict[str, list[pd.DataFrame]] = {"geometry": [], "sink_fractions": [], "sink_neurons": []}
    for k, leading in enumerate((False, True)):
        part = scaled_progress(progress, k / 2, (k + 1) / 2, "leading token: " if leading else "no leading token: ")
        tables["geometry"].append(geometry(session, word, repeats, leading, scaled_progress(part, 0, 0.5)))
        chosen = top_sink_heads(session, heads, leading=leading)
        tables["sink_fractions"].append(
            sink_fractions(session, chosen, word, repeats, leading, scaled_progress(part, 0.5, 0.95))
        )
        tables["sink_neurons"].append(
            sink_neurons(session, word, max(repeats), range(min(neuron_layers, session.info.n_layers)), leading)
        )
    return {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}


TARGETS = {
    "sink neurons ablated": "random neurons",
    "sink heads scaled": "random heads",
}  # targeted condition -> its random controls
Condition = Callable[[], AbstractContextManager]


def conditions(
    session: Session,
    neurons: Mapping[int, Sequence[int]],
    heads: Sequence[tuple[int, int]],
    head_scale: float = 0.0,
    draws: int = 5,
    seed: int = 0,
) -> dict[str, Condition]:
    """The causal test's conditions: baseline; the sink ``neurons`` ablated; the sink ``heads``
    scaled by ``head_scale``; and ``draws`` controls of each: as many neurons, drawn at random
    in the same layers, and as many heads, drawn at random among the others (seeded)."""
    rng = random.Random(seed)
    widths = {layer: mlp_width(session, layer) for layer in neurons}
    others = [
        (layer, head)
        for layer in range(session.info.n_layers)
        for head in range(session.info.n_heads)
        if (layer, head) not in set(heads)
    ]
    chosen: dict[str, Condition] = {"baseline": nullcontext}
    if neurons:
        chosen["sink neurons ablated"] = lambda: ablated_neurons(session, neurons)
    if heads:
        chosen["sink heads scaled"] = lambda: scaled_heads(session, {h: head_scale for h in heads})
    for draw in range(draws):
        if neurons:
            drawn = {
                layer: rng.sample([i for i in range(widths[layer]) if i not in set(picked)], len(picked))
                for layer, picked in neurons.items()
            }
            chosen[f"random neurons {draw}"] = lambda drawn=drawn: ablated_neurons(session, drawn)
        if heads:
            drawn_heads = rng.sample(others, len(heads))
            chosen[f"random heads {draw}"] = lambda drawn_heads=drawn_heads: scaled_heads(
                session, {h: head_scale for h in drawn_heads}
            )
    return chosen


def held_out_perplexity(session: Session) -> float:
    """exp of the mean token NLL of prose that the mechanism's own measurements do not use."""
    documents = dict(read_documents(REFERENCE_CORPUS))
    logprobs = np.concatenate(text_logprobs(session, [documents[name] for name in HELD_OUT_PROSE]))
    return float(np.exp(-logprobs.mean()))


def causal_test(
    session: Session,
    prompts: Sequence[tuple[str, int, str | None]],
    chosen: Mapping[str, Condition],
    cfg: SamplingConfig,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every prompt (word, repeats, template) under every condition, on the same seeds (``cfg``).

    Returns (per_sample, summary). per_sample: prompt, condition, sample, seed, outcome,
    escaped. summary, per prompt and condition: the divergence rate = escaped ÷ (escaped +
    repeated only), n, held-out prose perplexity, and against the baseline (paired by seed;
    a sample that did not escape counts as not escaped): difference in the share escaped with its
    95% interval, McNemar's p, and ``effect`` — the interval excludes 0 and no random control of
    the same kind moved the share as much."""
    session.require_weights("The causal test of the sink mechanism")
    rows, perplexity = [], {}
    steps = len(prompts) * len(chosen)
    for c, (name, condition) in enumerate(chosen.items()):
        with condition():
            perplexity[name] = held_out_perplexity(session)
            for p, (word, repeats, template) in enumerate(prompts):
                step = c * len(prompts) + p
                part = scaled_progress(progress, step / steps, (step + 1) / steps, f"{name}, {word} × {repeats}: ")
                table = run(session, [word], [repeats], cfg, template=template, progress=part)
                label = f"{template or 'plain'} {word} × {repeats}"
                rows += [
                    {
                        "prompt": label,
                        "condition": name,
                        "sample": r.sample,
                        "seed": r.seed,
                        "outcome": r.outcome,
                        "escaped": r.outcome == "escaped",
                    }
                    for r in table.itertuples()
                ]
    per_sample = pd.DataFrame(rows)
    return per_sample, summarize_causal(per_sample, perplexity)


def summarize_causal(per_sample: pd.DataFrame, perplexity: Mapping[str, float]) -> pd.DataFrame:
    """The causal test's summary (see ``causal_test``) from its per-sample table."""
    rows = []
    for prompt, group in per_sample.groupby("prompt", sort=False):
        by_condition = {name: part.sort_values("sample") for name, part in group.groupby("condition", sort=False)}
        baseline = by_condition["baseline"]["escaped"].to_numpy()
        for name, part in by_condition.items():
            kept = part["outcome"].isin(["escaped", "repeated_only"])
            test = mcnemar(part["escaped"].to_numpy(), baseline)
            rows.append({"prompt": prompt, "condition": name, "rate": part["escaped"].sum() / max(kept.sum(), 1) if kept.any() else np.nan,
                         "n": int(kept.sum()), "perplexity": perplexity[name], "difference": test["difference"], "ci_low": test["ci_low"],
                         "ci_high": test["ci_high"], "p_value": test["p_value"]})  # fmt: skip
    summary = pd.DataFrame(rows)
    summary["effect"] = False
    for _prompt, group in summary.groupby("prompt"):
        for kind, control in TARGETS.items():
            target = group[group["condition"] == kind]
            if target.empty:
                continue
            row = target.iloc[0]
            controls = group.loc[group["condition"].str.startswith(control), "difference"].abs()
            excludes_zero = row["ci_low"] > 0 or row["ci_high"] < 0
            summary.loc[target.index, "effect"] = bool(
                excludes_zero and (controls.empty or abs(row["difference"]) > controls.max())
            )
    return summary


def targeted(summary: pd.DataFrame) -> pd.DataFrame:
    """Each prompt's targeted conditions beside its baseline and random controls: the summary's
    row of the condition, with base_rate, base_n, base_perplexity, controls (how many),
    control_move (the largest |difference| among them) and control_perplexity (their largest)."""
    rows = []
    for _prompt, group in summary.groupby("prompt", sort=False):
        base = group[group["condition"] == "baseline"].iloc[0]
        for kind, control in TARGETS.items():
            target = group[group["condition"] == kind]
            if target.empty:
                continue
            controls = group[group["condition"].str.startswith(control)]
            rows.append(
                target.iloc[0].to_dict()
                | {"base_rate": base["rate"], "base_n": int(base["n"]), "base_perplexity": base["perplexity"], "controls": len(controls),
                   "control_move": controls["difference"].abs().max(), "control_perplexity": controls["perplexity"].max()}
            )  # fmt: skip
    return pd.DataFrame(rows)


def describe_causal(summary: pd.DataFrame) -> list[str]:
    """The causal test in sentences: per prompt and targeted condition, the share escaped against
    the baseline on the same seeds (difference, 95% interval, McNemar p), the most a random
    control of its kind moved it, held-out perplexity beside the baseline's, and the verdict."""
    lines = []
    for row in targeted(summary).itertuples():
        if row.effect:
            verdict = "an effect beyond its random controls"
        elif row.ci_low <= 0 <= row.ci_high:
            verdict = "not distinguishable from the baseline"
        else:
            verdict = "no effect claimed: a random control moved it as much"
        lines.append(
            f"{row.prompt}, {row.condition}: divergence rate {row.base_rate:.2f} → {row.rate:.2f}; share escaped {row.difference:+.2f} "
            f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}] against the baseline on the same {row.base_n} seeds (McNemar p "
            f"{row.p_value:.2g}); its {row.controls} random controls moved it by up to {row.control_move:.2f}; held-out prose "
            f"perplexity {row.base_perplexity:.1f} → {row.perplexity:.1f} (its controls up to {row.control_perplexity:.1f}): {verdict}"
        )
    return lines


def save_result(result: Mapping, folder: str | Path) -> Path:
    """Write a mechanism run: its tables as CSV, the causal summary when there is one, the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        result[name].to_csv(folder / f"{name}.csv", index=False)
    if result.get("causal") is not None:
        result["causal"].to_csv(folder / "causal.csv", index=False)
    (folder / "manifest.json").write_text(json.dumps(result["manifest"], indent=2))
    return folder


def load_result(folder: str | Path | None = None) -> dict | None:
    """A saved mechanism run (default: the shipped one, from ``benchmarks/sink_divergence.py``):
    its tables, the causal test's summary when it ran, and the manifest; None when there is none."""
    folder = Path(folder or SHIPPED_MECHANISM)
    if not all((folder / f"{name}.csv").is_file() for name in TABLES) or not (folder / "manifest.json").is_file():
        return None
    result = {name: pd.read_csv(folder / f"{name}.csv") for name in TABLES}
    result["causal"] = pd.read_csv(folder / "causal.csv") if (folder / "causal.csv").is_file() else None
    result["manifest"] = json.loads((folder / "manifest.json").read_text())
    return result


def layer_means(geometry_table: pd.DataFrame) -> pd.DataFrame:
    """The geometry averaged over layers: DataFrame(leading, repeats, prompt, cosine, norm_ratio)."""
    return geometry_table.groupby(["leading", "repeats", "prompt"], as_index=False)[["cosine", "norm_ratio"]].mean()
