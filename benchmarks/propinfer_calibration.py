"""Property inference off the prior: does shadow calibration beat plain shrinkage on labs whose
shares were chosen by hand?

    python benchmarks/propinfer_calibration.py --out DIR [--resume] [--quick]

The grid below was committed before any of its results was seen. Labs of the standard recipe
(`workbench lab build`'s defaults: 300 records with the canaries, 3 epochs, lr 2e-3, rank 16):
four with hand-chosen shares (one share ≥ 0.4, one ≤ 0.02, one near uniform, one with a skewed
gender split), then the two prior draws of the previous round (Dirichlet(1), seed 2611). Each is
sampled N = 400 times with the shipped shadow set's prompts and sampling settings; the base model
is sampled the same way once (the "base" method's anchor). Both labelers — the keyword labeler
(the lab generator's words) and the names labeler (descriptions from the value names alone) —
label every generation, and every method of ``propinfer_judge.ASSUMPTIONS`` estimates the shares.
Beside them, the shipped shadows themselves, each estimated by maps fitted on the others (prior
draws of the shadow recipe).

Written into DIR after each lab (so a stopped run keeps what it finished; --resume goes on,
reusing the stored generations: a lab's adapter is deleted once it is sampled): estimates.csv (lab, group, labeler, property,
method, value, share, interval, truth, abs error, width, interval score, covered), summary.csv
(per group, labeler, property and method), differences.csv (each method minus naive, paired
two-stage bootstrap over labs then values, per group and labeler), ranges.csv (each lab's
labeled shares against the shadows' range, and the estimate that leads), generations-*.parquet,
labs/<name>/ (build record and dataset; adapters are not kept), manifest.json (command, code
version, grid, seconds per step). About 7–11 min per lab on a 2-core CPU (50 min in all, measured).

--tables-only recomputes the summary, differences and leading estimates of a finished run from
its estimates.csv and ranges.csv (no model call) with the current code, and records that in the
manifest.

--quick runs the pipeline on tiny-llama with a tiny shadow set and letter labelers: its numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from workbench.builds import code_version, command_line, run_manifest
from workbench.config import ModelSpec
from workbench.lab import LabRecipe, build
from workbench.lab_data import LabDataset
from workbench.propinfer import (
    LAB_PROPERTIES,
    UNLABELED,
    KeywordLabeler,
    PropInferResult,
    estimate,
    lab_labeler,
    run,
    scored,
)
from workbench.propinfer_judge import (
    ASSUMPTIONS,
    base_shares,
    compare,
    james_stein,
    leading,
    paired_differences,
    score_summary,
    shadow_evidence,
    shadow_range,
)
from workbench.session import load_session
from workbench.shadows import SHIPPED_SHADOWS, ShadowRecipe, ShadowSet, build_shadows, draw_shares

DIAGNOSIS_ORDER = ("digestive", "mental health", "respiratory", "cardiovascular", "musculoskeletal", "dermatological")


def _shares(*values: float) -> dict[str, float]:
    return dict(zip(DIAGNOSIS_ORDER, values))


GRID = {
    "labs": {  # hand-chosen before any run; not the two labs of the issue
        "one large": {"diagnosis": _shares(0.45, 0.05, 0.15, 0.10, 0.15, 0.10), "female": 0.55, "seed": 3101},
        "one rare": {"diagnosis": _shares(0.20, 0.25, 0.02, 0.18, 0.20, 0.15), "female": 0.45, "seed": 3102},
        "near uniform": {"diagnosis": _shares(0.17, 0.17, 0.16, 0.17, 0.16, 0.17), "female": 0.50, "seed": 3103},
        "skewed gender": {"diagnosis": _shares(0.10, 0.30, 0.15, 0.20, 0.10, 0.15), "female": 0.10, "seed": 3104},
    },
    "prior_draws": {"seed": 2611, "k": 2},  # the previous round's held-out labs: shares drawn from the shadows' prior
    "lab_recipe": {"n": 300, "epochs": 3, "lr": 2e-3, "rank": 16},
    "n_samples": 400,
    "labelers": ["keyword", "names"],
    "methods": list(ASSUMPTIONS),
    "shadows": "data/shadows",
    "bootstrap": {"draws": 2000, "seed": 0, "confidence": 0.95},
}
QUICK = {
    **GRID,
    "labs": {"one large": GRID["labs"]["one large"], "near uniform": GRID["labs"]["near uniform"]},
    "prior_draws": {"seed": 2611, "k": 1},
    "lab_recipe": {"n": 40, "epochs": 1, "lr": 2e-3, "rank": 2},
    "n_samples": 24,
    "labelers": ["keyword"],
    "shadows": "tiny set built in a scratch folder",
    "bootstrap": {"draws": 200, "seed": 0, "confidence": 0.95},
}
QUICK_SHADOWS = ShadowRecipe(base="tiny-llama", k=4, n_records=20, epochs=1, rank=2, n_samples=12, max_new_tokens=6)
QUICK_LABELERS = {  # lab values on letters: random-weight text gets labels
    "diagnosis": KeywordLabeler("diagnosis", {d: [letter] for d, letter in zip(DIAGNOSIS_ORDER, "eaoiut")}),
    "gender": KeywordLabeler("gender", {"female": ["e"], "male": ["a"]}),
}


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message[:90]:<90}", end="\r", flush=True)


def lab_list(grid: dict) -> list[tuple[str, str, dict]]:
    """(name, group, recipe settings) of every lab in the grid, hand-chosen first."""
    labs = [
        (
            name,
            "hand-chosen",
            {
                "shares": lab["diagnosis"],
                "gender_shares": {"female": lab["female"], "male": 1 - lab["female"]},
                "seed": lab["seed"],
            },
        )
        for name, lab in grid["labs"].items()
    ]
    draws = grid["prior_draws"]
    for i, shares in enumerate(draw_shares(draws["seed"], draws["k"])):
        labs.append(
            (
                f"prior {draws['seed']}-{i}",
                "prior draw",
                {"shares": shares["diagnosis"], "gender_shares": shares["gender"], "seed": draws["seed"] + i},
            )
        )
    return labs


def labelers_of(grid: dict, quick: bool) -> dict[tuple[str, str], object]:
    if quick:
        return {("keyword", p): QUICK_LABELERS[p] for p in LAB_PROPERTIES}
    return {(kind, p): lab_labeler(p, kind) for kind in grid["labelers"] for p in LAB_PROPERTIES}


def relabeled(result, labeler):
    """The run's generations under another labeler (no new sampling)."""
    labels = labeler.label(result.generations["text"].tolist())
    estimates = estimate(labels, labeler.values, result.cfg.interval, result.cfg.confidence, seed=result.cfg.seed)
    generations = result.generations.assign(label=[UNLABELED if label is None else label for label in labels])
    return dataclasses.replace(
        result, property=labeler.property, values=labeler.values, estimates=estimates, generations=generations
    )


