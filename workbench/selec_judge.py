"""Judging a weight-diff ranking: two questions asked apart, and the retraining test.

A pool that mixes the fine-tuning domain with other text rewards any score that finds the
domain, so the questions are reported apart:

- **finds the domain**: the pool-wide figures (``selec.evaluate``: precision@k with k the
  number of members, its lift over random, AUC of members against the whole pool), and the AUC
  of every same-style text, member or not, against the other domain;
- **finds the members**: members against same-style texts the model never trained on, and
  nothing else: AUC, precision@k (k = members) and TPR at 5% FPR, each with a bootstrap
  interval (members and non-members resampled apart), and the AUC's difference from a
  membership baseline's (e.g. the reference-model ratio) on the same resampled texts.

The retraining test judges a selection the way Morris et al. (2025) do, by training on it:
the base fine-tuned by the one trainer on the selected texts, on as many random pool texts
and on as many true members, then each model's loss on same-style held-out records and its
member-versus-held-out loss gap. A selection's worth is where it falls between random and
the truth.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench import metrics, stats
from workbench.config import DATA_DIR, ModelSpec
from workbench.contract import Progress, scaled_progress
from workbench.lab_data import OTHER_DOMAIN_SOURCE
from workbench.membership import attack_scores
from workbench.selec import WeightDiff, evaluate
from workbench.session import load_session
from workbench.training import Example, TrainingRecipe, train_adapter

MEMBER_FPR = 0.05
SHIPPED_SELEC = DATA_DIR / "selec"  # benchmarks/selec_eval.py at its committed grid


def shipped(folder: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """The shipped benchmark's (questions, retraining) tables: None when it has not been run,
    retraining None when its run has not reached the retraining test."""
    folder = Path(folder or SHIPPED_SELEC)
    if not (folder / "questions.csv").is_file():
        return None
    retraining, losses = folder / "retraining.csv", folder / "retraining-losses.parquet"
    if not retraining.is_file():
        return pd.read_csv(folder / "questions.csv"), None
    table = pd.read_csv(retraining)
    if losses.is_file():
        table = table.merge(against_random(pd.read_parquet(losses)), on="selection", how="left")
    return pd.read_csv(folder / "questions.csv"), table


def against_random(losses: pd.DataFrame, random_prefix: str = "random", seed: int = 0) -> pd.DataFrame:
    """Each selection's held-out loss minus the random selections' mean loss on the same record,
    with a paired bootstrap interval over the held-out records (``retraining_test``'s losses).
    DataFrame(selection, minus_random, minus_random_low, minus_random_high); NaN for the random ones."""
    heldout = losses[losses["set"] == "held out"].pivot_table(index="text", columns="selection", values="loss")
    randoms = [c for c in heldout.columns if c.startswith(random_prefix)]
    if not randoms:
        raise ValueError(f"The losses hold no {random_prefix}… selection to read the others against.")
    floor = heldout[randoms].mean(axis=1)
    rows = [
        (
            name,
            *(
                stats.mean_difference(heldout[name], floor, paired=True, seed=seed)
                if name not in randoms
                else (math.nan,) * 3
            ),
        )
        for name in heldout.columns
    ]
    return pd.DataFrame(rows, columns=["selection", "minus_random", "minus_random_low", "minus_random_high"])


def precision_at_k(positives: Sequence[float], negatives: Sequence[float], k: int | None = None) -> float:
    """The share of positives among the ``k`` highest scores (default k = number of positives),
    ties at the cut shared out at random (their expected share)."""
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    k = len(positives) if k is None else k
    if not 1 <= k <= len(positives) + len(negatives):
        raise ValueError(f"k must be between 1 and the number of texts ({len(positives) + len(negatives)}).")
    cut = np.sort(np.r_[positives, negatives])[::-1][k - 1]
    above, tied = (positives > cut).sum(), (positives == cut).sum()
    tied_all = (positives == cut).sum() + (negatives == cut).sum()
    taken = k - ((positives > cut).sum() + (negatives > cut).sum())
    return float((above + tied * taken / tied_all) / k)


def member_figures(
    positives: Sequence[float],
    negatives: Sequence[float],
    fpr: float = MEMBER_FPR,
    confidence: float = 0.95,
    seed: int = 0,
    draws: int = 1000,
) -> dict[str, float]:
    """Members (``positives``) against same-style non-members: auc, precision (k = members) and
    tpr (at ``fpr``; NaN where not estimable), each with _low/_high bootstrap bounds, and random
    (the precision of a random pick), with the counts n_members and n_nonmembers."""  # fmt: skip
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    if not len(positives) or not len(negatives):
        raise ValueError("The members question needs members and same-style non-members.")
    roc = stats.roc_summary(positives, negatives, (fpr,), confidence, seed, draws)
    key = f"tpr@{fpr:g}"
    precision = precision_at_k(positives, negatives)
    low, high = stats.bootstrap_groups(
        lambda g: precision_at_k(positives[g[0]], negatives[g[1]]),
        [len(positives), len(negatives)],
        confidence,
        seed,
        draws,
    )
    return {
        "auc": roc["auc"], "auc_low": roc["auc_low"], "auc_high": roc["auc_high"],
        "precision": precision, "precision_low": low, "precision_high": high, "random": len(positives) / (len(positives) + len(negatives)),
        "tpr": roc[key], "tpr_low": roc[f"{key}_low"], "tpr_high": roc[f"{key}_high"],
        "n_members": len(positives), "n_nonmembers": len(negatives),
    }  # fmt: skip


def check_pool(pool: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(same style, member) flags of a pool that can answer the members question: a "member"
    and a "source" column (the lab pool), members, and same-style texts that are not."""
    if "member" not in pool or "source" not in pool:
        raise ValueError('The members question needs a pool with "member" and "source" columns (the lab pool).')
    style, member = (pool["source"] != OTHER_DOMAIN_SOURCE).to_numpy(), pool["member"].to_numpy(bool)
    if not member.any() or member[style].all():
        raise ValueError("The members question needs members and same-style non-members in the pool.")
    return style, member


def two_questions(
    pool: pd.DataFrame,
    scores: Mapping[str, Sequence[float]],
    baseline: str | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    draws: int = 1000,
) -> pd.DataFrame:
    """One row per method of ``scores`` (name → a score per pool text, in pool order, higher =
    more likely a member): the domain question (domain_precision, domain_lift, domain_auc:
    members against the whole pool; style_auc: same-style texts against the other domain, NaN
    without any) and
    the members question (``member_figures`` on the same-style texts); with ``baseline`` (a name
    in ``scores``), each AUC minus the baseline's on the same resampled texts, with its interval
    and reading. ``chance`` says whether the members AUC is distinguishable from 0.5."""  # fmt: skip
    style, member = check_pool(pool)
    if any(len(v) != len(pool) for v in scores.values()):
        raise ValueError("Every method needs one score per pool text.")
    unscored = {name: int(np.isnan(np.asarray(v, dtype=float)).sum()) for name, v in scores.items()}
    if any(unscored.values()):
        raise ValueError(
            f"Some texts have no score (too short to score?): {', '.join(f'{n}: {c}' for n, c in unscored.items() if c)}."
        )
    inside = {name: np.asarray(values, dtype=float)[style] for name, values in scores.items()}
    if baseline is not None and baseline not in scores:
        raise ValueError(f"No scores for the baseline {baseline!r}.")
    is_member = member[style]
    rows = []
    for name, values in scores.items():
        ranking = pool.assign(pool_index=range(len(pool)), score=np.asarray(values, dtype=float))
        ranking = ranking.sort_values("score", ascending=False, kind="stable")
        domain = evaluate(ranking)
        positives, negatives = inside[name][is_member], inside[name][~is_member]
        values = np.asarray(values, dtype=float)
        row = {
            "method": name, "domain_precision": domain["precision_at_k"], "domain_lift": domain["lift"], "domain_auc": domain["auc"],
            "style_auc": stats.auc(values[style], values[~style]),
        }  # fmt: skip
        row |= member_figures(positives, negatives, confidence=confidence, seed=seed, draws=draws)
        row["chance"] = stats.against_floor(row["auc_low"] - 0.5, row["auc_high"] - 0.5, "chance")
        if baseline is not None and name != baseline:
            base_pos, base_neg = inside[baseline][is_member], inside[baseline][~is_member]

            def gap(groups, positives=positives, negatives=negatives, base_pos=base_pos, base_neg=base_neg):
                pos, neg = groups
                return stats.auc(positives[pos], negatives[neg]) - stats.auc(base_pos[pos], base_neg[neg])

            row["minus_baseline"] = row["auc"] - stats.auc(base_pos, base_neg)
            row["gap_low"], row["gap_high"] = stats.bootstrap_groups(
                gap, [len(positives), len(negatives)], confidence, seed, draws
            )
            row["against_baseline"] = stats.against_floor(row["gap_low"], row["gap_high"], f"the {baseline} baseline")
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_scores(base, tuned, texts: Sequence[str], progress: Progress | None = None) -> pd.DataFrame:
    """The membership baselines SELEC is read against, one row per text: the tuned model's
    ``loss`` alone and its ratio to the base model's (``reference``), as Membership scores them."""
    return attack_scores(tuned, list(texts), reference=base, progress=progress)[["loss", "reference"]]


def judge(fitted: WeightDiff, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """``two_questions`` for a fitted weight diff on a lab pool, beside ``baseline_scores`` of
    the same texts when given (the reference ratio being the baseline every AUC is set
    against)."""
    check_pool(fitted.pool_)
    scores = {f"SELEC ({fitted.params}, {fitted.optimizer} target)": fitted.scores()}
    if baselines is not None:
        scores |= {name: baselines[name].to_numpy() for name in baselines}
    return two_questions(
        fitted.pool_, scores, baseline="reference" if baselines is not None else None, seed=fitted.seed
    )


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """``two_questions`` as pages, the CLI and notebooks print it: each figure with its interval."""

    rows = []
    for _, row in table.iterrows():
        shown = {"method": row["method"]} | ({"lab": row["lab"]} if "lab" in row else {})
        shown |= {
            "domain: precision@k (lift)": f"{row['domain_precision']:.3f} ({row['domain_lift']:.1f}×)",
            "domain: AUC": f"{row['domain_auc']:.3f}",
            "domain: same style above other text, AUC": ""
            if math.isnan(row["style_auc"])
            else f"{row['style_auc']:.3f}",
            "members: AUC [95%]": stats.estimate_text(row, "auc"),
            "members: precision@k [95%]": stats.estimate_text(row, "precision") + f" (random {row['random']:.3f})",
            f"members: TPR at {MEMBER_FPR:.0%} FPR [95%]": stats.estimate_text(row, "tpr"),
            "members: against chance": row["chance"],
        }
        if "minus_baseline" in row and not math.isnan(row["minus_baseline"]):
            shown["AUC − baseline [95%]"] = stats.difference_text(
                row["minus_baseline"], row["gap_low"], row["gap_high"]
            )
            shown["against the baseline"] = row["against_baseline"]
        rows.append(shown)
    return pd.DataFrame(rows).fillna("")


def readable_retraining(table: pd.DataFrame) -> pd.DataFrame:
    """``worth(retraining_test(…))`` as pages print it: each loss and gap with its interval."""
    return pd.DataFrame({
        "selection": table["selection"], "texts": table["texts"],
        "held-out loss [95%]": [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" for v, lo, hi in zip(table["heldout_loss"], table["heldout_low"], table["heldout_high"])],
        "members − held-out [95%]": [stats.difference_text(v, lo, hi) for v, lo, hi in zip(table["gap"], table["gap_low"], table["gap_high"])],
        **({"held-out loss − random [95%]": [
            "" if math.isnan(v) else stats.difference_text(v, lo, hi)
            for v, lo, hi in zip(table["minus_random"], table["minus_random_low"], table["minus_random_high"])
        ]} if "minus_random" in table else {}),
        "worth (held-out loss)": table["heldout_loss_worth"].map("{:.2f}".format),
        "worth (gap)": table["gap_worth"].map("{:.2f}".format),
    })  # fmt: skip


def mean_losses(model, texts: Sequence[str], batch_size: int = 16, progress: Progress | None = None) -> np.ndarray:
    """Mean NLL per token of each text under ``model`` (the contract's scoring)."""
    encoded = [model.tokenizer.encode(text)[: model.info.context_length] for text in texts]
    return np.array([metrics.log_perplexity(lp) for lp in model.score_ids(encoded, batch_size, progress)])


def retraining_test(
    base: str,
    selections: Mapping[str, Sequence[str]],
    members: Sequence[str],
    heldout: Sequence[str],
    out: str | Path,
    recipe: TrainingRecipe,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fine-tune ``base`` on each selection (name → texts) into ``out``/name (an adapter already
    there is reused) and score it, beside the base model untouched. Returns (table, losses):
    per model the mean loss on the ``heldout`` records and on the ``members``, and members −
    held-out, each with a bootstrap interval; and every text's loss under every model. The
    held-out records must be texts no selection could hold."""  # fmt: skip
    chosen = {text for texts in selections.values() for text in texts}
    if chosen & set(heldout):
        raise ValueError("Some held-out records are in a selection: score on records no selection could hold.")
    if not members or not heldout:
        raise ValueError("The retraining test needs members and held-out records to score.")
    out = Path(out)
    rows, losses = [], []
    models = [("base model (no fine-tune)", None), *selections.items()]
    for index, (name, texts) in enumerate(models):
        part = scaled_progress(progress, index / len(models), (index + 1) / len(models), f"{name}: ")
        adapter = out / name
        if texts is not None:
            if not texts:
                raise ValueError(f"The selection {name!r} is empty.")
            provenance = {"selection": name, "texts_sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest()}
            if not (adapter / "adapter_config.json").is_file():
                train_adapter(
                    base,
                    [Example("", t) for t in texts],
                    adapter,
                    recipe,
                    progress=scaled_progress(part, 0.0, 0.8),
                    provenance=provenance,
                )
            elif json.loads((adapter / "recipe.json").read_text()).get("texts_sha256") != provenance["texts_sha256"]:
                raise ValueError(
                    f"{adapter} holds an adapter trained on other texts than the selection {name!r}: choose another folder."
                )
        model = load_session(ModelSpec(base, adapter=str(adapter) if texts is not None else None))
        member_loss, heldout_loss = (
            mean_losses(model, members),
            mean_losses(model, heldout, progress=scaled_progress(part, 0.8, 1.0)),
        )
        held = stats.bootstrap_mean(heldout_loss, seed=seed)
        gap = stats.mean_difference(member_loss, heldout_loss, seed=seed)
        rows.append({
            "selection": name, "texts": len(texts or ()), "heldout_loss": held[0], "heldout_low": held[1], "heldout_high": held[2],
            "member_loss": float(member_loss.mean()), "gap": gap[0], "gap_low": gap[1], "gap_high": gap[2],
        })  # fmt: skip
        losses.append(pd.DataFrame({
            "selection": name, "set": ["member"] * len(members) + ["held out"] * len(heldout),
            "text": [*members, *heldout], "loss": np.r_[member_loss, heldout_loss],
        }))  # fmt: skip
    return pd.DataFrame(rows), pd.concat(losses, ignore_index=True)


def worth(table: pd.DataFrame, random_prefix: str = "random", truth: str = "true members") -> pd.DataFrame:
    """``retraining_test``'s table with, per selection, where it falls between the mean of the
    random selections (0) and the true members (1), for the held-out loss and for the gap."""
    randoms = table[table["selection"].str.startswith(random_prefix)]
    if randoms.empty or truth not in set(table["selection"]):
        raise ValueError(f"The table needs {random_prefix}… and {truth!r} rows.")
    known = table.set_index("selection").loc[truth]
    shown = table.copy()
    for column in ("heldout_loss", "gap"):
        span = known[column] - randoms[column].mean()
        shown[f"{column}_worth"] = (shown[column] - randoms[column].mean()) / span if span else math.nan
    return shown
