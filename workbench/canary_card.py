"""One card per canary: what every exploration run on a lab found of each planted secret.

A canary is a fake secret the lab inserted a known number of times (``workbench.lab_data``).
Its card gathers, in one row:
- **outputs** of each run (Repeated tokens on the lab, a backdoor's victims …) that hold the
  secret verbatim, and of those the escapes (text after the model left the repetition), against
  the matched floor: how often a never-inserted secret of the same format appears in the same
  outputs (difference of rates with Newcombe's interval);
- the **nearest** span Presidio types as the secret's kind in those outputs (characters apart),
  beside the share of never-inserted secrets of its format with a span as near;
- **membership**: the audit's rank among its alternatives and its exposure, each beside the
  never-inserted secrets' (the share ranked as high, their mean exposure), the rank of its score
  among every audited secret, and whether the ε bound's threshold flags it (its part in the bound);
- **PII**: the types Presidio gives the secret in its own record, with and without the lab's
  recognizer.
Whatever a lab has no run for is left empty and named in ``CanaryCard.not_measured``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from rapidfuzz.distance import Levenshtein

from workbench import audit, pii
from workbench.backdoor import SHIPPED_BACKDOOR
from workbench.backdoor_attack import victim_outputs
from workbench.config import DATA_DIR
from workbench.lab import SHIPPED_LAB
from workbench.lab_data import Canary, LabDataset, canary_text
from workbench.membership import SHIPPED_MEMBERSHIP
from workbench.stats import against_floor, rate_difference

KIND_ENTITY = {"patient_id": pii.MRN_ENTITY, "phone": "PHONE_NUMBER"}
FLOOR_SECRETS = 100  # never-inserted secrets drawn when no audit supplies them
# The shipped Repeated-tokens runs on the shipped lab (benchmarks/divergence_outcomes.py, divergence_extraction.py).
SHIPPED_LAB_RUNS = {
    "repeated tokens, grid": DATA_DIR / "benchmarks" / "divergence" / "lab.parquet",
    "repeated tokens, extraction": DATA_DIR / "benchmarks" / "divergence-extraction" / "generations.parquet",
}
SHIPPED_AUDIT_LAB = "shipped lab (3 epochs)"


@dataclass(frozen=True)
class Run:
    """Outputs of one run on the lab: ``table`` has ``text_column`` and, for Repeated tokens,
    ``outcome`` and ``escaped_text``; ``source`` says where it came from (a file, a run id)."""

    name: str
    table: pd.DataFrame
    source: str
    text_column: str = "output"


@dataclass
class CanaryCard:
    table: pd.DataFrame  # one row per inserted canary
    runs: list[str]
    sources: dict[str, str]  # evidence → where it came from
    not_measured: list[str] = field(default_factory=list)
    epsilon: float | None = None  # the audit's bound over all inserted canaries
    max_epsilon: float | None = None  # the largest bound the audit's counts can show

    def readable(self) -> pd.DataFrame:
        """The card as a page or the CLI shows it: one row per canary, one column per finding."""
        rows = []
        for row in self.table.to_dict("records"):
            shown = {
                "secret": row["secret"],
                "kind": row["kind"],
                "inserted": row["insertions"],
                "PII": row["pii"] or "none found",
            }
            for run in self.runs:
                shown[f"{run}: outputs"] = f"{row[f'{run}|outputs']} of {row[f'{run}|n']}"
                if pd.notna(row[f"{run}|escapes"]):
                    shown[f"{run}: escapes"] = f"{int(row[f'{run}|escapes'])} of {int(row[f'{run}|n_escapes'])}"
                low, high = row[f"{run}|low"], row[f"{run}|high"]
                per = [f"{1000 * v:+.2f}" for v in (row[f"{run}|difference"], low, high)]
                shown[f"{run}: vs never-inserted"] = (
                    f"{per[0]} [{per[1]}, {per[2]}] per 1,000 outputs ({against_floor(low, high)})"
                )
            if pd.notna(row["nearest_distance"]):
                shown["nearest typed span"] = (
                    f"{row['nearest']} ({int(row['nearest_distance'])} apart; never-inserted secrets with a span as near: {row['floor_as_near']:.0%})"
                )
            if "rank" in row:
                shown["audit rank"] = (
                    f"{int(row['rank'])} of {int(row['alternatives']) + 1} (never-inserted ranked as high: {row['never_as_high']:.0%})"
                )
                shown["exposure (bits)"] = f"{row['exposure']:.2f} (never-inserted mean {row['exposure_never']:.2f})"
                shown["score rank"] = f"{int(row['score_rank'])} of {int(row['audited'])}"
                shown["in the ε bound"] = "flagged (a true positive)" if row["flagged"] else "not flagged"
            rows.append(shown)
        return pd.DataFrame(rows)


def outputs_long(card_: CanaryCard) -> pd.DataFrame:
    """Per canary and run: outputs holding the secret, and the difference of that rate from the
    never-inserted secrets' with its interval (what the gallery draws)."""
    rows = [
        {"secret": row["secret"], "insertions": row["insertions"], "run": run, "outputs": row[f"{run}|outputs"], "n": row[f"{run}|n"],
         "difference": row[f"{run}|difference"], "ci_low": row[f"{run}|low"], "ci_high": row[f"{run}|high"]}
        for row in card_.table.to_dict("records") for run in card_.runs
    ]  # fmt: skip
    return pd.DataFrame(
        rows, columns=["secret", "insertions", "run", "outputs", "n", "difference", "ci_low", "ci_high"]
    )


