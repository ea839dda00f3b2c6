"""The ground-truth lab's build: a LoRA fine-tune of a model on the lab's dataset, and reading it back.

``LabRecipe`` and ``build`` make the dataset (``workbench.lab_data``) and fine-tune on it
(``finetune``); ``lab_dataset_for`` finds the dataset a model was fine-tuned on, so every
exploration can be scored against its truth (``truth_table``); ``loss_curve`` reads what the
fine-tune recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.builds import Recipe, Step, StepBuild
from workbench.config import DEFAULT_MODEL, ModelSpec, setting
from workbench.contract import Progress
from workbench.lab_data import (
    DEFAULT_CANARY_COUNTS,
    DEFAULT_GENDER_SHARES,
    DEFAULT_SHARES,
    LabDataset,
    check_counts,
    check_shares,
    make_dataset,
)
from workbench.lab_vocabulary import DIAGNOSES, FIRST_NAMES
from workbench.registry import LAB_DIR, LAB_MODEL
from workbench.training import Example, TrainingRecipe, train_adapter


def finetune(
    base: ModelSpec | str,
    dataset: LabDataset,
    out: str | Path,
    recipe: TrainingRecipe = TrainingRecipe(),
    *,
    progress: Progress | None = None,
) -> list[dict]:
    """LoRA fine-tune of a private copy of ``base`` on the dataset's training records (plain
    text), as ``recipe`` says, through the one trainer (``workbench.training.train_adapter``).

    Writes the adapter, its recipe (base, dataset recipe and fingerprint, training recipe) and
    the loss curve to ``out`` atomically. Returns the loss curve: one {"step", "epoch", "loss"}
    per optimizer step."""
    examples = [Example("", text) for text in dataset.texts]
    provenance = {"dataset": dataset.recipe, "dataset_fingerprint": dataset.fingerprint()}
    return train_adapter(base, examples, out, recipe, progress=progress, provenance=provenance)


SHIPPED_LAB = LAB_DIR


@dataclass(frozen=True, kw_only=True)
class LabRecipe(Recipe):
    """A lab build: ``make_dataset``'s clinic set (``n`` records, ``shares`` and
    ``gender_shares`` — None for the defaults —, ``canaries``, ``seed``) and a LoRA fine-tune of
    ``base`` on it (``epochs``, ``lr``, ``rank``, training seed ``seed``)."""

    WHAT = "lab build"
    MANIFEST = "build.json"
    KIND = "lab"

    base: str = setting(DEFAULT_MODEL, "the base model to fine-tune")
    n: int = setting(300, "training records, canary insertions included")
    shares: Mapping[str, float] | None = setting(
        None, 'a diagnosis share, e.g. "mental health=0.1" (repeatable; all must sum to 1)', flag="--share"
    )
    gender_shares: Mapping[str, float] | None = setting(
        None, "e.g. female=0.3 (the other gender takes the rest)", flag="--gender-share"
    )
    canaries: tuple[int, ...] = setting(DEFAULT_CANARY_COUNTS, "insertions per canary")
    seed: int = setting(0, "data and training seed")
    epochs: int = setting(3, "training epochs")
    lr: float = setting(2e-3, "learning rate")
    rank: int = setting(16, "LoRA rank")

    def __post_init__(self) -> None:  # the shares as make_dataset keeps them, so equal builds have equal recipes
        object.__setattr__(self, "shares", check_shares(self.shares or DEFAULT_SHARES, list(DIAGNOSES), "diagnosis"))
        object.__setattr__(
            self,
            "gender_shares",
            check_shares(self.gender_shares or DEFAULT_GENDER_SHARES, list(FIRST_NAMES), "gender"),
        )
        object.__setattr__(self, "canaries", tuple(self.canaries))
        check_counts(self.n, self.canaries)
        self.training()  # checks the training settings before anything is built

    def label(self) -> str:
        return Path(self.base).name

    def training(self) -> TrainingRecipe:
        return TrainingRecipe(epochs=self.epochs, lr=self.lr, rank=self.rank, seed=self.seed)

    def dataset(self) -> LabDataset:
        return make_dataset(
            n=self.n, shares=self.shares, gender_shares=self.gender_shares, canaries=self.canaries, seed=self.seed
        )


def build(
    out: str | Path, recipe: LabRecipe = LabRecipe(), progress: Progress | None = None, command: str = ""
) -> LabDataset:
    """Build (or finish building) ``recipe`` into ``out``: build.json (the recipe and the
    command), dataset/ and adapter/, each step written atomically, so a failed or running step
    never looks finished. A folder of another recipe, or of anything else, is refused."""
    built = StepBuild.start(out, recipe, command)
    dataset = built.folder / "dataset"
    steps = [
        Step("dataset", lambda folder, _: recipe.dataset().save(folder), recipe.seed, weight=0.0),
        Step(
            "adapter", lambda folder, part: finetune(recipe.base, LabDataset.load(dataset), folder, recipe.training(), progress=part),
            recipe.seed, "fine-tuning",
        ),
    ]  # fmt: skip
    built.run(steps, progress, command)
    return LabDataset.load(dataset)


def lab_dataset_for(spec: ModelSpec) -> LabDataset | None:
    """The lab dataset a model was fine-tuned on, when it is a lab model: the registry's lab
    model, or any model whose adapter folder sits in a lab build (DIR/adapter beside
    DIR/dataset), or a served model tied to a lab build. None for other models: their truth
    is unknown."""
    if spec.lab_build:
        folder = Path(spec.lab_build) / "dataset"
        if not (folder / "manifest.json").is_file():
            raise ValueError(f"{spec.lab_build} is not a lab build: it has no dataset/manifest.json.")
        return LabDataset.load(folder)
    if spec.endpoint:
        return None  # a served model's name on the server says nothing of its training data
    if spec.name == LAB_MODEL and not spec.adapter:
        return LabDataset.load(SHIPPED_LAB / "dataset")
    if spec.adapter and (Path(spec.adapter).parent / "dataset" / "manifest.json").is_file():
        return LabDataset.load(Path(spec.adapter).parent / "dataset")
    return None


def truth_table(dataset: LabDataset) -> pd.DataFrame:
    """DataFrame(property, value, requested, realized): the shares PropInfer should recover."""
    rows = []
    for prop, requested in dataset.truth["requested"].items():
        realized = dataset.truth["realized"][prop]
        for value in sorted(set(requested) | set(realized)):
            rows.append(
                {
                    "property": prop,
                    "value": value,
                    "requested": requested.get(value, 0.0),
                    "realized": realized.get(value, 0.0),
                }
            )
    return pd.DataFrame(rows)


def loss_curve(build_dir: str | Path) -> pd.DataFrame:
    """The loss curve a build recorded, as DataFrame(step, epoch, loss)."""
    path = Path(build_dir) / "adapter" / "loss_curve.json"
    if not path.is_file():
        raise ValueError(f"No loss curve at {path}: the build did not finish.")
    return pd.DataFrame(json.loads(path.read_text()))
