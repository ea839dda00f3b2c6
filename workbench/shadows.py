"""Shadow models: property inference calibrated on models whose truth is known.

A fine-tuned model's generations carry its base model's habits, so the shares read from
them are biased, and their sampling intervals do not show it. The shadow-model attack of
PropInfer (2025): fine-tune K shadow models of the same base on synthetic data whose shares
are drawn from a prior, sample each exactly as the target will be sampled, and learn how
the shares seen in their generations map to their true shares. Applied to the target, the
map gives a calibrated estimate whose interval adds the map's leave-one-shadow-out error
to the sampling noise.

A shadow set is a build (``workbench.builds``): ``shadows.json`` (the recipe, the command and
a record of each shadow built) and one folder per shadow, ``shadow-00`` …, each holding the
lab's ``dataset/`` (manifest with the truth), ``adapter/`` (float16 LoRA) and
``generations.jsonl`` (the sampled generations, unlabeled), so calibrating needs no model calls.

This module holds the recipe, the build, the shadow set (its sweep and fitted map) and
``calibrate``, which applies a set to a run; the maps themselves are in
``workbench.shadow_calibration``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.builds import Recipe, Step, StepBuild
from workbench.cache import cache_dir
from workbench.config import DATA_DIR, DEFAULT_MODEL, ModelSpec, PropInferConfig, setting
from workbench.contract import Progress, scaled_progress
from workbench.lab import finetune
from workbench.lab_data import LabDataset, make_dataset
from workbench.lab_vocabulary import DIAGNOSES, GENDER_WORDS
from workbench.propinfer import (
    PROMPT_SETS,
    Labeler,
    PropInferResult,
    against_truth,
    estimate,
    lab_labeler,
    labels_of,
    run,
    scored,
)
from workbench.registry import LAB_MODEL
from workbench.session import load_session
from workbench.shadow_calibration import Calibration, checked_method, feature_rows, word_patterns
from workbench.training import TrainingRecipe

SHIPPED_SHADOWS = DATA_DIR / "shadows"
LAB_VALUES = {"diagnosis": list(DIAGNOSES), "gender": list(GENDER_WORDS)}  # the properties whose truth shadows keep


def draw_shares(seed: int, k: int, alpha: float = 1.0) -> list[dict[str, dict[str, float]]]:
    """k draws of the lab's shares, {"diagnosis": {...}, "gender": {...}}, each property from
    a symmetric Dirichlet(alpha) prior (alpha = 1: uniform over all share vectors)."""
    if k < 1 or alpha <= 0:
        raise ValueError("Draw at least one set of shares, with a positive alpha.")
    rng = np.random.default_rng(seed)
    diagnoses = rng.dirichlet(np.full(len(DIAGNOSES), alpha), size=k)
    genders = rng.dirichlet(np.full(len(GENDER_WORDS), alpha), size=k)
    return [
        {"diagnosis": dict(zip(DIAGNOSES, map(float, d))), "gender": dict(zip(GENDER_WORDS, map(float, g)))}
        for d, g in zip(diagnoses, genders)
    ]


# ---------------------------------------------------------------- building


@dataclass(frozen=True, kw_only=True)
class ShadowRecipe(Recipe):
    """How a shadow set is built: ``k`` LoRA fine-tunes of ``base`` (``n_records`` dialogues,
    no canaries, ``epochs``, ``lr``, ``rank``, adapters saved in float16), shadow i on shares
    ``draw_shares(seed, k, alpha)[i]`` with dataset and training seed ``seed + i``; each
    sampled with ``n_samples`` generations of the ``style`` prompts (``prompts``; empty = the
    style's prompt set) with the sampling settings below, the same way a target must be."""

    WHAT = "shadow set"
    MANIFEST = "shadows.json"
    KIND = "shadows"

    base: str = setting(DEFAULT_MODEL, "the base model every shadow fine-tunes")
    k: int = setting(8, "shadow models")
    n_records: int = setting(120, "training records per shadow", flag="--n")
    epochs: int = setting(2, "training epochs")
    lr: float = setting(2e-3, "learning rate")
    rank: int = setting(6, "LoRA rank")
    # 120 optimizer steps at the lab's lr, as a standard lab's 114: Adam moves as far per step whatever the batch
    batch_size: int = setting(2, "training batch size")
    alpha: float = setting(1.0, "Dirichlet prior of the shares")
    seed: int = setting(0, "shadow i's dataset and training seed is seed + i")
    style: str = setting("question-answer", "prompt style", choices=PROMPT_SETS)
    prompts: tuple[str, ...] = setting(
        (), "a prompt (repeatable; default: the style's prompt set)", flag="--prompt", repeat=True
    )
    n_samples: int = setting(200, "generations sampled per shadow", flag="--samples")
    max_new_tokens: int = setting(PropInferConfig.max_new_tokens, "new tokens per generation, at most")
    temperature: float = setting(PropInferConfig.temperature, "0 = greedy")
    top_k: int = setting(PropInferConfig.top_k, "0 = off")
    top_p: float = setting(PropInferConfig.top_p, "nucleus sampling: 1.0 = off")

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(p for p in self.prompts if p.strip()))
        if self.k < 4:
            raise ValueError("A shadow set needs at least 4 shadows: its map is checked by leaving one out.")
        if self.n_records < 10 or self.epochs < 1 or self.rank < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("Shadows need at least 10 records, 1 epoch, rank 1 and batch size 1, and a positive lr.")
        if self.alpha <= 0:
            raise ValueError("The Dirichlet prior's alpha must be positive.")
        if self.style not in PROMPT_SETS:
            raise ValueError(f"Unknown prompt style {self.style!r}; choose one of {', '.join(PROMPT_SETS)}.")
        self.cfg()  # checks the sampling settings

    def cfg(self) -> PropInferConfig:
        """The sampling settings of the shadows' generations."""
        return PropInferConfig(self.n_samples, self.max_new_tokens, self.temperature, self.top_k, self.top_p, self.seed)

    def prompt_list(self) -> list[str]:
        return list(self.prompts) or PROMPT_SETS[self.style]

    def label(self) -> str:
        return f"{Path(self.base).name}-k{self.k}"

    def training(self, seed: int) -> TrainingRecipe:
        """The training of the shadow with this seed."""
        return TrainingRecipe(
            epochs=self.epochs, lr=self.lr, rank=self.rank, batch_size=self.batch_size, seed=seed, save_dtype="float16"
        )


