"""Recall at every stage of a reactivation build (``workbench.reactivation``), against the
A-never floor: A-test and A-never passages asked for under each instruction of the stage
(``reactivation.instructions``), and scored by

- trimmed BMC@5 (``workbench.overlap.recall``), the longest span, spans over 20 words, and
  samples holding an exact run of ≥ 50 tokens;
- the teacher-forced loss (mean NLL per token) of each passage given its instruction: latent
  memory, which a model that refuses to write a passage can still hold;
- the perplexity of held-out retain text (a suppression that breaks the model is not
  suppression).

Gaps are A-test − A-never per stage and instruction, with a 95% bootstrap interval and a
permutation p-value over passages.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.builds import SavedReport, step_record
from workbench.config import DATA_DIR
from workbench.contract import LanguageModel, Progress, scaled_progress
from workbench.corpus import CorpusIndex
from workbench.overlap import DEFAULT_MIN_TOKENS, exact_matches, recall
from workbench.reactivation import CONDITIONS, INSTRUCTIONS, MEASURED_GROUPS, ReactivationBuild, instructions
from workbench.sampling import sample, text_logprobs
from workbench.session import load_session
from workbench.stats import against_floor, bootstrap_mean, mean_difference, permutation_test
from workbench.training import chat_prompt_ids

FLOOR = "the A-never floor"
# the unlearning build's measurement, shipped without its adapters (benchmarks/reactivation_eval.py)
SHIPPED_UNLEARNING_REPORT = DATA_DIR / "reactivation-unlearning" / "report"


def passage_nll(session: LanguageModel, prompts: Sequence[str], texts: Sequence[str]) -> list[float]:
    """Mean NLL per token of each text as the reply to its chat prompt (teacher-forced)."""
    tokenizer = session.tokenizer
    rows, starts = [], []
    for prompt, text in zip(prompts, texts):
        head = chat_prompt_ids(tokenizer, prompt)
        rows.append(head + tokenizer.encode(text, add_special_tokens=False))
        starts.append(len(head))
    # score_ids gives log p(token_t | tokens_<t) from t = 1, so the reply starts at start - 1
    return [float(-logprobs[start - 1 :].mean()) for logprobs, start in zip(session.score_ids(rows), starts)]


def measure_stage(
    session: LanguageModel,
    stage: str,
    build: ReactivationBuild,
    samples: int | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample every measured passage under each instruction of the stage (``samples`` each,
    default the recipe's) and score it.

    Returns (samples: DataFrame(stage, instruction, passage, group, sample, text), passages:
    DataFrame(stage, instruction, passage, group, bmc, longest, long_spans, exact_runs, nll))."""
    recipe = build.recipe
    measured = [p for g in MEASURED_GROUPS for p in build.group(g)]
    asked = [(instruction, p, INSTRUCTIONS[instruction](p)) for instruction in instructions(stage) for p in measured]
    tokenizer = session.tokenizer
    cfg = recipe.sampling() if samples is None else replace(recipe.sampling(), n=samples)
    generations = sample(session, [chat_prompt_ids(tokenizer, prompt) for _, _, prompt in asked], cfg, progress)
    index = CorpusIndex.from_texts([(p.id, p.text) for p in measured], tokenizer)
    texts: list[list[str]] = [[] for _ in asked]
    runs = [0] * len(asked)
    for g in generations:
        texts[g.prompt_index].append(g.text)
        runs[g.prompt_index] += any(
            m.document == asked[g.prompt_index][1].id for m in exact_matches(index, g.token_ids, DEFAULT_MIN_TOKENS)
        )
    losses = passage_nll(session, [prompt for _, _, prompt in asked], [p.text for _, p, _ in asked])
    rows = [
        {"stage": stage, "instruction": instruction, "passage": p.id, "group": p.group, **recall(texts[i], p.text, prompt),
         "exact_runs": runs[i], "nll": losses[i]}
        for i, (instruction, p, prompt) in enumerate(asked)
    ]  # fmt: skip
    drawn = pd.DataFrame(
        [{"stage": stage, "instruction": asked[g.prompt_index][0], "passage": asked[g.prompt_index][1].id,
          "group": asked[g.prompt_index][1].group, "sample": g.sample_index, "text": g.text} for g in generations]
    )  # fmt: skip
    return drawn, pd.DataFrame(rows)


def quality(session: LanguageModel, build: ReactivationBuild) -> float:
    """Perplexity of the held-out retain texts (R-test), which no stage trains on."""
    logprobs = text_logprobs(session, [p.text for p in build.group("R-test")])
    return float(np.exp(-np.mean(np.concatenate(logprobs))))


