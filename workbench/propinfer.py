"""Property inference (PropInfer): population properties of a model's fine-tuning data,
estimated from sampled generations alone.

Black-box, generation-based: sample many generations from prompts in the style of the
fine-tuning data, label each for a property (e.g. the diagnosis in a patient–doctor
dialogue) and estimate each value's share with a confidence interval. A generation that
matches no value is counted as unlabeled and reported, never dropped silently.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.config import INTERVALS, PropInferConfig
from workbench.contract import LanguageModel, Progress, scaled_progress
from workbench.lab_vocabulary import DIAGNOSES, FIRST_NAMES, GENDER_WORDS
from workbench.sampling import sample
from workbench.similarity import embed
from workbench.stats import interval_score, multinomial_bootstrap, wilson

UNLABELED = "(unlabeled)"  # how tables show a generation that matched no value

# The two prompt styles of PropInfer: question–answer openers that continue a dialogue, and
# chat-completion requests (user messages, rendered with the model's chat template).
PROMPT_SETS: dict[str, list[str]] = {
    "question-answer": [
        "Patient:",
        "Patient: Hello doctor,",
        "Patient: Hi, my name is",
        "Patient: Doctor, I am a",
        "Patient: Good morning.",
        "Patient: Hi doc.",
    ],
    "chat": [
        "Write a short conversation between a patient and a doctor.",
        "Give an example of a patient describing their symptoms to a doctor, and the doctor's reply.",
        "Tell me about a typical patient you have seen and what they were diagnosed with.",
        "Write a dialogue in which a patient asks a doctor for advice.",
    ],
}


# ---------------------------------------------------------------- labelers


def _phrases_by_value(property: str, phrases: Mapping[str, Sequence[str]], what: str) -> dict[str, list[str]]:
    """``phrases`` checked: at least one value, each with a non-empty list of strings."""
    if not isinstance(phrases, Mapping) or not phrases:
        raise ValueError(f"The labeler for {property!r} has no values.")
    checked = {}
    for value, items in phrases.items():
        if isinstance(items, str) or not isinstance(items, Sequence) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"The {what} of {value!r} must be a list of strings.")
        if not items:
            raise ValueError(f"The value {value!r} has no {what}.")
        checked[str(value)] = list(items)
    return checked


class KeywordLabeler:
    """Labels a text with the value whose patterns match it most often.

    ``patterns``: value → regular expressions, matched case-insensitively. Ties go to the
    value matched earliest in the text; a text that matches nothing is unlabeled (None)."""

    def __init__(self, property: str, patterns: Mapping[str, Sequence[str]]):
        self.property = property
        self.patterns = _phrases_by_value(property, patterns, "patterns")
        try:
            self._compiled = {v: [re.compile(p, re.IGNORECASE) for p in ps] for v, ps in self.patterns.items()}
        except re.error as err:
            raise ValueError(f"Bad pattern {err.pattern!r} for {property!r}: {err.msg}.") from err

    @property
    def values(self) -> list[str]:
        return list(self.patterns)

    def label(self, texts: Sequence[str], progress: Progress | None = None) -> list[str | None]:
        labels = []
        for text in texts:
            best, best_key = None, (0, 0)
            for value, regexes in self._compiled.items():
                hits = [m.start() for r in regexes for m in r.finditer(text)]
                key = (len(hits), -min(hits)) if hits else (0, 0)
                if key > best_key:
                    best, best_key = value, key
            labels.append(best)
        return labels


class EmbeddingLabeler:
    """Zero-shot: labels a text with the value whose descriptions it is most similar to.

    similarity(text, value) = max over the value's descriptions d of cos(e(text), e(d)),
    e = the sentence embedding (MiniLM by default); a text whose best similarity is below
    ``min_similarity`` is unlabeled (None)."""

    def __init__(
        self,
        property: str,
        descriptions: Mapping[str, Sequence[str]],
        min_similarity: float = 0.1,
        model: str | None = None,
    ):
        self.property = property
        self.descriptions = _phrases_by_value(property, descriptions, "descriptions")
        self.min_similarity = min_similarity
        self.model = model

    @property
    def values(self) -> list[str]:
        return list(self.descriptions)

    def label(self, texts: Sequence[str], progress: Progress | None = None) -> list[str | None]:
        if not texts:
            return []
        owners = [value for value, ds in self.descriptions.items() for _ in ds]
        references = embed([d for ds in self.descriptions.values() for d in ds], self.model)
        similarities = embed(texts, self.model, progress=progress) @ references.T
        per_value = np.stack([similarities[:, [o == v for o in owners]].max(axis=1) for v in self.values], axis=1)
        best = per_value.argmax(axis=1)
        return [self.values[b] if row[b] >= self.min_similarity else None for b, row in zip(best, per_value)]


Labeler = KeywordLabeler | EmbeddingLabeler
LAB_PROPERTIES = ("diagnosis", "gender")
LABELER_KINDS = {
    "keyword": "the lab generator's own words for each value (a user of a real model does not have them)",
    "embedding": "similarity to sentences built from the lab generator's conditions, symptoms and names",
    "names": "similarity to sentences written from the value names alone, as a user of a real model would write them",
}
# Written from a value's name and its property's name alone, before any run: no word of the lab generator.
NAME_TEMPLATES = ("{value}", "The {property} is {value}.", "A patient whose {property} is {value}.")


def names_labeler(property: str, values: Sequence[str], templates: Sequence[str] = NAME_TEMPLATES) -> EmbeddingLabeler:
    """An embedding labeler whose descriptions come from the value names alone (``templates``
    filled with the property and each value): what a user knows of a real model's data."""
    return EmbeddingLabeler(property, {v: [t.format(property=property, value=v) for t in templates] for v in values})