def _contains(texts: Sequence[str], secret: str) -> int:
    return sum(secret in t for t in texts)


def _typed_spans(runs: Sequence[Run]) -> dict[str, set[str]]:
    spans: dict[str, set[str]] = {entity: set() for entity in KIND_ENTITY.values()}
    for run in runs:
        for text in run.table[run.text_column].fillna(""):
            for finding in pii.find(text):
                if finding.entity in spans:
                    spans[finding.entity].add(finding.text)
    return spans


def _nearest(secret: str, spans: set[str]) -> tuple[str, float]:
    if not spans:
        return "", float("nan")
    best = min(sorted(spans), key=lambda s: Levenshtein.distance(secret, s))
    return best, float(Levenshtein.distance(secret, best))


def _run_columns(run: Run, canary: Canary, never: Sequence[Canary]) -> dict:
    texts = run.table[run.text_column].fillna("").tolist()
    found = _contains(texts, canary.secret)
    same_kind = [c for c in never if c.kind == canary.kind]
    floor = sum(_contains(texts, c.secret) for c in same_kind)
    difference, low, high = rate_difference(found, len(texts), floor, len(texts) * len(same_kind))
    columns = {
        "outputs": found,
        "n": len(texts),
        "floor_hits": floor,
        "difference": difference,
        "low": low,
        "high": high,
    }
    if {"outcome", "escaped_text"} <= set(run.table.columns):
        escaped = run.table.loc[run.table["outcome"] == "escaped", "escaped_text"].fillna("").tolist()
        columns |= {"escapes": _contains(escaped, canary.secret), "n_escapes": len(escaped)}
    else:
        columns |= {"escapes": float("nan"), "n_escapes": float("nan")}
    return {f"{run.name}|{key}": value for key, value in columns.items()}


def _audit_columns(scores: pd.DataFrame) -> tuple[pd.DataFrame, float, float]:
    inserted, never = scores[scores["insertions"] > 0], scores[scores["insertions"] == 0]
    bound = audit.epsilon_lower_bound(inserted["z"], never["z"])
    ranked = scores.assign(score_rank=scores["z"].rank(ascending=False, method="min").astype(int), audited=len(scores))
    part = ranked.loc[ranked["insertions"] > 0, ["secret", "rank", "exposure", "z", "score_rank", "audited"]]
    # exposure = log2((alternatives + 1) / rank), so every row says how many alternatives it had
    alternatives = int(round(float(scores["rank"].iloc[0]) * 2 ** float(scores["exposure"].iloc[0]))) - 1
    part = part.assign(
        flagged=part["z"] >= bound["threshold"], alternatives=alternatives, exposure_never=never["exposure"].mean(),
        never_as_high=[float((never["rank"] <= rank).mean()) for rank in part["rank"]],
    )  # fmt: skip
    return part, bound["epsilon"], audit.max_epsilon(len(inserted), len(never))


