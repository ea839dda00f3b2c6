"""Does shadow-model calibration keep PropInfer honest on labs it has never seen?

    python benchmarks/propinfer_calibration.py [--shadows DIR | --rebuild-shadows] [--n 400] [--quick]

Two held-out labs of the standard size (`workbench lab build`'s defaults: 300 records with
the canaries, 3 epochs, lr 2e-3, rank 16) get diagnosis and gender shares drawn by seed
from the shadow set's Dirichlet prior (--seed; the default 2611 was fixed before any result
of the current shadow recipe was seen; 1919 was the first round, whose result led to the
recipe's longer training, so it is no longer held out); each lab is
built into the cache (an earlier build of the same seed is reused), sampled N times with the
shadows' prompts and sampling settings, and estimated naively (Wilson intervals) and
calibrated on the shadow set (the shipped one unless --shadows or --rebuild-shadows).
Reported per lab and property: the mean absolute error of the shares, naive and calibrated,
and how many intervals cover the realized truth; then the wall time. About 2 × (12 min
training + 4 min sampling) on a 2-core CPU, plus about 45 min with --rebuild-shadows.

--quick runs the whole pipeline on tiny-llama with letter labelers in a few minutes, to
check that it runs; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from workbench.builds import command_line
from workbench.cache import cache_dir
from workbench.config import ModelSpec
from workbench.lab import LabDataset, LabRecipe, build
from workbench.propinfer import (
    LAB_PROPERTIES,
    KeywordLabeler,
    estimate,
    lab_labeler,
    run,
)
from workbench.session import load_session
from workbench.shadows import (
    METHODS,
    SHIPPED_SHADOWS,
    ShadowRecipe,
    ShadowSet,
    build_shadows,
    calibrate,
    draw_shares,
)

HELD_OUT_SEED = 2611  # the labs' shares and data; fixed before any result of the current shadow recipe was seen
LAB = {"n": 300, "epochs": 3, "lr": 2e-3, "rank": 16}
QUICK_LAB = {"n": 40, "epochs": 1, "lr": 2e-3, "rank": 2}
QUICK_SHADOWS = ShadowRecipe(base="tiny-llama", k=4, n_records=20, epochs=1, rank=2, n_samples=12, max_new_tokens=6)
QUICK_LABELERS = {  # lab values on letters: random-weight text gets labels
    "diagnosis": KeywordLabeler("diagnosis", {"digestive": ["e"], "respiratory": ["a"], "dermatological": ["o"]}),
    "gender": KeywordLabeler("gender", {"female": ["e"], "male": ["a"]}),
}


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message}", end="\r", flush=True)


def held_out_lab(index: int, shares: dict, base: str, settings: dict, folder: Path, seed: int) -> Path:
    out = folder / f"calibration-benchmark-{seed}-{index}"
    if (out / "build.json").is_file():
        print(f"lab {index}: reusing {out}")
        return out
    start = time.perf_counter()
    recipe = LabRecipe(base=base, shares=shares["diagnosis"], gender_shares=shares["gender"], seed=seed + index, **settings)
    build(out, recipe, _progress, command_line())
    print(f"\nlab {index}: built in {time.perf_counter() - start:.0f} s -> {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shadows", default=str(SHIPPED_SHADOWS), help="shadow set folder (default: the shipped one)")
    parser.add_argument("--rebuild-shadows", action="store_true", help="build the default recipe's shadow set into the cache first")
    parser.add_argument("--calibration", choices=list(METHODS), default="pooled")
    parser.add_argument("--n", type=int, default=400, help="generations per lab")
    parser.add_argument("--labs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="draws the held-out labs' shares and data")
    parser.add_argument("--quick", action="store_true", help="tiny-llama, tiny sizes: checks that it runs")
    args = parser.parse_args()
    wall = time.perf_counter()

    scratch = Path(tempfile.mkdtemp(prefix="calibration-benchmark-")) if args.quick else None
    if args.quick:
        shadows = build_shadows(scratch / "shadows", QUICK_SHADOWS, _progress)
    elif args.rebuild_shadows:
        start = time.perf_counter()
        recipe = ShadowRecipe()
        shadows = build_shadows(recipe.default_dir(), recipe, _progress, command_line())
        print(f"\nshadow set built in {time.perf_counter() - start:.0f} s -> {shadows.folder}")
    else:
        shadows = ShadowSet.load(args.shadows)
    recipe = shadows.recipe
    print(f"shadow set {shadows.folder}: {recipe.k} shadows of {recipe.base}, {recipe.n_records} records, {recipe.epochs} epochs")
    labelers = QUICK_LABELERS if args.quick else {p: lab_labeler(p) for p in LAB_PROPERTIES}
    settings = QUICK_LAB if args.quick else LAB
    cfg = dataclasses.replace(recipe.cfg(), n_samples=args.n)

    rows = []
    for index, shares in enumerate(draw_shares(args.seed, args.labs, recipe.alpha)):
        folder = held_out_lab(index, shares, recipe.base, settings, scratch or cache_dir() / "lab", args.seed)
        truth = LabDataset.load(folder / "dataset").truth["realized"]
        spec = ModelSpec(recipe.base, adapter=str(folder / "adapter"))
        start = time.perf_counter()
        result = run(load_session(spec), recipe.prompt_list(), cfg, labelers["diagnosis"], _progress, recipe.style)
        print(f"\nlab {index}: {args.n} generations in {time.perf_counter() - start:.0f} s")
        for prop, labeler in labelers.items():
            if prop != result.property:
                labels = labeler.label(result.generations["text"].tolist())
                estimates = estimate(labels, labeler.values, cfg.interval, cfg.confidence)
                generations = result.generations.assign(label=[label or "(unlabeled)" for label in labels])
                result = dataclasses.replace(result, property=prop, values=labeler.values, estimates=estimates, generations=generations)
            calibrated = calibrate(result, shadows, labeler, args.calibration, truth[prop], spec)
            table = calibrated.table
            print(f"\nlab {index}, {prop} ({int(table['unlabeled'].iloc[0])} of {args.n} unlabeled); {calibrated.calibration.verdict()}")
            for warning in calibrated.warnings:
                print(f"  warning: {warning}")
            print(f"  {'value':<17}{'truth':>7}{'naive':>8}  {'interval':<16}{'calibrated':>11}  interval")
            for r in table.itertuples():
                print(
                    f"  {r.value:<17}{r.true_share:>7.3f}{r.share:>8.3f}  [{r.ci_low:.3f}, {r.ci_high:.3f}]{'*' if r.covered else ' '}"
                    f"{r.calibrated:>11.3f}  [{r.cal_low:.3f}, {r.cal_high:.3f}]{'*' if r.cal_covered else ''}"
                )
            rows.append(
                (index, prop, table["error"].abs().mean(), table["cal_error"].abs().mean(), int(table["covered"].sum()), int(table["cal_covered"].sum()), len(table))
            )

    print(f"\nheld-out labs (shares drawn with seed {args.seed}), N = {args.n}, {args.calibration} calibration; * = interval covers the truth")
    print(f"{'lab':<5}{'property':<11}{'naive MAE':>11}{'calibrated MAE':>16}{'naive covers':>14}{'calibrated covers':>19}")
    for index, prop, naive, calibrated, covered, cal_covered, total in rows:
        print(f"{index:<5}{prop:<11}{naive:>11.3f}{calibrated:>16.3f}{f'{covered} of {total}':>14}{f'{cal_covered} of {total}':>19}")
    print(f"wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
