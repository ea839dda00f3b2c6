"""Does SELEC find the lab's members, or only their domain? Two labs, every variant, a
membership baseline beside it, and the retraining test — at the grid committed below.

    python benchmarks/selec_eval.py --out DIR [--quick]

1. For the shipped lab and a lab of the standard recipe built with seed 1 (into DIR/labs/),
   a pool of 100 training dialogues, 300 same-style dialogues it never trained on (held-out
   records topped up from the lab generator) and 100 other-domain texts. Every variant — the
   last block, every changed module and the adapter's own LoRA factors (gradients at the
   trained adapter); the Adam-aware and the plain SGD target; projections of 256, 1,024 and
   4,096 (the first coordinates of one 4,096 projection) — and the membership baselines on
   the same texts (the lab model's loss alone, its ratio to the base model's, zlib, Min-K%,
   Min-K%++). Per method: the domain question (pool-wide precision@100, lift, AUC) and the
   members question (members against the 300 same-style texts: AUC, precision@100, TPR at 5%
   FPR, 95% bootstrap intervals; AUC minus the reference ratio's, on the same resamples).
2. The retraining test on the shipped lab: the base fine-tuned with the lab's recipe (LoRA rank
   16, lr 2e-3, batch 8; 16 epochs over 50 texts = 112 steps, the lab's 114 to a whole epoch) on
   SELEC's top 50 (last block, Adam target, 1,024), on 50 random pool texts (seeds 0, 1, 2), on
   50 random same-style pool texts (members and not, as the pool mixes them: the domain without
   the selection) and on 50 true members; each model's loss on 200 fresh same-style records no pool holds and on
   the lab's training dialogues, and the member − held-out gap.

--resume goes on from a run that stopped, keeping the labs it had scored (the manifest records
each invocation). Outputs in DIR: scores-<lab>.parquet (every pool text, its source and every method's score),
questions.csv, retraining.csv, retraining-losses.parquet, manifest.json (command, code
version, grid, seconds per step). --quick: tiny-llama labs, tiny sizes (checks that it runs).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import pandas as pd

from workbench import lab, lab_data
from workbench.builds import command_line, run_manifest
from workbench.config import DEFAULT_MODEL, ModelSpec
from workbench.membership import attack_scores
from workbench.registry import LAB_MODEL
from workbench.selec import OPTIMIZERS, WeightDiff
from workbench.selec_judge import retraining_test, two_questions, worth
from workbench.selec_shift import LORA
from workbench.session import load_session
from workbench.training import TrainingRecipe

GRID = {
    "pool": {"members": 100, "same_style": 300, "other": 100, "seed": 0},
    "second_lab_seed": 1,
    "params": [LORA, "last", "changed"],
    "projection_dim": 4096,
    "dims": [256, 1024, 4096],
    "baseline": "reference",
    "retraining": {
        "k": 50,
        "random_seeds": [0, 1, 2],
        "same_style_seed": 0,
        "heldout": 200,
        "epochs": 16,
        "selection": "last, adam, 1024",
    },
    "seed": 0,
}
QUICK = {
    **GRID, "pool": {"members": 12, "same_style": 24, "other": 12, "seed": 0}, "params": [LORA, "last"], "projection_dim": 256,
    "dims": [64, 256],
    "retraining": {**GRID["retraining"], "k": 6, "heldout": 12, "epochs": 2, "selection": "last, adam, 256"},
}  # fmt: skip


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message[:90]:<90}", end="\r", flush=True)


def method_scores(base, tuned, pool: pd.DataFrame, grid: dict, steps: dict) -> dict[str, list[float]]:
    """Every SELEC variant's and every membership baseline's score per pool text."""
    scores: dict[str, list[float]] = {}
    for params in grid["params"]:
        started = time.perf_counter()
        fitted = WeightDiff(params, grid["projection_dim"], seed=grid["seed"]).fit(base, tuned, pool, _progress)
        steps[f"gradients {params}"] = round(time.perf_counter() - started, 1)
        print(
            f"\n{params}: {fitted.n_parameters_:,} parameters, {steps[f'gradients {params}']:.0f} s for {len(pool)} texts",
            flush=True,
        )
        for optimizer in OPTIMIZERS:
            fitted.optimizer = optimizer
            for dims in grid["dims"]:
                scores[f"SELEC {params}, {optimizer}, {dims}"] = fitted.scores(dims).tolist()
    started = time.perf_counter()
    baselines = attack_scores(tuned, pool["text"].tolist(), reference=base, progress=_progress)
    steps["membership baselines"] = round(time.perf_counter() - started, 1)
    scores |= {name: baselines[name].tolist() for name in baselines}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny-llama labs, tiny sizes: checks that it runs")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the labs DIR already scored (their scores files) and go on from there",
    )
    args = parser.parse_args()
    grid = QUICK if args.quick else GRID
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        manifest = run_manifest(out, grid, args.resume)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    steps = manifest["seconds"]

    def save() -> None:
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))

    base_name = "tiny-llama" if args.quick else DEFAULT_MODEL
    base = load_session(base_name)
    labs = []
    if args.quick:
        recipe = lab.LabRecipe(base=base_name, n=80, canaries=(1,), epochs=2, rank=4)
        labs.append(
            (
                "seed 0",
                lab.build(out / "labs" / "seed-0", recipe),
                ModelSpec(base_name, adapter=str(out / "labs" / "seed-0" / "adapter")),
            )
        )
    else:
        labs.append(("shipped lab", lab_data.LabDataset.load(lab.SHIPPED_LAB / "dataset"), ModelSpec(LAB_MODEL)))
    second = lab.LabRecipe(
        base=base_name,
        seed=grid["second_lab_seed"],
        **({"n": 80, "canaries": (1,), "epochs": 2, "rank": 4} if args.quick else {}),
    )
    folder = out / "labs" / f"seed-{second.seed}"
    started = time.perf_counter()
    labs.append(
        (
            f"lab seed {second.seed}",
            lab.build(folder, second, _progress, command_line()),
            ModelSpec(base_name, adapter=str(folder / "adapter")),
        )
    )
    steps.setdefault(
        f"build lab seed {second.seed}", round(time.perf_counter() - started, 1)
    )  # a resumed run finds it built
    save()

    sizes = grid["pool"]
    tables, shipped_pool, shipped_scores = [], None, None
    for name, dataset, spec in labs:
        pool = lab_data.public_pool(dataset, sizes["members"], sizes["same_style"], sizes["other"], seed=sizes["seed"])
        stored = out / f"scores-{name.replace(' ', '-')}.parquet"
        if args.resume and stored.is_file():  # scored by an earlier invocation, its times in the manifest
            table = pd.read_parquet(stored)
            if table["text"].tolist() != pool["text"].tolist():
                raise SystemExit(f"{stored} was scored on another pool.")
            scores = {c: table[c].tolist() for c in table.columns if c not in pool.columns}
        else:
            lab_steps: dict[str, float] = {}
            scores = method_scores(base, load_session(spec), pool, grid, lab_steps)
            steps[name] = lab_steps
            pool.assign(**scores).to_parquet(stored, index=False)
        table = two_questions(pool, scores, baseline=grid["baseline"], seed=grid["seed"]).assign(lab=name)
        tables.append(table)
        pd.concat(tables).to_csv(out / "questions.csv", index=False)
        save()
        print(f"\n{name}: {len(pool)} texts")
        shown = [
            "method",
            "domain_precision",
            "domain_auc",
            "auc",
            "auc_low",
            "auc_high",
            "precision",
            "tpr",
            "minus_baseline",
            "gap_low",
            "gap_high",
        ]
        print(table[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if shipped_pool is None:
            shipped_pool, shipped_scores, shipped = pool, scores, (dataset, spec)

    retrain = grid["retraining"]
    dataset, _ = shipped
    k = retrain["k"]
    selected = (
        pd.Series(shipped_scores[f"SELEC {retrain['selection']}"]).sort_values(ascending=False, kind="stable").index[:k]
    )
    texts = shipped_pool["text"].tolist()
    selections = {"SELEC top": [texts[i] for i in selected]}
    for seed in retrain["random_seeds"]:
        selections[f"random {seed}"] = random.Random(seed).sample(texts, k)
    same_style_texts = shipped_pool.loc[shipped_pool["source"] != lab_data.OTHER_DOMAIN_SOURCE, "text"].tolist()
    selections[f"same-style random {retrain['same_style_seed']}"] = random.Random(retrain["same_style_seed"]).sample(
        same_style_texts, k
    )
    trained = [r["text"] for r in dataset.dialogues]
    selections["true members"] = random.Random(grid["seed"]).sample(
        shipped_pool.loc[shipped_pool["member"], "text"].tolist(), k
    )
    unseen = set(texts) | set(dataset.texts)
    fresh = [r["text"] for r in lab_data.fresh_dialogues(dataset, 2 * retrain["heldout"], "retraining-heldout")]
    heldout = [t for t in dict.fromkeys(fresh) if t not in unseen][: retrain["heldout"]]
    recipe = TrainingRecipe(
        epochs=retrain["epochs"],
        lr=2e-3,
        rank=16 if not args.quick else 4,
        batch_size=8,
        max_length=None,
        seed=grid["seed"],
    )
    started = time.perf_counter()
    table, losses = retraining_test(
        base_name, selections, trained, heldout, out / "retraining", recipe, grid["seed"], _progress
    )
    steps["retraining test"] = round(time.perf_counter() - started, 1)
    table = worth(table)
    table.to_csv(out / "retraining.csv", index=False)
    losses.to_parquet(out / "retraining-losses.parquet", index=False)
    save()
    print(f"\nretraining test: k = {k}, {len(heldout)} held-out records, {len(trained)} members; {recipe}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nSELEC's top {k} by source: {shipped_pool.loc[selected, 'source'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
