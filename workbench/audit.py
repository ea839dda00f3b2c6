"""A privacy audit from a lab's canaries: how much privacy did this fine-tune lose, at least?

Canaries are records holding a random secret (a patient ID, a phone number) in a fixed
template. The lab inserts some of them 1–16 times; the audit draws as many more of the same
formats that were never inserted. Each canary is scored by how much likelier the model finds
its record than the same record with other secrets of its format drawn the same way:

- ``z``: (mean NLL of the alternatives − NLL of the canary's record) / their standard deviation;
- ``exposure`` (Carlini et al. 2019, "The Secret Sharer"), estimated from the canary's rank
  among its N alternatives: log2((N + 1) / rank).

**ε lower bound** (Jagielski et al. 2020; Nasr et al. 2021). An (ε, δ)-DP training makes any
test that flags inserted canaries keep TPR ≤ e^ε · FPR + δ. So for a threshold on ``z``,
ε ≥ ln((TPR_low − δ) / FPR_high), with TPR_low and FPR_high one-sided Clopper–Pearson bounds.
The thresholds tried are fixed before the labels are read (flag the top 1, 2, 5, 10, 25 or 50%
of all canaries by score), and each bound is taken at confidence 1 − (1 − c) / 6 (Bonferroni),
so the largest of the six holds at confidence c. Assumptions: the secrets, inserted or not,
are independent draws of the same generator (so scores of never-inserted canaries stand for
what an inserted one would score had it not been inserted); a canary inserted r times is r
records, so its bound is on the ε of a group of r records (group privacy: rε for pure DP).
The largest bound m canaries can show is the bound at perfect separation, printed beside it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench import stats
from workbench.contract import LanguageModel, Progress
from workbench.lab_data import Canary, LabDataset, canary_secret, canary_text
from workbench.lab_vocabulary import CANARY_KINDS, CANARY_PREFIXES

GUESS_SHARES = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)
DELTA = 1e-5
ALTERNATIVES = 20  # other secrets of its format each canary is ranked against


def never_canaries(dataset: LabDataset, m: int, seed: int = 0) -> list[Canary]:
    """``m`` canaries of the lab's formats (alternating kinds) that were never inserted, from
    their own seeded stream, none equal to an inserted secret."""
    rng = random.Random(f"never-canaries-{seed}")
    used = {c.secret for c in dataset.canaries}
    drawn = []
    for index in range(m):
        kind = CANARY_KINDS[index % len(CANARY_KINDS)]
        secret = canary_secret(kind, rng)
        while secret in used:
            secret = canary_secret(kind, rng)
        used.add(secret)
        drawn.append(Canary(kind, secret, 0, CANARY_PREFIXES[kind]))
    return drawn


def canary_scores(
    model: LanguageModel,
    canaries: Sequence[Canary],
    alternatives: int = ALTERNATIVES,
    seed: int = 0,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per canary: kind, secret, insertions, nll (summed over its record), the mean and
    standard deviation of its ``alternatives`` records' NLL, z, rank (1 = likelier than every
    alternative) and exposure."""  # fmt: skip
    if alternatives < 2:
        raise ValueError("The audit needs at least 2 alternative secrets per canary.")
    if not canaries:
        raise ValueError("No canaries to score.")
    rng = random.Random(f"alternatives-{seed}")
    texts = []
    for canary in canaries:
        texts.append(canary_text(canary))
        texts += [canary_text(canary, canary_secret(canary.kind, rng)) for _ in range(alternatives)]
    encoded = [model.tokenizer.encode(text) for text in texts]
    nll = np.array([-float(lp.sum()) for lp in model.score_ids(encoded, batch_size, progress)]).reshape(
        len(canaries), alternatives + 1
    )
    own, others = nll[:, 0], nll[:, 1:]
    spread = others.std(axis=1, ddof=1)
    rank = 1 + (others <= own[:, None]).sum(axis=1)
    return pd.DataFrame({
        "kind": [c.kind for c in canaries], "secret": [c.secret for c in canaries], "insertions": [c.insertions for c in canaries],
        "nll": own, "alt_mean": others.mean(axis=1), "alt_std": spread,
        "z": (others.mean(axis=1) - own) / np.maximum(spread, 1e-9), "rank": rank, "exposure": np.log2((alternatives + 1) / rank),
    })  # fmt: skip