def anchor_of(base_run) -> object:
    """The base method's anchor, or None (the method left out) when the base's generations got no label."""
    try:
        return base_shares(base_run)
    except ValueError as err:
        print(f"no base correction for {base_run.property}: {err}")
        return None


def generations_file(out: Path, name: str) -> Path:
    return out / f"generations-{name.replace(' ', '-')}.parquet"


def sampled(out: Path, name: str, spec: ModelSpec, recipe: ShadowRecipe, n: int, labeler, steps: dict):
    """The run of ``spec`` with the shadows' prompts and settings; its generations stored, and reused when stored."""
    stored = generations_file(out, name)
    cfg = dataclasses.replace(recipe.cfg(), n_samples=n)
    if stored.is_file():
        generations = pd.read_parquet(stored)
        result = PropInferResult(
            labeler.property, labeler.values, spec.name, cfg, None, generations, recipe.prompt_list(), recipe.style
        )
        return relabeled(result, labeler)
    started = time.perf_counter()
    result = run(load_session(spec), recipe.prompt_list(), cfg, labeler, _progress, recipe.style)
    steps[f"sample {name}"] = round(time.perf_counter() - started, 1)
    result.generations.to_parquet(stored, index=False)
    return result


def shadow_rows(shadows: ShadowSet, labeler, methods, anchor, confidence: float) -> pd.DataFrame:
    """Each shipped shadow estimated by every method, the shadow methods' maps fitted on the other shadows."""
    frames = []
    truth = shadows.truth(labeler.property, labeler.values)
    for k, labels in enumerate(shadows.labels(labeler)):  # the estimates from a shadow's own counts
        true = dict(zip(labeler.values, truth[k]))
        naive = estimate(labels, labeler.values, "wilson", confidence)
        if "naive" in methods:
            frames.append(
                scored(naive[["value", "share", "ci_low", "ci_high"]], true, confidence).assign(
                    lab=shadows.shadows[k].name, method="naive"
                )
            )
        if "james-stein" in methods:
            shrunk = (
                james_stein(naive["count"].to_numpy(), confidence).drop(columns="strength").assign(value=labeler.values)
            )
            frames.append(scored(shrunk, true, confidence).assign(lab=shadows.shadows[k].name, method="james-stein"))
    for method in methods:
        if method in ("naive", "james-stein") or (method == "base" and anchor is None):
            continue
        sweep = shadows.sweep(labeler, method, confidence, anchor if method == "base" else None)
        part = sweep.loc[sweep["estimate"] == "calibrated"]
        for shadow, rows in part.groupby("shadow", sort=False):
            true = dict(zip(rows["value"], rows["true_share"]))
            frames.append(
                scored(rows[["value", "share", "ci_low", "ci_high"]], true, confidence).assign(
                    lab=shadow, method=method
                )
            )
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true", help="go on from a stopped run of the same grid in DIR")
    parser.add_argument("--quick", action="store_true", help="tiny-llama, tiny sizes: checks that it runs")
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="recompute a finished run's tables from its estimates (no model call)",
    )
    args = parser.parse_args()
    grid = QUICK if args.quick else GRID
    out = Path(args.out)
    if args.tables_only:
        if args.quick:
            raise SystemExit("--tables-only recomputes a full run (its shadow set is the shipped one).")
        return tables_only(out, grid, args.quick)
    out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter()
    if not (args.resume and (out / "manifest.json").is_file()) and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give an empty folder, or --resume a run of the same grid.")
    try:
        manifest = run_manifest(out, grid, args.resume)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    steps = manifest["seconds"]

    def save() -> None:
        manifest["wall_seconds"] = round(time.perf_counter() - wall, 1) + manifest.get("earlier_wall_seconds", 0)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))

    manifest["earlier_wall_seconds"] = manifest.get("wall_seconds", 0)
    scratch = Path(tempfile.mkdtemp()) if args.quick else None
    shadows = (
        build_shadows(scratch / "shadows", QUICK_SHADOWS, _progress) if args.quick else ShadowSet.load(SHIPPED_SHADOWS)
    )
    recipe, confidence, boot = shadows.recipe, grid["bootstrap"]["confidence"], grid["bootstrap"]
    labelers = labelers_of(grid, args.quick)
    first = labelers[next(iter(labelers))]

    base_run = sampled(out, "base", ModelSpec(recipe.base), recipe, grid["n_samples"], first, steps)
    anchors = {key: anchor_of(relabeled(base_run, labeler)) for key, labeler in labelers.items()}
    save()

    frames, ranges = [], []
    evidence = {key: shadow_evidence(shadows, labeler, confidence=confidence) for key, labeler in labelers.items()}
    for (kind, prop), labeler in labelers.items():
        frames.append(
            shadow_rows(shadows, labeler, grid["methods"], anchors[kind, prop], confidence).assign(
                group="shadows (leave one out)", labeler=kind, property=prop
            )
        )
    for name, group, settings in lab_list(grid):
        folder = out / "labs" / name.replace(" ", "-")
        if not generations_file(out, name).is_file():  # sampled already: its adapter is gone, and not needed
            started = time.perf_counter()
            build(folder, LabRecipe(base=recipe.base, **settings, **grid["lab_recipe"]), _progress, command_line())
            steps.setdefault(f"build {name}", round(time.perf_counter() - started, 1))
        truth = LabDataset.load(folder / "dataset").truth["realized"]
        result = sampled(
            out, name, ModelSpec(recipe.base, adapter=str(folder / "adapter")), recipe, grid["n_samples"], first, steps
        )
        shutil.rmtree(folder / "adapter", ignore_errors=True)  # not shipped: the dataset and recipe rebuild it
        for (kind, prop), labeler in labelers.items():
            run_ = relabeled(result, labeler)
            table = compare(run_, labeler, shadows, grid["methods"], truth[prop], anchors[kind, prop])
            frames.append(table.assign(lab=name, group=group, labeler=kind, property=prop))
            where = shadow_range(shadows, labeler, dict(zip(run_.estimates["value"], run_.estimates["share"])))
            lead, why = leading(where, evidence[kind, prop])
            ranges.append(where.assign(lab=name, group=group, labeler=kind, property=prop, leads=lead, why=why))
        write_tables(out, frames, ranges, boot)
        save()
        print(f"\n{name}: done ({time.perf_counter() - wall:.0f} s so far)", flush=True)
    save()
    if scratch is not None:
        shutil.rmtree(scratch)
    print_tables(out)
    print(f"wall time {manifest['wall_seconds']:.0f} s (this invocation {time.perf_counter() - wall:.0f} s)")


