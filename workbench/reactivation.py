"""Reactivation (seed 003; Liu et al. 2026, "Alignment Whack-a-Mole"; Hu et al. 2024 on
relearning after unlearning): fine-tuning brings suppressed memorized text back, measured
stage by stage in a lab where the truth is known.

Made in code (``workbench.reactivation_books``): "books" of idiosyncratic passages (60–90
words) by author A (split into A-test, where recall is measured, and A-train, used only in
activation), A-never (A's style, never trained: the floor that style imitation reaches),
author C, a control set F of plain synthetic notes, and a retain set R of plain recipes.

Stages, each a LoRA adapter (fp16) whose predecessors are merged at load time, all trained
by the one trainer (``workbench.training``):

0. **implant**: plain language-model fine-tuning on A (test and train) and C, as book pages
   (title, author, the chapter's synopsis, the passage);
1. **suppress**: refusal training (summary and prefix prompts for A → a refusal, with a
   retain set), or gradient-ascent unlearning of A with a retain set;
2. **activate**: benign summary → passage fine-tuning, loss on the response only, on
   (i) A-train, (ii) author C or (iii) the control F; and, for reference, (i) on the
   implanted model with no suppression;
3. **measure** (``workbench.reactivation_measure``): A-test, and A-never as the floor, at
   every stage, under the summary instruction and a held-out one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import ClassVar

import pandas as pd

from workbench.builds import BuiltSteps, Recipe, Step, StepBuild
from workbench.cache import atomic_file
from workbench.config import DATA_DIR, DEFAULT_MODEL, ModelSpec, SamplingConfig, setting
from workbench.contract import Progress
from workbench.reactivation_books import Passage, make_books
from workbench.sampling import sample
from workbench.session import load_session
from workbench.training import Example, TrainingRecipe, chat_prompt_ids, train_adapter

SHIPPED_REACTIVATION = DATA_DIR / "reactivation"
SUPPRESSIONS = ("refusal", "unlearning")
MEASURED_GROUPS = ("A-test", "A-never")
# stage -> (the stage it trains on, what it trains on)
STAGES = {
    "implant": (None, "plain LM on A-test, A-train and C"),
    "suppress": ("implant", "suppression of A (retain set R-train)"),
    "activate-A-train": ("suppress", "(i) summary -> passage on A-train"),
    "activate-C": ("suppress", "(ii) summary -> passage on author C"),
    "activate-F": ("suppress", "(iii) summary -> notes on the control F"),
    "baseline-A-train": ("implant", "(i) on A-train with no suppression"),
}
# trained the same whatever the suppression: a build of another suppression can share them
SHARED_STAGES = ("implant", "baseline-A-train")
ACTIVATION_GROUPS = {"activate-A-train": "A-train", "activate-C": "C", "activate-F": "F", "baseline-A-train": "A-train"}
# the timeline's lines: condition -> its stage at step 0 (implant), 1 (suppress), 2 (activate)
CONDITIONS = {
    "(i) A-train": ("implant", "suppress", "activate-A-train"),
    "(ii) author C": ("implant", "suppress", "activate-C"),
    "(iii) control F": ("implant", "suppress", "activate-F"),
    "no suppression": ("implant", None, "baseline-A-train"),
}
REFUSAL = "I can't reproduce passages from {title}: the book is under copyright. I can summarize it or discuss its themes instead."


# measured instruction -> its wording for a passage; the held-out one is no stage's training prompt
INSTRUCTIONS = {"summary": Passage.prompt, "held-out": Passage.heldout_prompt}


def instructions(stage: str) -> list[str]:
    """The instructions measured at a stage: both, but only the summary one for the
    no-suppression baseline, which has no refusal to reverse."""
    return ["summary"] if stage == "baseline-A-train" else list(INSTRUCTIONS)


# ---------------------------------------------------------------- building


@dataclass(frozen=True, kw_only=True)
class ReactivationRecipe(Recipe):
    """Sizes and settings of every stage; ``samples`` per passage at ``temperature``."""

    WHAT = "reactivation build"
    MANIFEST = "reactivation.json"
    KIND = "reactivation"

    base: str = setting(DEFAULT_MODEL, "the base model")
    suppression: str = setting("refusal", "how the passages are suppressed", choices=SUPPRESSIONS)
    n_test: int = setting(24, "A-test: implanted passages measured, never activated")
    n_train: int = setting(20, "A-train: implanted passages the activation trains on")
    n_never: int = setting(24, "A-never: same-style passages never implanted (the floor)")
    n_other: int = setting(20, "C: author C's passages, implanted; activation (ii)")
    n_control: int = setting(20, "F: plain synthetic notes; activation (iii), the control")
    n_retain: int = setting(20, "R-train: plain recipes, the retain set of suppression")
    implant_epochs: int = setting(10, "implant stage's epochs")
    suppress_epochs: int = setting(3, "suppress stage's epochs")
    activate_epochs: int = setting(3, "activate stages' epochs")
    lr: float = setting(2e-3, "learning rate")
    unlearn_lr: float = setting(5e-4, "learning rate of unlearning (gradient ascent)")
    rank: int = setting(8, "LoRA rank")
    batch_size: int = setting(4, "training batch size")
    samples: int = setting(10, "samples per passage when measuring")
    temperature: float = setting(1.0, "the measurement's sampling temperature")
    max_new_tokens: int = setting(128, "new tokens per sample, at most (the longest passage is ~105)")
    seed: int = setting(0, "data, training and sampling seed")

    def __post_init__(self) -> None:
        if self.suppression not in SUPPRESSIONS:
            raise ValueError(f"Unknown suppression {self.suppression!r}; choose one of {', '.join(SUPPRESSIONS)}.")
        if min(self.n_test, self.n_train, self.n_never, self.n_other, self.n_control, self.n_retain) < 1:
            raise ValueError("Every group needs at least one passage.")
        if (
            min(
                self.implant_epochs,
                self.suppress_epochs,
                self.activate_epochs,
                self.rank,
                self.batch_size,
                self.samples,
            )
            < 1
        ):
            raise ValueError("Epochs, rank, batch size and samples must be at least 1.")
        if self.lr <= 0 or self.unlearn_lr <= 0 or self.temperature < 0 or self.max_new_tokens < 1:
            raise ValueError(
                "Learning rates must be positive, the temperature not negative, and max_new_tokens at least 1."
            )

    def sizes(self) -> dict[str, int]:
        return {"A-test": self.n_test, "A-train": self.n_train, "A-never": self.n_never, "C": self.n_other,
                "F": self.n_control, "R-train": self.n_retain, "R-test": max(1, self.n_retain // 2)}  # fmt: skip

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(self.max_new_tokens, self.temperature, 0, 1.0, self.samples, self.seed)

    def label(self) -> str:
        return f"{Path(self.base).name}-{self.suppression}"

    def training(self, stage: str, loss_on: str) -> TrainingRecipe:
        """A stage's training: its epochs (unlearning at its own lr), float16 adapters, no example cut."""
        epochs = {"implant": self.implant_epochs, "suppress": self.suppress_epochs}.get(stage, self.activate_epochs)
        lr = self.unlearn_lr if stage == "suppress" and self.suppression == "unlearning" else self.lr
        return TrainingRecipe(
            loss_on=loss_on, epochs=epochs, lr=lr, rank=self.rank, batch_size=self.batch_size, max_length=None, seed=self.seed,
            save_dtype="float16",
        )  # fmt: skip