def _shadow_name(index: int) -> str:
    return f"shadow-{index:02d}"


def build_shadows(
    out: str | Path, recipe: ShadowRecipe = ShadowRecipe(), progress: Progress | None = None, command: str = ""
) -> ShadowSet:
    """Build (or finish building) the shadow set of ``recipe`` into ``out``.

    Each shadow is a step of the one build mechanism (``workbench.builds``): written
    atomically, so an interrupted build keeps the shadows it finished and a second call builds
    only the missing ones; a folder holding another recipe is refused. Progress runs over all
    k shadows (training, then sampling)."""
    built = StepBuild.start(out, recipe, command)
    shares = draw_shares(recipe.seed, recipe.k, recipe.alpha)
    steps = []
    for i, drawn in enumerate(shares):
        make = partial(_build_one, recipe=recipe, shares=drawn, seed=recipe.seed + i)
        steps.append(Step(_shadow_name(i), make, recipe.seed + i, f"Shadow {i + 1}/{recipe.k}"))
    built.run(steps, progress, command)
    return ShadowSet.load(built.folder)


def _build_one(folder: Path, progress: Progress | None, recipe: ShadowRecipe, shares: dict, seed: int) -> None:
    dataset = make_dataset(
        n=recipe.n_records,
        shares=shares["diagnosis"],
        gender_shares=shares["gender"],
        canaries=(),
        n_holdout=0,
        seed=seed,
    )
    dataset.save(folder / "dataset")
    finetune(
        recipe.base,
        dataset,
        folder / "adapter",
        recipe.training(seed),
        progress=scaled_progress(progress, 0.0, 0.65, "training, "),
    )
    session = load_session(ModelSpec(recipe.base, adapter=str(folder / "adapter")))
    result = run(
        session,
        recipe.prompt_list(),
        recipe.cfg(),
        lab_labeler("diagnosis"),
        scaled_progress(progress, 0.65, 1.0),
        recipe.style,
    )
    result.generations.drop(columns="label").to_json(folder / "generations.jsonl", orient="records", lines=True)
    del session
    gc.collect()


# ---------------------------------------------------------------- the shadow set


@dataclass
class Shadow:
    name: str
    truth: dict[str, dict[str, float]]  # property -> value -> realized share in its training data
    generations: pd.DataFrame  # run()'s table without labels


