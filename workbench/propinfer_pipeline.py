"""Property inference as one call, the one every front end makes: sample the target (and a base
model beside it), label and estimate (``propinfer.run``), read the estimates against the lab's
truth when the target is a lab model, and judge them against a shadow set
(``propinfer_judge.judge``). The page, the CLI, the gallery and notebook 03 call ``infer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from workbench.config import PropInferConfig
from workbench.contract import LanguageModel, Progress, scaled_progress
from workbench.lab import lab_dataset_for
from workbench.propinfer import Labeler, PropInferResult, against_truth, run
from workbench.propinfer_judge import Judged, judge
from workbench.shadows import ShadowSet


@dataclass
class Inference:
    property: str
    runs: dict[str, PropInferResult]  # the target's first, then "base: <name>"
    truth: dict[str, float] | None  # the lab's realized shares; None for a model whose data is unknown
    judged: Judged | None  # None without a shadow set, or when the calibration failed
    calibration_failed: str | None  # why, when it failed: the runs still stand
    served: dict[str, dict]  # run label -> the endpoint's request record, for served models

    @property
    def target(self) -> PropInferResult:
        return next(iter(self.runs.values()))

    def estimates(self) -> pd.DataFrame:
        """Every run's naive estimates (beside the truth, when known), with a ``run`` column."""
        return pd.concat(
            [
                (against_truth(r.estimates, self.truth) if self.truth else r.estimates).assign(run=label)
                for label, r in self.runs.items()
            ],
            ignore_index=True,
        )

    def table(self) -> pd.DataFrame:
        """The target's estimates as a file holds them: the calibrated table when there is one."""
        if self.judged is not None:
            return self.judged.calibrated.table
        return against_truth(self.target.estimates, self.truth) if self.truth else self.target.estimates


def infer(
    sessions: Sequence[LanguageModel],
    prompts: Sequence[str],
    cfg: PropInferConfig,
    labeler: Labeler,
    style: str = "question-answer",
    shadows: ShadowSet | None = None,
    method: str = "pooled",
    progress: Progress | None = None,
) -> Inference:
    """Sample and label every session (the target first, then at most one base model), then
    judge the target against ``shadows`` with ``method``; the base run anchors the base
    correction. A calibration that cannot be made (e.g. a labeler whose values the shadows have
    no truth for) is reported in ``calibration_failed``, and the runs still stand."""
    if not 1 <= len(sessions) <= 2:
        raise ValueError(f"Property inference samples a target and at most one base model, not {len(sessions)}.")
    target = sessions[0].spec
    dataset = lab_dataset_for(target)  # before sampling: a broken lab folder must not cost the run
    truth = dataset.truth["realized"].get(labeler.property) if dataset is not None else None
    runs, served = {}, {}
    for k, session in enumerate(sessions):
        label = session.info.name if k == 0 else f"base: {session.info.name}"
        part = scaled_progress(progress, k / len(sessions), (k + 1) / len(sessions), f"{label}: ")
        runs[label] = run(session, prompts, cfg, labeler, part, style)
        record = session.served_record(cfg.sampling())
        if record is not None:
            served[label] = record
    judged = calibration_failed = None
    if shadows is not None:
        first, *others = runs.values()
        try:
            judged = judge(first, labeler, shadows, method, truth, target, others[0] if others else None)
        except ValueError as err:
            calibration_failed = str(err)
    return Inference(labeler.property, runs, truth, judged, calibration_failed, served)
