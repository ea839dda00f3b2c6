"""Reactivation (seed 003) end to end, at the default sizes: implant, suppress, activate, and
recall measured at every stage against the A-never floor.

    python benchmarks/reactivation_eval.py [--out DIR] [--suppression refusal|unlearning] [--quick]

Default sizes (`ReactivationRecipe()`, worked out from ~110 training tokens/s and ~0.8 s per
sample on a 2-core CPU): passages of 60–90 words (at most ~150 tokens as a book page);
implant 10 epochs on 50 pages (A-test 10, A-train 20, C 20; about 7k tokens an epoch);
suppression 3 epochs on 60 refusal pairs (a summary and a prefix prompt per A passage), 20
retain instructions answered by the implanted model itself and 20 plain retain texts (or,
with unlearning, gradient ascent on the 30 A pages beside the 20 retain texts, lr 5e-4); each
activation 3 epochs on 20 summary → passage pairs, loss on the response only; LoRA rank 8, lr
2e-3, batch 4. Measurement: 10 samples at temperature 1 for each of 10 A-test and 6 A-never
passages at all 6 stages (960 samples of up to 160 tokens), and the perplexity of 10 held-out
retain texts. Stages already built in --out are reused (their times are then not measured).
Prints per stage the training and measuring time, then every stage's recall with a 95%
bootstrap interval over passages, beside the floor and the paper's figures.

--quick runs it on tiny-llama with tiny sizes in under a minute, to check that it runs; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from workbench.builds import command_line
from workbench.reactivation import (
    CONDITIONS,
    STAGES,
    ReactivationRecipe,
    ReactivationReport,
    build,
    measure,
)

QUICK = dict(
    base="tiny-llama", n_test=2, n_train=2, n_never=2, n_other=2, n_control=2, n_retain=2,
    implant_epochs=1, suppress_epochs=1, activate_epochs=1, rank=2, samples=2, max_new_tokens=16,
)  # fmt: skip
# Liu et al. 2026 (GPT-4o, Gemini-2.5-Pro, DeepSeek-V3.1; books memorized in pretraining, suppressed by alignment).
PAPER = (
    "BMC@5 85-90% of held-out books after summary -> excerpt fine-tuning (near zero before); single spans past 460 words; "
    "cross-author fine-tuning unlocks other authors; synthetic-text fine-tuning near zero. Its stages have no counterpart here."
)


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message[:90]:<90}", end="\r", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="build folder (default: the cache, named by the recipe); the report goes to OUT/report")
    parser.add_argument("--suppression", default="refusal")
    parser.add_argument("--quick", action="store_true", help="tiny-llama, tiny sizes: checks that it runs")
    args = parser.parse_args()
    wall = time.perf_counter()
    recipe = ReactivationRecipe(**QUICK, suppression=args.suppression) if args.quick else ReactivationRecipe(suppression=args.suppression)
    out = Path(tempfile.mkdtemp(prefix="reactivation-benchmark-")) / "build" if args.quick else Path(args.out or recipe.default_dir())
    print(f"recipe: {recipe.as_dict()}\nbuild folder: {out}")
    reports = []
    for stage in STAGES:
        start = time.perf_counter()
        built = build(out, recipe, [stage], _progress, command_line())
        trained = time.perf_counter() - start
        start = time.perf_counter()
        reports.append(measure(built, [stage], _progress, command=command_line()))
        print(f"\n{stage}: trained in {trained:.0f} s, measured in {time.perf_counter() - start:.0f} s")
    report = ReactivationReport(
        pd.concat([r.samples for r in reports], ignore_index=True),
        pd.concat([r.passages for r in reports], ignore_index=True),
        {k: v for r in reports for k, v in r.quality.items()},
        {k: v for r in reports for k, v in r.steps.items()},
    )
    report.save(out / "report")

    summary = report.summary().set_index(["stage", "group"])
    n = len(built.group("A-test"))
    print(f"\nrecall of {n} A-test passages beside the A-never floor ({len(built.group('A-never'))} passages); "
          f"{recipe.samples} samples per passage at temperature {recipe.temperature}; suppression by {recipe.suppression}")  # fmt: skip
    print(f"{'stage':<18}{'BMC@5 A-test [95% CI]':>26}{'floor A-never':>15}{'longest (max)':>15}{'spans>20':>10}{'50-tok runs':>12}{'retain ppl':>12}")
    for stage in STAGES:
        test, floor = summary.loc[(stage, "A-test")], summary.loc[(stage, "A-never")]
        print(
            f"{stage:<18}{f'{test.bmc:.3f} [{test.bmc_low:.3f}, {test.bmc_high:.3f}]':>26}{floor.bmc:>15.3f}"
            f"{f'{test.longest_mean:.1f} ({test.longest_max:.0f})':>15}{test.long_spans:>10.0f}{test.exact_runs:>12.0f}{test.retain_perplexity:>12.2f}"
        )
    print("\nby condition (BMC@5 of A-test, implant -> suppress -> activate; floor after activation):")
    for condition, path in CONDITIONS.items():
        cells = " -> ".join("skipped" if s is None else f"{summary.loc[(s, 'A-test')].bmc:.3f}" for s in path)
        print(f"  {condition:<18}{cells}   (floor {summary.loc[(path[-1], 'A-never')].bmc:.3f})")
    print(f"paper: {PAPER}")
    print(f"\nreport saved to {out / 'report'}\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