@dataclass
class ShadowSet:
    folder: Path
    recipe: ShadowRecipe
    shadows: list[Shadow]
    command: str = ""
    _labels: dict = field(default_factory=dict, repr=False)  # id(labeler) -> (labeler, labels per shadow)

    @classmethod
    def load(cls, folder: str | Path) -> ShadowSet:
        """A finished shadow set; ValueError for a broken or unfinished one."""
        folder = Path(folder)
        built = StepBuild.load(folder, ShadowRecipe)
        recipe = built.recipe
        done = [i for i in range(recipe.k) if built.done(_shadow_name(i))]
        if len(done) < recipe.k:
            raise ValueError(
                f"{folder} holds {len(done)} of its {recipe.k} shadows; finish it with `workbench shadows build --out {folder}` "
                "and the same settings."
            )
        shadows = []
        for i in range(recipe.k):
            path = folder / _shadow_name(i)
            truth = LabDataset.load(path / "dataset").truth["realized"]
            try:
                generations = pd.read_json(path / "generations.jsonl", lines=True, dtype={"text": str})
            except ValueError as err:
                raise ValueError(f"{path / 'generations.jsonl'} is not a generations table: {err}") from err
            shadows.append(Shadow(path.name, truth, generations))
        return cls(folder, recipe, shadows, built.command)

    def truth(self, property: str, values: Sequence[str]) -> np.ndarray:
        """K × V: each shadow's realized share of each value (0 where absent)."""
        return np.array([[s.truth[property].get(v, 0.0) for v in values] for s in self.shadows])

    def labels(self, labeler: Labeler) -> list[list[str | None]]:
        """Every shadow's generations labeled by ``labeler`` (kept for the next call with it)."""
        if id(labeler) not in self._labels:
            if labeler.property not in LAB_VALUES:
                raise ValueError(
                    f"The shadows know the truth of {' and '.join(LAB_VALUES)}, not of {labeler.property!r}."
                )
            known = LAB_VALUES[labeler.property]
            if not set(labeler.values) <= set(known):
                raise ValueError(
                    f"The shadows know the true shares of {labeler.property} values {known}; "
                    f"the labeler's values {labeler.values} are not all among them. Use the lab's labelers."
                )
            self._labels[id(labeler)] = (labeler, [labeler.label(s.generations["text"].tolist()) for s in self.shadows])
        return self._labels[id(labeler)][1]

    def observations(self, labeler: Labeler, method: str = "pooled") -> list[np.ndarray]:
        """Every shadow's feature rows (see ``feature_rows``): word frequencies for ridge."""
        words = word_patterns(labeler.property) if checked_method(method) == "ridge" else None
        return [
            feature_rows(labels, labeler.values, s.generations["text"].tolist(), words)
            for s, labels in zip(self.shadows, self.labels(labeler))
        ]

    def fit(
        self, labeler: Labeler, method: str = "pooled", confidence: float = 0.95, anchor: Sequence[float] | None = None
    ) -> Calibration:
        """The calibration map learned on all shadows (``anchor``: the base's shares, for "base")."""
        rows = self.observations(labeler, method)
        return Calibration(method, confidence, anchor).fit(
            rows, self.truth(labeler.property, labeler.values), labeler.values
        )

    def sweep(
        self, labeler: Labeler, method: str = "pooled", confidence: float = 0.95, anchor: Sequence[float] | None = None
    ) -> pd.DataFrame:
        """Estimate against truth on every shadow, naive and calibrated — PropInfer's main figure.

        The calibrated estimate of shadow k comes from a map fitted on the other shadows
        (its interval from their own leave-one-out errors), so it is an honest test.
        DataFrame(shadow, value, true_share, estimate ("naive" or "calibrated"), share,
        ci_low, ci_high, covered, error)."""
        values = labeler.values
        rows = self.observations(labeler, method)
        truth = self.truth(labeler.property, values)
        frames = []
        for k, (shadow, labels) in enumerate(zip(self.shadows, self.labels(labeler))):
            true = dict(zip(values, truth[k]))
            naive = against_truth(estimate(labels, values, "wilson", confidence), true)
            others = [i for i in range(len(rows)) if i != k]
            calibrated = (
                Calibration(method, confidence, anchor)
                .fit([rows[i] for i in others], truth[others], values)
                .predict(rows[k])
            )
            calibrated = calibrated.rename(columns={"calibrated": "share", "cal_low": "ci_low", "cal_high": "ci_high"})
            for name, table in (("naive", naive), ("calibrated", against_truth(calibrated, true))):
                frames.append(
                    table[["value", "true_share", "share", "ci_low", "ci_high", "covered", "error"]].assign(
                        shadow=shadow.name, estimate=name
                    )
                )
        columns = ["shadow", "value", "true_share", "estimate", "share", "ci_low", "ci_high", "covered", "error"]
        return pd.concat(frames, ignore_index=True)[columns]