def epsilon_lower_bound(
    inserted: Sequence[float], never: Sequence[float], delta: float = DELTA, confidence: float = 0.95
) -> dict:
    """The ε lower bound (module docstring) from scores of inserted and never-inserted canaries:
    epsilon (0 when nothing can be shown), and the threshold (scores at or above it are flagged),
    its share flagged, true and false positives and the Clopper–Pearson bounds it came from."""
    inserted, never = np.asarray(inserted, dtype=float), np.asarray(never, dtype=float)
    if not len(inserted) or not len(never):
        raise ValueError("The ε bound needs inserted and never-inserted canaries.")
    pooled = np.sort(np.r_[inserted, never])[::-1]
    each = 1 - (1 - confidence) / len(GUESS_SHARES)  # one-sided level per threshold, Bonferroni
    best = {
        "epsilon": 0.0,
        "flagged_share": math.nan,
        "threshold": math.nan,
        "tp": 0,
        "fp": 0,
        "tpr_low": math.nan,
        "fpr_high": math.nan,
    }
    for share in GUESS_SHARES:
        flagged = max(1, round(share * len(pooled)))
        threshold = pooled[flagged - 1]
        tp, fp = int((inserted >= threshold).sum()), int((never >= threshold).sum())
        tpr_low = stats.clopper_pearson(tp, len(inserted), 2 * each - 1)[0]
        fpr_high = stats.clopper_pearson(fp, len(never), 2 * each - 1)[1]
        epsilon = math.log((tpr_low - delta) / fpr_high) if tpr_low > delta else 0.0
        if epsilon > best["epsilon"]:
            best = {
                "epsilon": epsilon,
                "flagged_share": share,
                "threshold": threshold,
                "tp": tp,
                "fp": fp,
                "tpr_low": tpr_low,
                "fpr_high": fpr_high,
            }
    return best


def max_epsilon(n_inserted: int, n_never: int, delta: float = DELTA, confidence: float = 0.95) -> float:
    """The largest bound ``n_inserted`` and ``n_never`` canaries can show: every inserted canary
    scored above every never-inserted one, all scores distinct (as real scores are), so only the
    thresholds fixed in advance can flag them."""
    return epsilon_lower_bound(np.arange(n_inserted) + n_never, np.arange(n_never), delta, confidence)["epsilon"]


def audit_table(scores: pd.DataFrame, delta: float = DELTA, confidence: float = 0.95) -> pd.DataFrame:
    """Per insertion count (and all inserted canaries together) against the never-inserted
    ones: counts, mean exposure, the ε lower bound with its threshold, and the largest bound
    those counts can show."""
    never = scores[scores["insertions"] == 0]
    groups = [(f"inserted {r}×", scores[scores["insertions"] == r]) for r in sorted(set(scores["insertions"]) - {0})]
    groups.append(("all inserted", scores[scores["insertions"] > 0]))
    rows = []
    for label, group in groups:
        bound = epsilon_lower_bound(group["z"], never["z"], delta, confidence)
        rows.append({
            "canaries": label, "n_inserted": len(group), "n_never": len(never), "exposure": group["exposure"].mean(),
            "exposure_never": never["exposure"].mean(), "epsilon_lower": bound["epsilon"], "flagged_share": bound["flagged_share"],
            "tp": bound["tp"], "fp": bound["fp"], "max_epsilon": max_epsilon(len(group), len(never), delta, confidence),
        })  # fmt: skip
    return pd.DataFrame(rows)


def null_labels(scores: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The null lab's labelling: half of the canaries, chosen at random, called "inserted" once
    (the rest never), whatever was trained. Scored on a model trained on none of them, the
    bound must hold 0."""
    relabelled = scores.copy()
    chosen = np.random.default_rng(seed).permutation(len(scores))[: len(scores) // 2]
    relabelled["insertions"] = 0
    relabelled.loc[relabelled.index[chosen], "insertions"] = 1
    return relabelled


def run_audit(
    model: LanguageModel,
    dataset: LabDataset,
    n_never: int = 100,
    alternatives: int = ALTERNATIVES,
    seed: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The audit's scores in one call: the lab's inserted canaries and ``n_never`` never-inserted
    ones, each against ``alternatives`` other secrets of its format."""  # fmt: skip
    if not dataset.canaries:
        raise ValueError("This lab inserted no canaries, so there is nothing to audit.")
    return canary_scores(
        model, [*dataset.canaries, *never_canaries(dataset, n_never, seed)], alternatives, seed, progress=progress
    )