def write_tables(out: Path, frames: list[pd.DataFrame], ranges: list[pd.DataFrame], boot: dict) -> None:
    estimates = pd.concat(frames, ignore_index=True)
    columns = [
        "group",
        "lab",
        "labeler",
        "property",
        "method",
        "value",
        "share",
        "ci_low",
        "ci_high",
        "true_share",
        "abs_error",
        "width",
        "interval_score",
        "covered",
    ]
    estimates = estimates[columns]
    estimates.to_csv(out / "estimates.csv", index=False)
    if ranges:
        pd.concat(ranges, ignore_index=True).to_csv(out / "ranges.csv", index=False)
    summarize_tables(out, estimates, boot)


def summarize_tables(out: Path, estimates: pd.DataFrame, boot: dict) -> None:
    """summary.csv and differences.csv from the estimates: per group, and over every standard lab
    (hand-chosen and prior draws together: two prior draws alone make a rough lab-level interval)."""
    labs = estimates.loc[estimates["group"] != "shadows (leave one out)"].assign(group="all standard labs")
    grouped = pd.concat([estimates, labs], ignore_index=True)
    score_summary(grouped, ("group", "labeler", "property", "method")).to_csv(out / "summary.csv", index=False)
    differences = [
        paired_differences(part, confidence=boot["confidence"], seed=boot["seed"], draws=boot["draws"]).assign(
            group=group, labeler=kind
        )
        for (group, kind), part in grouped.groupby(["group", "labeler"], sort=False)
    ]
    pd.concat(differences, ignore_index=True).to_csv(out / "differences.csv", index=False)