def summarize(sweep: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per estimate (naive, calibrated): mae, covered (intervals that cover the truth), intervals,
    width (mean interval width) and interval_score (mean, see ``propinfer.scored``)."""
    return (
        scored(sweep, confidence=confidence)
        .groupby("estimate", sort=False)
        .agg(
            mae=("abs_error", "mean"),
            covered=("covered", "sum"),
            intervals=("covered", "size"),
            width=("width", "mean"),
            interval_score=("interval_score", "mean"),
        )
        .reset_index()
    )


def shadow_sets() -> dict[str, Path]:
    """Finished shadow sets by label: the shipped one, then those built into the cache."""
    found = {"shipped (data/shadows)": SHIPPED_SHADOWS} | {
        f"built: {p.name}": p
        for p in sorted((cache_dir() / ShadowRecipe.KIND).glob("*"))
        if (p / ShadowRecipe.MANIFEST).is_file()
    }
    complete = {}
    for label, folder in found.items():
        try:
            built = StepBuild.load(folder, ShadowRecipe)
        except ValueError:
            continue
        if all(built.done(_shadow_name(i)) for i in range(built.recipe.k)):
            complete[label] = folder
    return complete


# ---------------------------------------------------------------- a target


def _base_of(target: ModelSpec) -> str:
    """The base model a target was fine-tuned from, as far as its spec tells."""
    recipe = Path(target.lab_build or "") / "adapter" / "recipe.json"
    if target.lab_build and recipe.is_file():
        return json.loads(recipe.read_text()).get("base", target.name)
    return DEFAULT_MODEL if target.name == LAB_MODEL and not target.adapter else target.name


def differences(recipe: ShadowRecipe, result: PropInferResult, target: ModelSpec | None = None) -> list[str]:
    """How a run was sampled differently from the shadows, one sentence each ([] when alike):
    the map holds only for generations made the same way."""
    found = []
    if result.style != recipe.style:
        found.append(f"the prompt style is {result.style}, the shadows' {recipe.style}")
    if [p for p in result.prompts if p.strip()] != recipe.prompt_list():
        found.append("the prompts differ from the shadows' prompts")
    for name in ("max_new_tokens", "temperature", "top_k", "top_p"):
        if getattr(result.cfg, name) != getattr(recipe, name):
            found.append(f"{name} is {getattr(result.cfg, name)}, the shadows' {getattr(recipe, name)}")
    if target is not None:
        base = _base_of(target)
        if base != recipe.base:
            found.append(f"the shadows were fine-tuned from {recipe.base}, the target is {base}")
    return found


@dataclass
class Calibrated:
    table: pd.DataFrame  # value, share, ci_low, ci_high, n, unlabeled (naive) + predict()'s columns [+ truth columns]
    calibration: Calibration
    warnings: list[str]  # see differences()


def calibrate(
    result: PropInferResult,
    shadows: ShadowSet,
    labeler: Labeler,
    method: str = "pooled",
    truth: dict[str, float] | None = None,
    target: ModelSpec | None = None,
    anchor: Sequence[float] | None = None,
) -> Calibrated:
    """The run's naive estimates beside their calibration on ``shadows``.

    ``labeler`` must be the run's (it labels the shadows' generations the same way); ``anchor``:
    the base model's labeled shares, for the "base" method. With
    ``truth``: true_share, error / cal_error (estimate − truth) and covered / cal_covered.
    ``warnings`` lists how the run was sampled unlike the shadows (see ``differences``)."""
    if labeler.property != result.property or list(labeler.values) != list(result.values):
        raise ValueError("Calibrate with the labeler the run used: its property and values differ.")
    calibration = shadows.fit(labeler, method, result.cfg.confidence, anchor)
    words = word_patterns(labeler.property) if method == "ridge" else None
    rows = feature_rows(labels_of(result.generations), labeler.values, result.generations["text"].tolist(), words)
    table = result.estimates[["value", "share", "ci_low", "ci_high", "n", "unlabeled"]].merge(
        calibration.predict(rows), on="value"
    )
    if truth is not None:
        table = against_truth(table, truth)
        table["cal_error"] = table["calibrated"] - table["true_share"]
        table["cal_covered"] = (table["cal_low"] <= table["true_share"]) & (table["true_share"] <= table["cal_high"])
    return Calibrated(table, calibration, differences(shadows.recipe, result, target))