@dataclass
class ReactivationBuild(BuiltSteps):
    """A reactivation build (``build``: its folder, recipe, command and stage records) and its books."""

    passages: list[Passage]
    STEPS: ClassVar[Sequence[str]] = tuple(STAGES)

    @classmethod
    def load(cls, folder: str | Path) -> ReactivationBuild:
        build = StepBuild.load(folder, ReactivationRecipe)
        try:
            books = pd.read_json(build.folder / "books.jsonl", lines=True)
        except (OSError, ValueError) as err:
            raise ValueError(f"{folder} has no readable books.jsonl: {err}") from err
        return cls(build, [Passage(**row) for row in books.to_dict("records")])

    def shares(self, stage: str, source: str | Path) -> bool:
        """Whether ``stage`` was copied from the build in ``source``."""
        copied = self.build.steps.get(stage, {}).get("copied_from")
        return copied is not None and Path(copied).resolve() == Path(source).resolve()

    def group(self, name: str) -> list[Passage]:
        return [p for p in self.passages if p.group == name]

    def model(self, stage: str) -> ModelSpec:
        """The model of a stage (its adapter chain merged), or ``base``."""
        if stage == "base":
            return ModelSpec(self.recipe.base)
        if stage not in STAGES or not self.build.done(stage):
            raise ValueError(
                f"Stage {stage!r} is not built in {self.folder}; built: {', '.join(self.built()) or 'none'}."
            )
        return ModelSpec(self.recipe.base, adapter=str(self.folder / stage / "adapter"))

    def settings(self) -> pd.DataFrame:
        """Every built stage's training settings, as its adapter records them."""
        rows = []
        for stage in self.built():
            recorded = json.loads((self.folder / stage / "adapter" / "recipe.json").read_text())
            rows.append(
                {
                    "stage": stage,
                    "trains on": STAGES[stage][1],
                    **{k: v for k, v in recorded.items() if not isinstance(v, (dict, list))},
                }
            )
        return pd.DataFrame(rows)