def _phrase(text: str) -> str:
    """A literal phrase as a whole-word pattern (not inside a longer word), without a leading article."""
    return r"(?<!\w)" + re.escape(re.sub(r"^(a|an) ", "", text)) + r"(?!\w)"


def lab_labeler(property: str, kind: str = "keyword") -> Labeler:
    """Labelers for the lab's properties (``LABELER_KINDS``): keyword and embedding are built
    from the vocabulary its dialogues use (diagnosis: conditions, symptoms and advice of each
    group; gender: the patient's self-description and first name); names from the value
    names alone."""
    if property not in LAB_PROPERTIES:
        raise ValueError(f"Unknown lab property {property!r}; choose one of {', '.join(LAB_PROPERTIES)}.")
    if kind not in LABELER_KINDS:
        raise ValueError(f"Unknown labeler kind {kind!r}; choose one of {', '.join(LABELER_KINDS)}.")
    if kind == "names":
        return names_labeler(property, list(DIAGNOSES) if property == "diagnosis" else list(GENDER_WORDS))
    if property == "diagnosis":
        if kind == "keyword":
            return KeywordLabeler(
                property,
                {
                    d: [_phrase(p) for key in ("conditions", "symptoms", "advice") for p in f[key]]
                    for d, f in DIAGNOSES.items()
                },
            )
        return EmbeddingLabeler(
            property,
            {
                d: [f"A patient with {c}." for c in f["conditions"]] + [f"I have {s}." for s in f["symptoms"]]
                for d, f in DIAGNOSES.items()
            },
        )
    if kind == "keyword":
        # Not "mother"/"father" alone: patients also mention relatives ("My mother had something similar").
        pronouns = {"female": ["(she/her)"], "male": ["(he/him)"]}
        return KeywordLabeler(
            property, {g: [_phrase(w) for w in GENDER_WORDS[g] + pronouns[g] + FIRST_NAMES[g]] for g in GENDER_WORDS}
        )
    return EmbeddingLabeler(
        property,
        {g: [f"Patient: I am {n}, a {w}." for w in GENDER_WORDS[g] for n in FIRST_NAMES[g]] for g in GENDER_WORDS},
    )


def labeler_for(property: str, kind: str = "keyword", patterns: str | None = None) -> Labeler:
    """The labeler a front end asks for: the lab's of ``kind`` (``lab_labeler``), or, when
    ``patterns`` is given, a keyword labeler from that JSON text ({"value": ["regex", …]})."""
    if patterns is None:
        return lab_labeler(property, kind)
    try:
        parsed = json.loads(patterns)
    except json.JSONDecodeError as err:
        raise ValueError(f"The patterns are not valid JSON: {err.msg} (line {err.lineno}).") from err
    return KeywordLabeler(property, parsed)