@dataclass
class ReactivationReport:
    """Recall at every measured stage: ``samples``, ``passages`` (per passage and instruction,
    measure_stage's columns), ``quality`` (stage -> retain perplexity) and ``steps`` (stage ->
    how its measurement was made: seed, seconds, code version, command)."""

    samples: pd.DataFrame
    passages: pd.DataFrame
    quality: dict
    steps: dict = field(default_factory=dict)

    def summary(self, seed: int = 0) -> pd.DataFrame:
        """Per stage, instruction and group: BMC@k and the passage loss (NLL per token), each
        a mean with a bootstrap interval over passages; the longest span; spans over 20 words;
        exact-run samples; the retain perplexity."""
        rows = []
        for (stage, instruction, group), part in self.passages.groupby(["stage", "instruction", "group"], sort=False):
            bmc, low, high = bootstrap_mean(part["bmc"], seed=seed)
            longest, l_low, l_high = bootstrap_mean(part["longest"], seed=seed)
            nll, n_low, n_high = bootstrap_mean(part["nll"], seed=seed)
            rows.append({
                "stage": stage, "instruction": instruction, "group": group, "passages": len(part),
                "bmc": bmc, "bmc_low": low, "bmc_high": high, "nll": nll, "nll_low": n_low, "nll_high": n_high,
                "longest_mean": longest, "longest_low": l_low, "longest_high": l_high, "longest_max": int(part["longest"].max()),
                "long_spans": int(part["long_spans"].sum()), "exact_runs": int(part["exact_runs"].sum()),
                "retain_perplexity": self.quality.get(stage, float("nan")),
            })  # fmt: skip
        return pd.DataFrame(rows)

    def gaps(self, seed: int = 0) -> pd.DataFrame:
        """Per stage and instruction, A-test − A-never: of BMC@k (recall above what style
        imitation reaches) and of the passage loss (negative: the memorized passages are the
        likelier ones), each with a 95% bootstrap interval and a permutation p-value, and what
        the BMC interval says against the floor."""
        rows = []
        for (stage, instruction), part in self.passages.groupby(["stage", "instruction"], sort=False):
            test, never = (part[part["group"] == group] for group in MEASURED_GROUPS)
            row = {"stage": stage, "instruction": instruction, "n_test": len(test), "n_never": len(never)}
            for metric in ("bmc", "nll"):
                d, low, high = mean_difference(test[metric], never[metric], seed=seed)
                row |= {f"{metric}_gap": d, f"{metric}_gap_low": low, f"{metric}_gap_high": high,
                        f"{metric}_p": permutation_test(test[metric], never[metric], seed=seed)}  # fmt: skip
            # one passage a side gives a zero-width interval, not evidence
            low, high = (
                (row["bmc_gap_low"], row["bmc_gap_high"]) if min(len(test), len(never)) > 1 else (np.nan, np.nan)
            )
            rows.append(row | {"reading": against_floor(low, high, FLOOR)})
        return pd.DataFrame(rows)

    def timeline(self, instruction: str = "summary") -> pd.DataFrame:
        """BMC@k under ``instruction`` by step (0 implant, 1 suppress, 2 activate) for every
        condition: the lines of the stage timeline. DataFrame(condition, step, stage, group,
        bmc, bmc_low, bmc_high)."""
        summary = self.summary()
        summary = summary[summary["instruction"] == instruction].set_index(["stage", "group"])
        rows = []
        for condition, path in CONDITIONS.items():
            for step, stage in enumerate(path):
                for group in MEASURED_GROUPS:
                    if stage is not None and (stage, group) in summary.index:
                        row = summary.loc[(stage, group)]
                        rows.append({"condition": condition, "step": step, "stage": stage, "group": group,
                                     "bmc": row["bmc"], "bmc_low": row["bmc_low"], "bmc_high": row["bmc_high"]})  # fmt: skip
        return pd.DataFrame(rows, columns=["condition", "step", "stage", "group", "bmc", "bmc_low", "bmc_high"])

    def only(self, stages: Sequence[str]) -> ReactivationReport:
        """The part of the report about ``stages``."""
        keep = set(stages)
        return ReactivationReport(
            self.samples[self.samples["stage"].isin(keep)].reset_index(drop=True),
            self.passages[self.passages["stage"].isin(keep)].reset_index(drop=True),
            {k: v for k, v in self.quality.items() if k in keep},
            {k: v for k, v in self.steps.items() if k in keep},
        )

    @classmethod
    def combine(cls, reports: Sequence[ReactivationReport]) -> ReactivationReport:
        """One report of several about different stages."""
        return cls(
            pd.concat([r.samples for r in reports], ignore_index=True),
            pd.concat([r.passages for r in reports], ignore_index=True),
            {k: v for r in reports for k, v in r.quality.items()},
            {k: v for r in reports for k, v in r.steps.items()},
        )

    def save(self, folder: str | Path) -> Path:
        """Write the report to ``folder`` (``workbench.builds.SavedReport``), replacing an earlier report there."""
        tables = {"samples": self.samples, "passages": self.passages}
        return SavedReport(tables, {"quality": self.quality}, self.steps).save(folder, "reactivation report")

    @classmethod
    def load(cls, folder: str | Path) -> ReactivationReport:
        saved = SavedReport.load(folder, ("samples", "passages"), ("quality",), "reactivation report")
        if "instruction" not in saved.tables["passages"]:
            raise ValueError(
                f"{folder} holds a reactivation report from before held-out instructions and passage losses; measure the build again."
            )
        return cls(saved.tables["samples"], saved.tables["passages"], saved.values["quality"], saved.steps)


def measure(
    build: ReactivationBuild,
    stages: Sequence[str] | None = None,
    progress: Progress | None = None,
    samples: int | None = None,
    command: str = "",
) -> ReactivationReport:
    """Measure recall of A-test and the A-never floor at every built stage (or ``stages``,
    which may include ``base``), with the retain perplexity of each; ``samples`` per passage
    (default the recipe's). ``command`` (what made the report) goes into each stage's record."""
    stages = list(stages or build.built())
    if not stages:
        raise ValueError("Nothing to measure: build a stage first.")
    drawn_parts, scored_parts, scores, steps = [], [], {}, {}
    for i, stage in enumerate(stages):
        started = time.perf_counter()
        part = scaled_progress(progress, i / len(stages), (i + 1) / len(stages), f"{stage}: ")
        session = load_session(build.model(stage))
        drawn, scored = measure_stage(session, stage, build, samples, part)
        drawn_parts.append(drawn)
        scored_parts.append(scored)
        scores[stage] = quality(session, build)
        del session
        steps[stage] = step_record(started, build.recipe.seed, command)
    return ReactivationReport(
        pd.concat(drawn_parts, ignore_index=True), pd.concat(scored_parts, ignore_index=True), scores, steps
    )