def tables_only(out: Path, grid: dict, quick: bool) -> None:
    """Recompute the tables of a finished run with the current code (no model call)."""
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["grid"] != json.loads(json.dumps(grid)):
        raise SystemExit(f"{out} holds a run of another grid.")
    shadows = ShadowSet.load(SHIPPED_SHADOWS)
    confidence = grid["bootstrap"]["confidence"]
    evidence = {
        key: shadow_evidence(shadows, labeler, confidence=confidence)
        for key, labeler in labelers_of(grid, quick).items()
    }
    ranges = pd.read_csv(out / "ranges.csv")
    parts = []
    for (_lab, kind, prop), where in ranges.groupby(["lab", "labeler", "property"], sort=False):
        lead, why = leading(where, evidence[kind, prop])
        parts.append(where.assign(leads=lead, why=why))
    pd.concat(parts, ignore_index=True).to_csv(out / "ranges.csv", index=False)
    summarize_tables(out, pd.read_csv(out / "estimates.csv"), grid["bootstrap"])
    pd.DataFrame(
        [(k, p, e["difference"], e["low"], e["high"]) for (k, p), e in evidence.items()],
        columns=["labeler", "property", "interval_score_difference", "low", "high"],
    ).to_csv(out / "shadow-evidence.csv", index=False)
    manifest.setdefault("tables_recomputed", []).append({"command": command_line(), "code_version": code_version()})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print_tables(out)


def print_tables(out: Path) -> None:
    fmt = {"float_format": lambda v: f"{v:.3f}", "index": False}
    print("\nper group, labeler, property and method: MAE, mean interval width, mean interval score, coverage")
    print(pd.read_csv(out / "summary.csv").to_string(**fmt))
    print("\neach method minus naive (negative is better), paired two-stage bootstrap over labs then values")
    print(pd.read_csv(out / "differences.csv").to_string(**fmt))
    print("\nwhich estimate leads on each lab (labeled shares inside the shadows' range?)")
    leads = (
        pd.read_csv(out / "ranges.csv")
        .groupby(["lab", "labeler", "property"], sort=False)
        .agg(leads=("leads", "first"), outside=("inside", lambda inside: int((~inside).sum())))
    )
    print(leads.reset_index().to_string(index=False))


if __name__ == "__main__":
    main()