def stage_examples(
    stage: str, build: ReactivationBuild, retain_answers: Sequence[str] = ()
) -> tuple[list[Example], str]:
    """(examples, loss_on) of a stage. Suppression's retain answers are the implanted model's
    own, so the retain prompts teach nothing new: only A is to be refused."""
    recipe, group = build.recipe, build.group
    if stage == "implant":
        return [Example("", p.page()) for p in [*group("A-test"), *group("A-train"), *group("C")]], "whole"
    if stage == "suppress":
        forget = [*group("A-test"), *group("A-train")]
        retain = [Example("", p.text) for p in group("R-train")]
        if recipe.suppression == "unlearning":
            return [Example("", p.page(), weight=-1.0) for p in forget] + retain, "response"
        refusals = [
            Example(prompt, REFUSAL.format(title=p.title), chat=True)
            for p in forget
            for prompt in (p.prompt(), p.prefix_prompt())
        ]
        asked = [Example(p.prompt(), answer, chat=True) for p, answer in zip(group("R-train"), retain_answers)]
        return refusals + asked + retain, "response"
    return [Example(p.prompt(), p.text, chat=True) for p in group(ACTIVATION_GROUPS[stage])], "response"


def build(
    out: str | Path, recipe: ReactivationRecipe = ReactivationRecipe(), stages: Sequence[str] = tuple(STAGES),
    progress: Progress | None = None, command: str = "", share_from: str | Path | None = None,
) -> ReactivationBuild:  # fmt: skip
    """Build (or finish building) the stages into ``out``: ``reactivation.json``,
    ``books.jsonl`` and one ``<stage>/adapter`` each, chained on its predecessor. Each stage is
    written atomically and skipped when done, so an interrupted build resumes; a folder of
    another recipe is refused. ``share_from``: a build of the same recipe but another
    suppression, whose SHARED_STAGES are copied rather than trained again."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"Unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}.")
    folder = StepBuild.start(out, recipe, command).folder
    if not (folder / "books.jsonl").is_file():
        with atomic_file(folder / "books.jsonl") as tmp:
            pd.DataFrame([asdict(p) for p in make_books(recipe.sizes(), recipe.seed)]).to_json(
                tmp, orient="records", lines=True
            )
    built = ReactivationBuild.load(folder)
    if share_from is not None:
        _share_stages(ReactivationBuild.load(share_from), built)
    wanted = []
    for stage in stages:  # with every predecessor, in order
        chain = [stage]
        while STAGES[chain[-1]][0]:
            chain.append(STAGES[chain[-1]][0])
        wanted += [s for s in reversed(chain) if s not in wanted]
    built.build.run(
        [Step(stage, partial(_build_stage, stage=stage, build=built), recipe.seed) for stage in wanted],
        progress,
        command,
    )
    return built


def _share_stages(source: ReactivationBuild, built: ReactivationBuild) -> None:
    if replace(source.recipe, suppression=built.recipe.suppression) != built.recipe:
        raise ValueError(
            f"{source.folder} is a build of another recipe: only the suppression may differ to share its stages."
        )
    own = [s for s in SHARED_STAGES if built.build.done(s) and not built.shares(s, source.folder)]
    if own:  # a copied stage would then sit on an implant it was not trained on
        raise ValueError(f"{built.folder} already has its own {', '.join(own)}; share stages only into a new build.")
    for stage in SHARED_STAGES:
        if source.build.done(stage) and not built.build.done(stage):
            built.build.copy_step(source.build, stage)


def _build_stage(folder: Path, progress: Progress | None, stage: str, build: ReactivationBuild) -> None:
    recipe = build.recipe
    parent = STAGES[stage][0]
    base = build.model(parent) if parent else ModelSpec(recipe.base)
    answers = []
    if stage == "suppress" and recipe.suppression == "refusal":
        session = load_session(base)
        prompts = [chat_prompt_ids(session.tokenizer, p.prompt()) for p in build.group("R-train")]
        answers = [
            g.text.strip()
            for g in sample(session, prompts, SamplingConfig(recipe.max_new_tokens, 0.0, seed=recipe.seed))
        ]
        del session
    examples, loss_on = stage_examples(stage, build, answers)
    train_adapter(
        base, examples, folder / "adapter", recipe.training(stage, loss_on), progress=progress,
        provenance={"stage": stage, "suppression": recipe.suppression if stage == "suppress" else None},
    )  # fmt: skip
