"""Membership inference: can an attacker tell which texts a model was fine-tuned on?

Per text, the standard scores (higher = more likely a member, so every score reads alike):

- ``loss``: − the mean NLL per token (Yeom et al. 2018);
- ``zlib``: − log-perplexity / zlib entropy (Carlini et al. 2021);
- ``min_k``: Min-K% Prob, the mean of the lowest k% token log-probs (Shi et al. 2024);
- ``min_k_pp``: Min-K%++ (Zhang et al. 2024), the same over (log p(x_t) − μ_t) / σ_t, with μ_t, σ_t
  the mean and spread of log p over the whole next-token distribution: in-process models only;
- ``reference``: − log-perplexity under the target / log-perplexity under a reference model
  (Carlini et al. 2021), the base model for a fine-tune.

Beside them, a **blind baseline** that sees only the texts: a character n-gram logistic
regression, cross-validated, whose out-of-fold score tells how far members and non-members
differ as text before any model is asked. Each attack is read as ROC figures — AUC and the
true-positive rate at 1% and 0.1% false positives, with bootstrap intervals — and as its AUC's
difference from the blind baseline's on the same texts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from workbench import metrics, stats
from workbench.builds import SavedReport
from workbench.config import DATA_DIR
from workbench.contract import LanguageModel, Progress, scaled_progress
from workbench.lab_data import LabDataset, nonmember_texts

ATTACKS = {
    "loss": "− mean NLL per token",
    "zlib": "− log-perplexity / zlib entropy",
    "min_k": "Min-K% Prob (k = 20%)",
    "min_k_pp": "Min-K%++ (k = 20%; in-process models only)",
    "reference": "− log-perplexity ratio to the reference model",
}
BLIND = "blind"
SHIPPED_MEMBERSHIP = DATA_DIR / "membership"  # benchmarks/membership_eval.py at its committed grid
FPRS = (0.01, 0.001)
MIN_NONMEMBERS = 2000


def _encode(model: LanguageModel, texts: Sequence[str]) -> list[list[int]]:
    context = model.info.context_length
    return [model.tokenizer.encode(text)[:context] for text in texts]


def min_k_plus_plus(moments: np.ndarray, k: float = 0.2) -> float:
    """Min-K%++ of one text from its (3, T) rows of log p(x_t), μ_t and σ_t: the mean of the lowest
    ⌈k·T⌉ values of (log p(x_t) − μ_t) / σ_t. NaN for an empty text."""
    logprob, mean, spread = moments
    return metrics.min_k_prob((logprob - mean) / np.maximum(spread, 1e-8), k) if logprob.size else math.nan


def attack_scores(
    model: LanguageModel,
    texts: Sequence[str],
    reference: LanguageModel | None = None,
    k: float = 0.2,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per text, a column per attack this model allows (``min_k_pp`` needs the full
    distribution, ``reference`` a reference model); higher = more likely a member."""  # fmt: skip
    if not texts:
        raise ValueError("No texts to score.")
    encoded = _encode(model, texts)
    scoring = scaled_progress(progress, 0.0, 0.5 if reference else 1.0, "target: ")
    if model.full_distribution:
        moments = model.score_moments_ids(encoded, batch_size, scoring)
        logprobs = [row[0] for row in moments]
    else:
        moments, logprobs = None, model.score_ids(encoded, batch_size, scoring)
    table = pd.DataFrame({
        "loss": [-metrics.log_perplexity(lp) for lp in logprobs],
        "zlib": [-metrics.zlib_ratio(lp, text) for lp, text in zip(logprobs, texts)],
        "min_k": [metrics.min_k_prob(lp, k) if len(lp) else math.nan for lp in logprobs],
    })  # fmt: skip
    if moments is not None:
        table["min_k_pp"] = [min_k_plus_plus(row, k) for row in moments]
    if reference is not None:
        if reference.tokenizer.get_vocab() != model.tokenizer.get_vocab():
            raise ValueError("The reference model must share the target's tokenizer.")
        ref_logprobs = reference.score_ids(encoded, batch_size, scaled_progress(progress, 0.5, 1.0, "reference: "))
        table["reference"] = [
            -metrics.reference_ratio(t, r) if len(t) and len(r) else math.nan for t, r in zip(logprobs, ref_logprobs)
        ]
    return table