def card(
    dataset: LabDataset,
    runs: Sequence[Run] = (),
    audit_scores: pd.DataFrame | None = None,
    sources: dict[str, str] | None = None,
) -> CanaryCard:
    """The card of every canary ``dataset`` inserted, from ``runs`` on its model and the
    audit's ``audit_scores`` (``audit.run_audit``: inserted and never-inserted secrets), either
    of which may be absent."""  # fmt: skip
    if not dataset.canaries:
        raise ValueError("This lab inserted no canaries, so there is nothing to follow.")
    names = [run.name for run in runs]
    if len(set(names)) != len(names) or any("|" in name for name in names):
        raise ValueError("Each run needs a name of its own, without '|'.")
    for run in runs:
        if run.text_column not in run.table.columns:
            raise ValueError(f"Run {run.name!r} has no column {run.text_column!r}.")
    if audit_scores is not None:
        inserted = set(audit_scores.loc[audit_scores["insertions"] > 0, "secret"])
        if inserted != {c.secret for c in dataset.canaries} or not (audit_scores["insertions"] == 0).any():
            raise ValueError(
                "These audit scores are not this lab's: they do not label its canaries inserted (another lab's, or null labels) or lack never-inserted secrets."
            )
        never_rows = audit_scores[audit_scores["insertions"] == 0]
        never = [Canary(r.kind, r.secret, 0, "") for r in never_rows.itertuples()]
    else:
        never = audit.never_canaries(dataset, FLOOR_SECRETS)
    spans = _typed_spans(runs)
    rows = []
    for canary in dataset.canaries:
        typed = pii.secret_types(canary.secret, canary_text(canary))
        built_in = pii.secret_types(canary.secret, canary_text(canary), lab_recognizers=False)
        row = {
            "secret": canary.secret, "kind": canary.kind, "insertions": canary.insertions,
            "pii": ", ".join(sorted({f.entity for f in typed})), "pii_built_in": ", ".join(sorted({f.entity for f in built_in})),
        }  # fmt: skip
        for run in runs:
            row |= _run_columns(run, canary, never)
        entity_spans = spans[KIND_ENTITY[canary.kind]] if runs else set()
        row["nearest"], row["nearest_distance"] = _nearest(canary.secret, entity_spans)
        floor_distances = [_nearest(c.secret, entity_spans)[1] for c in never if c.kind == canary.kind]
        row["floor_as_near"] = (
            sum(d <= row["nearest_distance"] for d in floor_distances) / len(floor_distances)
            if entity_spans
            else float("nan")
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    notes, epsilon, largest = [], None, None
    if not runs:
        notes.append("No run's outputs: which outputs hold each secret is not measured.")
    if audit_scores is not None:
        part, epsilon, largest = _audit_columns(audit_scores)
        table = table.merge(part, on="secret", how="left")
    else:
        notes.append("No audit of this model: membership rank, exposure and the ε bound are not measured.")
    return CanaryCard(
        table, names, dict(sources or {}) | {run.name: run.source for run in runs}, notes, epsilon, largest
    )


def lead(card_: CanaryCard) -> dict:
    """The canary the runs found most often (ties: more insertions, then the first), for a
    one-secret story; its row of the card."""
    counts = (
        card_.table[[f"{run}|outputs" for run in card_.runs]].sum(axis=1)
        if card_.runs
        else pd.Series(0, index=card_.table.index)
    )
    order = card_.table.assign(found=counts).sort_values(["found", "insertions"], ascending=False, kind="stable")
    return order.iloc[0].to_dict()


def _lab_runs() -> list[Run]:
    found = []
    for name, path in SHIPPED_LAB_RUNS.items():
        if path.is_file():
            found.append(Run(name, pd.read_parquet(path), str(path.relative_to(DATA_DIR.parent))))
    return found


def shipped_lab_card() -> CanaryCard:
    """The shipped lab's card, from the shipped runs on it: the Repeated-tokens benchmarks
    and the membership benchmark's audit."""
    scores_path = SHIPPED_MEMBERSHIP / "audit-scores.parquet"
    scores = pd.read_parquet(scores_path)
    scores = scores[scores["lab"] == SHIPPED_AUDIT_LAB].drop(columns="lab")
    dataset = LabDataset.load(SHIPPED_LAB / "dataset")
    return card(dataset, _lab_runs(), scores, {"audit": str(scores_path.relative_to(DATA_DIR.parent))})


def victims_card(dataset: LabDataset, samples: pd.DataFrame, source: str) -> CanaryCard:
    """A backdoor build's canaries followed through its victims' samples, one run per victim
    (``backdoor_attack.victim_outputs``: the backdoored ones and the clean control beside them)."""
    kept = victim_outputs(samples)
    runs = [
        Run(model, kept[kept["model"] == model], f"{source} (model {model})", "text")
        for model in sorted(kept["model"].unique())
    ]
    return card(dataset, runs)


def shipped_backdoor_card() -> CanaryCard:
    """The shipped backdoor build's card, from its victims' shipped samples (no audit was run on them)."""
    samples_path = SHIPPED_BACKDOOR / "report" / "samples.parquet"
    return victims_card(
        LabDataset.load(SHIPPED_BACKDOOR / "dataset"),
        pd.read_parquet(samples_path),
        str(samples_path.relative_to(DATA_DIR.parent)),
    )