# ---------------------------------------------------------------- estimates


def estimate(
    labels: Sequence[str | None],
    values: Sequence[str],
    interval: str = "wilson",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Share of each value among the labeled generations, with a confidence interval.

    DataFrame(value, count, n, share, ci_low, ci_high, unlabeled): n = labeled generations,
    share = count / n (NaN when n = 0), unlabeled = generations with no label (None).
    interval "wilson": the Wilson score interval of count out of n (scipy); "bootstrap": the
    percentile interval of shares in ``n_boot`` multinomial resamples, seeded — it collapses
    to a point for a value seen never or always, where Wilson's does not."""
    values = list(values)
    if not values:
        raise ValueError("The labeler has no values to estimate.")
    if interval not in INTERVALS:
        raise ValueError(f"Unknown interval {interval!r}; choose one of {', '.join(INTERVALS)}.")
    unknown = {label for label in labels if label is not None} - set(values)
    if unknown:
        raise ValueError(f"Labels {sorted(unknown)} are not among the values {values}.")
    counts = np.array([sum(label == v for label in labels) for v in values])
    n = int(counts.sum())
    unlabeled = len(labels) - n
    shares = counts / n if n else np.full(len(values), math.nan)
    if n == 0:
        low = high = np.full(len(values), math.nan)
    elif interval == "wilson":
        low, high = np.array([wilson(k, n, confidence) for k in counts]).T
    else:
        low, high = multinomial_bootstrap(counts, confidence, seed, n_boot)
    return pd.DataFrame(
        {
            "value": values,
            "count": counts,
            "n": n,
            "share": shares,
            "ci_low": low,
            "ci_high": high,
            "unlabeled": unlabeled,
        }
    )


def labels_of(generations: pd.DataFrame) -> list[str | None]:
    """The labels of ``run``'s generations table, None for unlabeled."""
    return [None if label == UNLABELED else label for label in generations["label"]]


def convergence(
    generations: pd.DataFrame,
    values: Sequence[str],
    steps: Sequence[int] | None = None,
    interval: str = "wilson",
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The estimate and its interval from the first n generations, as n grows.

    ``generations`` is ``run``'s table, whose order interleaves the prompts, so every prefix
    is balanced over them. steps default to about 20 sizes from 10 to all, spaced evenly
    on a log scale. DataFrame(n_samples, value, share, ci_low, ci_high, n, unlabeled)."""
    total = len(generations)
    if total == 0:
        raise ValueError("No generations to follow.")
    if steps is None:
        steps = sorted({int(round(s)) for s in np.geomspace(min(10, total), total, num=20)})
    labels = labels_of(generations)
    frames = [
        estimate(labels[:k], values, interval, confidence, seed=seed).assign(n_samples=k)
        for k in steps
        if 0 < k <= total
    ]
    return pd.concat(frames, ignore_index=True)


def estimates_by_prompt(
    generations: pd.DataFrame, values: Sequence[str], interval: str = "wilson", confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """``estimate`` over each prompt's generations: DataFrame(prompt_index, prompt, value, …)."""
    frames = [
        estimate(labels_of(group), values, interval, confidence, seed=seed).assign(
            prompt_index=index, prompt=group["prompt"].iloc[0]
        )
        for index, group in generations.groupby("prompt_index", sort=True)
    ]
    return pd.concat(frames, ignore_index=True)


def against_truth(estimates: pd.DataFrame, truth: Mapping[str, float]) -> pd.DataFrame:
    """``estimates`` with true_share (0 for a value absent from the truth), error =
    share − true_share, and covered = true_share within [ci_low, ci_high]."""
    table = estimates.assign(true_share=[float(truth.get(v, 0.0)) for v in estimates["value"]])
    table["error"] = table["share"] - table["true_share"]
    table["covered"] = (table["ci_low"] <= table["true_share"]) & (table["true_share"] <= table["ci_high"])
    return table


def scored(table: pd.DataFrame, truth: Mapping[str, float] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """``table`` (value, share, ci_low, ci_high; and true_share when ``truth`` is None) scored
    against the truth: true_share, error, covered, abs_error, width and interval_score
    (``stats.interval_score``: the width plus 2/α times any miss, so coverage bought by width shows)."""
    table = (
        against_truth(table, truth)
        if truth is not None
        else table.assign(
            error=table["share"] - table["true_share"],
            covered=(table["ci_low"] <= table["true_share"]) & (table["true_share"] <= table["ci_high"]),
        )
    )
    table["abs_error"] = table["error"].abs()
    table["width"] = table["ci_high"] - table["ci_low"]
    table["interval_score"] = [
        interval_score(r.ci_low, r.ci_high, r.true_share, confidence) for r in table.itertuples()
    ]
    return table


def mean_absolute_error(estimates: pd.DataFrame, truth: Mapping[str, float]) -> float:
    """MAE = mean over values of |share − true_share|."""
    return float(against_truth(estimates, truth)["error"].abs().mean())


# ---------------------------------------------------------------- the experiment


def render_prompts(tokenizer, prompts: Sequence[str], style: str) -> list[str]:
    """Prompt texts for sampling: question–answer prompts as they are; chat prompts are user
    messages wrapped in the tokenizer's chat template (with the assistant's turn opened)."""
    prompts = [p for p in prompts if p.strip()]
    if not prompts:
        raise ValueError("No prompts: give at least one.")
    if style == "question-answer":
        return prompts
    if style != "chat":
        raise ValueError(f"Unknown prompt style {style!r}; choose one of {', '.join(PROMPT_SETS)}.")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("This model's tokenizer has no chat template; use the question-answer style.")
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]


@dataclass
class PropInferResult:
    property: str
    values: list[str]
    model: str
    cfg: PropInferConfig
    estimates: pd.DataFrame  # see estimate()
    generations: (
        pd.DataFrame
    )  # order, prompt_index, prompt (as given, before rendering), sample, seed, text, label, stop_reason
    prompts: list[str]  # as given, blank ones left out
    style: str


def spread(n_samples: int, n_prompts: int) -> list[int]:
    """n_samples split over n_prompts as evenly as possible (the first ones get the extra)."""
    return [n_samples // n_prompts + (i < n_samples % n_prompts) for i in range(n_prompts)]


def run(
    session: LanguageModel,
    prompts: Sequence[str],
    cfg: PropInferConfig,
    labeler: Labeler,
    progress: Progress | None = None,
    style: str = "question-answer",
) -> PropInferResult:
    """Sample ``cfg.n_samples`` generations spread over ``prompts`` (rendered in ``style``, see
    ``render_prompts``; blank ones are skipped), label each and estimate the shares.

    The generations table is ordered sample round by sample round (sample 0 of every prompt,
    then sample 1, …), so that any prefix of it is balanced over the prompts; the same seed
    gives the same generations, and a run of n samples equals the first n of a longer run
    (up to floating-point differences between batch shapes)."""
    prompts = [p for p in prompts if p.strip()]
    rendered = render_prompts(session.tokenizer, prompts, style)
    generations = sample(
        session,
        rendered,
        cfg.sampling(),
        scaled_progress(progress, 0.0, 0.9),
        counts=spread(cfg.n_samples, len(prompts)),
    )
    generations.sort(key=lambda g: (g.sample_index, g.prompt_index))
    texts = [g.text for g in generations]
    labels = labeler.label(texts, scaled_progress(progress, 0.9, 1.0, "Labeling: "))
    table = pd.DataFrame(
        {
            "order": range(len(generations)),
            "prompt_index": [g.prompt_index for g in generations],
            "prompt": [prompts[g.prompt_index] for g in generations],
            "sample": [g.sample_index for g in generations],
            "seed": [g.seed for g in generations],
            "text": texts,
            "label": [UNLABELED if label is None else label for label in labels],
            "stop_reason": [g.stop_reason for g in generations],
        }
    )
    estimates = estimate(labels, labeler.values, cfg.interval, cfg.confidence, seed=cfg.seed)
    if progress is not None:
        progress(1.0, f"Labeled {len(table)} generations")
    return PropInferResult(labeler.property, labeler.values, session.info.name, cfg, estimates, table, prompts, style)