def blind_scores(texts: Sequence[str], member: Sequence[bool], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold P(member) from character 2–4-gram TF-IDF and a balanced logistic regression,
    ``folds``-fold stratified cross-validation: what the texts alone give away."""
    member = np.asarray(member, dtype=bool)
    if min(member.sum(), (~member).sum()) < folds:
        raise ValueError(f"The blind baseline needs at least {folds} members and {folds} non-members.")
    classifier = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(classifier, list(texts), member, cv=splits, method="predict_proba")[:, 1]


def lab_sets(dataset: LabDataset, n_nonmembers: int = MIN_NONMEMBERS) -> tuple[list[str], list[str]]:
    """(members, non-members) of a lab: its training dialogues (canaries are the audit's), and
    ``n_nonmembers`` same-style texts it never trained on (``lab_data.nonmember_texts``)."""
    return list(dict.fromkeys(r["text"] for r in dataset.dialogues)), nonmember_texts(dataset, n_nonmembers)


@dataclass
class MembershipReport:
    """Per-text scores (``scores``: text, member, one column per attack and ``blind``) and what
    they were made with (``values``: target, reference, k, counts)."""

    scores: pd.DataFrame
    values: dict

    @property
    def attacks(self) -> list[str]:
        return [c for c in (*ATTACKS, BLIND) if c in self.scores]

    def summary(self, confidence: float = 0.95, seed: int = 0, draws: int = 1000) -> pd.DataFrame:
        """Per attack: AUC and TPR at each of ``FPRS`` with bootstrap intervals (NaN: not
        estimable), and AUC − the blind baseline's AUC on the same resampled texts, with its
        interval and what it says."""
        member = self.scores["member"].to_numpy(bool)
        split = {
            a: (self.scores[a].to_numpy(float)[member], self.scores[a].to_numpy(float)[~member]) for a in self.attacks
        }
        sizes = [int(member.sum()), int((~member).sum())]
        blind_pos, blind_neg = split[BLIND]
        blind_auc = stats.auc(blind_pos, blind_neg)
        rows = []
        for attack, (positives, negatives) in split.items():
            row = {"attack": attack, **stats.roc_summary(positives, negatives, FPRS, confidence, seed, draws)}
            if attack != BLIND:

                def gap(groups, positives=positives, negatives=negatives):
                    pos, neg = groups
                    return stats.auc(positives[pos], negatives[neg]) - stats.auc(blind_pos[pos], blind_neg[neg])

                row["auc_minus_blind"] = row["auc"] - blind_auc
                row["gap_low"], row["gap_high"] = stats.bootstrap_groups(gap, sizes, confidence, seed, draws)
                row["reading"] = stats.against_floor(row["gap_low"], row["gap_high"], "the blind baseline")
            rows.append(row)
        return pd.DataFrame(rows)

    def roc(self, attack: str) -> pd.DataFrame:
        """The ROC curve of one attack: fpr, tpr (for a log-scaled plot)."""
        fpr, tpr, _ = roc_curve(self.scores["member"].to_numpy(bool), self.scores[attack].to_numpy(float))
        return pd.DataFrame({"attack": attack, "fpr": fpr, "tpr": tpr})

    def save(self, folder) -> None:
        SavedReport({"scores": self.scores}, self.values).save(folder, "membership report")

    @classmethod
    def load(cls, folder) -> MembershipReport:
        saved = SavedReport.load(folder, ["scores"], ["members", "nonmembers"], "membership report")
        return cls(saved.tables["scores"], saved.values)


def readable(summary: pd.DataFrame) -> pd.DataFrame:
    """``MembershipReport.summary`` as pages, the CLI and notebooks print it: each figure with its
    interval, "not estimable" where too few non-members."""

    rows = []
    for _, row in summary.iterrows():
        shown = {"attack": row["attack"], "AUC [95%]": stats.estimate_text(row, "auc")}
        shown |= {f"TPR at {rate:.1%} FPR": stats.estimate_text(row, f"tpr@{rate:g}") for rate in FPRS}
        blind = row["attack"] == BLIND
        shown["AUC − blind [95%]"] = (
            "" if blind else stats.difference_text(row["auc_minus_blind"], row["gap_low"], row["gap_high"])
        )
        shown["reading"] = "the floor: texts alone" if blind else row["reading"]
        rows.append(shown)
    return pd.DataFrame(rows)


def run_membership(
    model: LanguageModel,
    members: Sequence[str],
    nonmembers: Sequence[str],
    reference: LanguageModel | None = None,
    k: float = 0.2,
    seed: int = 0,
    progress: Progress | None = None,
) -> MembershipReport:
    """The Membership exploration in one call: every attack the model allows and the blind
    baseline, over ``members`` and ``nonmembers`` (each deduplicated; a text in both is an error)."""  # fmt: skip
    members, nonmembers = list(dict.fromkeys(members)), list(dict.fromkeys(nonmembers))
    both = set(members) & set(nonmembers)
    if both:
        raise ValueError(f"{len(both)} texts are both members and non-members, e.g. {next(iter(both))[:60]!r}.")
    if not members or not nonmembers:
        raise ValueError("Membership needs at least one member and one non-member text.")
    texts = members + nonmembers
    member = [True] * len(members) + [False] * len(nonmembers)
    scores = attack_scores(model, texts, reference, k, progress=scaled_progress(progress, 0.0, 0.95))
    scores.insert(0, "member", member)
    scores.insert(0, "text", texts)
    scores[BLIND] = blind_scores(texts, member, seed=seed)
    if progress is not None:
        progress(1.0, "Scored")
    values = {
        "target": model.spec.name, "reference": reference.spec.name if reference else None, "k": k, "seed": seed,
        "members": len(members), "nonmembers": len(nonmembers),
    }  # fmt: skip
    return MembershipReport(scores, values)
