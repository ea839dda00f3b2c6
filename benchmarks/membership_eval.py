"""Membership inference and the canary audit on the lab, at the committed grid.

    python benchmarks/membership_eval.py --out DIR [--quick]

1. Membership on the shipped lab model: its 269 training dialogues against 2,000 same-style
   non-members (held-out records topped up from the lab generator, deduplicated), every attack
   (loss, zlib, Min-K%, Min-K%++, the reference ratio against the base model) and the blind
   text-only baseline: AUC and TPR at 1% and 0.1% FPR with bootstrap intervals, each AUC's
   difference from the blind baseline's.
2. The audit: the shipped lab's 5 canaries (inserted 1–16 times) and three audit labs of the
   standard recipe with 20 canaries (4 at each of 1, 2, 4, 8, 16 insertions; n = 300), trained
   1, 3 and 6 epochs; 100 never-inserted canaries each, 20 alternative secrets per canary; the
   ε lower bound at δ = 1e-5, 95% confidence, per insertion count and for all together, beside
   the largest bound the counts can show.
3. The null lab: the 3-epoch audit lab's canaries scored on the base model (trained on none of
   them), half labelled "inserted" at random: its bound must hold 0.

Outputs in DIR: membership/ (per-text scores), membership-summary.csv, audit-scores.parquet
(per canary, per lab), audit.csv, manifest.json (command, code version, seeds, seconds per
step). Audit labs are built once into DIR/labs/ and reused. --quick: tiny-llama, tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from workbench import audit, lab, lab_data
from workbench.builds import code_version, command_line
from workbench.config import DEFAULT_MODEL, ModelSpec
from workbench.membership import FPRS, MIN_NONMEMBERS, lab_sets, run_membership
from workbench.registry import LAB_MODEL
from workbench.session import load_session

AUDIT_CANARIES = (1, 2, 4, 8, 16) * 4
AUDIT_EPOCHS = (1, 3, 6)
# sized to this 2-core CPU: scoring runs at about 1,000 tokens a second
GRID = {
    "n_nonmembers": MIN_NONMEMBERS,
    "audit_n": 300,
    "n_never": 100,
    "alternatives": 20,
    "delta": audit.DELTA,
    "seed": 0,
}
QUICK = {"n_nonmembers": 60, "audit_n": 80, "n_never": 20, "alternatives": 5, "delta": audit.DELTA, "seed": 0}


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message[:90]:<90}", end="\r", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="tiny-llama, tiny sizes: checks that it runs")
    args = parser.parse_args()
    grid = QUICK if args.quick else GRID
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base_name, lab_name = ("tiny-llama", "tiny-llama") if args.quick else (DEFAULT_MODEL, LAB_MODEL)
    steps: dict[str, dict] = {}
    manifest = {"command": command_line(), "code_version": code_version(), "grid": grid, "steps": steps}

    def record(step: str, started: float) -> None:
        steps[step] = {"seconds": round(time.perf_counter() - started, 1), "seed": grid["seed"]}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        print(f"\n{step}: {steps[step]['seconds']:.0f} s", flush=True)

    shipped = lab_data.LabDataset.load(lab.SHIPPED_LAB / "dataset")
    base, tuned = load_session(base_name), load_session(lab_name)
    started = time.perf_counter()
    members, nonmembers = lab_sets(shipped, grid["n_nonmembers"])
    report = run_membership(tuned, members, nonmembers, reference=base, seed=grid["seed"], progress=_progress)
    report.save(out / "membership")
    summary = report.summary(seed=grid["seed"])
    summary.to_csv(out / "membership-summary.csv", index=False)
    record("membership", started)
    print(f"{report.values['members']} members, {report.values['nonmembers']} non-members")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    tables, scores = [], []

    def audited(name: str, model, dataset: lab_data.LabDataset, null: bool = False) -> None:
        started = time.perf_counter()
        scored = audit.run_audit(model, dataset, grid["n_never"], grid["alternatives"], grid["seed"], _progress)
        if null:
            scored = audit.null_labels(scored, grid["seed"])
        scores.append(scored.assign(lab=name))
        tables.append(audit.audit_table(scored, grid["delta"]).assign(lab=name))
        record(f"audit {name}", started)
        print(tables[-1].to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    audited("shipped lab (3 epochs)", tuned, shipped)
    for epochs in AUDIT_EPOCHS:
        recipe = lab.LabRecipe(
            base=base_name, n=grid["audit_n"], canaries=AUDIT_CANARIES if not args.quick else (1, 2, 4), epochs=epochs
        )
        started = time.perf_counter()
        folder = out / "labs" / f"epochs-{epochs}"
        dataset = lab.build(folder, recipe, _progress, command_line())
        record(f"build audit lab, {epochs} epochs", started)
        audited(
            f"audit lab, {epochs} epochs", load_session(ModelSpec(base_name, adapter=str(folder / "adapter"))), dataset
        )
        if epochs == 3:
            audited("null lab (base model, random labels)", base, dataset, null=True)
    pd.concat(scores).to_parquet(out / "audit-scores.parquet")
    pd.concat(tables).to_csv(out / "audit.csv", index=False)
    print(f"\nFPRs {FPRS}; δ = {grid['delta']}; outputs in {out}")


if __name__ == "__main__":
    main()
