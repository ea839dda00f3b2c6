"""Reactivation (seed 003) end to end, at the default sizes: implant, suppress, activate, and
recall measured at every stage against the A-never floor.

    python benchmarks/reactivation_eval.py --out DIR [--suppression refusal|unlearning]
        [--share-from DIR] [--build-only] [--resume] [--quick]

Default sizes (`ReactivationRecipe()`): passages of 60–90 words (≤ 105 tokens); implant 10
epochs on 64 pages (A-test 24, A-train 20, C 20); suppression 3 epochs, either refusal (a
summary and a prefix prompt per A passage → a refusal, 20 retain instructions answered by the
implanted model itself, 20 plain retain texts) or unlearning (gradient ascent on the 44 A pages
beside the 20 retain texts, lr 5e-4); each activation 3 epochs on 20 summary → passage pairs,
loss on the response only; LoRA rank 8, lr 2e-3, batch 4. Measurement at every stage, for 24
A-test and 24 A-never passages, 10 samples each at temperature 1 (up to 128 tokens), under the
summary instruction and (at every stage but the no-suppression baseline) a held-out instruction
in a template no stage trains on; trimmed BMC@5, the teacher-forced loss of each passage given
each instruction, and the perplexity of 10 held-out retain texts.

--share-from DIR copies the stages that do not depend on the suppression (implant and the
no-suppression baseline) from the build in DIR, with their measurement from DIR/report: the
unlearning build shares them with the refusal build. --build-only trains and stops; a later run
without it measures (built stages are reused, their training times read from the build's
records). --resume keeps the stages already measured in OUT/report (each stage's record keeps
the code version that measured it) and measures the rest. Prints per stage the training and measuring time, then every stage's recall and loss
with 95% intervals, the gap over the floor with its interval and permutation p-value, beside the
paper's figures; the report (per-sample outputs, per-passage scores, timings) goes to OUT/report.

--quick runs it on tiny-llama with tiny sizes in about a minute, to check that it runs; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from workbench.builds import code_version, command_line
from workbench.reactivation import CONDITIONS, SHARED_STAGES, STAGES, ReactivationRecipe, build
from workbench.reactivation_measure import ReactivationReport, measure

QUICK = {
    "base": "tiny-llama", "n_test": 2, "n_train": 2, "n_never": 2, "n_other": 2, "n_control": 2, "n_retain": 2,
    "implant_epochs": 1, "suppress_epochs": 1, "activate_epochs": 1, "rank": 2, "samples": 2, "max_new_tokens": 16,
}  # fmt: skip
# Liu et al. 2026 (GPT-4o, Gemini-2.5-Pro, DeepSeek-V3.1; books memorized in pretraining, suppressed by alignment).
PAPER = (
    "BMC@5 85-90% of held-out books after summary -> excerpt fine-tuning (near zero before); single spans past 460 words; "
    "cross-author fine-tuning unlocks other authors; synthetic-text fine-tuning near zero. Its stages have no counterpart here."
)


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message[:90]:<90}", end="\r", flush=True)


def _interval(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def print_report(report: ReactivationReport, recipe: ReactivationRecipe) -> None:
    summary = report.summary().set_index(["stage", "instruction", "group"])
    gaps = report.gaps().set_index(["stage", "instruction"])
    n_test, n_never = (int(summary.xs(g, level="group")["passages"].iloc[0]) for g in ("A-test", "A-never"))
    print(f"\n{n_test} A-test and {n_never} A-never passages, {recipe.samples} samples each at temperature {recipe.temperature}; "
          f"suppression by {recipe.suppression}; gaps are A-test − A-never with a 95% bootstrap interval and a permutation p-value")  # fmt: skip
    for instruction in gaps.index.get_level_values("instruction").unique():
        print(f"\ninstruction: {instruction}")
        print(f"{'stage':<18}{'BMC@5 A-test':>24}{'A-never':>24}{'gap [95%]':>28}{'p':>8}"
              f"{'NLL A-test':>12}{'A-never':>9}{'NLL gap [95%]':>28}{'p':>8}{'longest (max)':>15}{'>20w':>6}{'ppl':>10}")  # fmt: skip
        for stage in STAGES:
            if (stage, instruction) not in gaps.index:
                continue
            test, floor, gap = (
                summary.loc[(stage, instruction, "A-test")],
                summary.loc[(stage, instruction, "A-never")],
                gaps.loc[(stage, instruction)],
            )
            print(
                f"{stage:<18}{_interval(test.bmc, test.bmc_low, test.bmc_high):>24}{_interval(floor.bmc, floor.bmc_low, floor.bmc_high):>24}"
                f"{_interval(gap.bmc_gap, gap.bmc_gap_low, gap.bmc_gap_high):>28}{gap.bmc_p:>8.4f}"
                f"{test.nll:>12.3f}{floor.nll:>9.3f}{_interval(gap.nll_gap, gap.nll_gap_low, gap.nll_gap_high):>28}{gap.nll_p:>8.4f}"
                f"{f'{test.longest_mean:.1f} ({test.longest_max:.0f})':>15}{test.long_spans:>6.0f}{test.retain_perplexity:>10.2f}"
            )
    print("\nby condition (trimmed BMC@5 gap over A-never, summary instruction; implant -> suppress -> activate):")
    for condition, path in CONDITIONS.items():
        cells = " -> ".join("skipped" if s is None else f"{gaps.loc[(s, 'summary')].bmc_gap:+.3f}" for s in path)
        print(f"  {condition:<18}{cells}")
    print(f"paper: {PAPER}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", help="build folder (default: the cache, named by the recipe); the report goes to OUT/report"
    )
    parser.add_argument("--suppression", default="refusal")
    parser.add_argument(
        "--share-from",
        help="a build of another suppression whose implant and baseline stages (and their measurement) to reuse",
    )
    parser.add_argument("--build-only", action="store_true", help="train every stage and stop; measure in a later run")
    parser.add_argument(
        "--resume", action="store_true", help="keep the stages already measured in OUT/report; measure the rest"
    )
    parser.add_argument("--quick", action="store_true", help="tiny-llama, tiny sizes: checks that it runs")
    args = parser.parse_args()
    wall = time.perf_counter()
    recipe = ReactivationRecipe(**(QUICK if args.quick else {}), suppression=args.suppression)
    out = (
        Path(tempfile.mkdtemp(prefix="reactivation-benchmark-")) / "build"
        if args.quick
        else Path(args.out or recipe.default_dir())
    )
    print(f"recipe: {recipe.as_dict()}\nbuild folder: {out}\ncode version: {code_version()}")
    built = build(out, recipe, tuple(STAGES), _progress, command_line(), share_from=args.share_from)
    print()
    for stage in STAGES:
        record = built.build.steps.get(stage, {})
        shared = f" (copied from {record['copied_from']})" if "copied_from" in record else ""
        print(f"{stage}: trained in {record.get('seconds', float('nan')):.0f} s{shared}")
    if args.build_only:
        print(f"built; wall time {time.perf_counter() - wall:.0f} s")
        return
    # stages copied from --share-from are measured there: their rows are read once this run's are done
    copied = [s for s in SHARED_STAGES if args.share_from and built.shares(s, args.share_from)]
    measured = []
    if args.resume and (out / "report").exists():
        earlier = ReactivationReport.load(out / "report")
        measured.append(earlier.only([s for s in earlier.steps if s not in copied]))
    kept = set(measured[0].steps) if measured else set()
    for stage in [
        s for s in STAGES if s not in copied and s not in kept
    ]:  # saved after every stage, so a stopped run keeps what it measured
        measured.append(measure(built, [stage], _progress, command=command_line()))
        ReactivationReport.combine(measured).save(out / "report")
        print(f"\n{stage}: measured in {measured[-1].steps[stage]['seconds']:.0f} s", flush=True)
    report = ReactivationReport.combine(measured)
    if copied:
        source = ReactivationReport.load(Path(args.share_from) / "report")
        missing = sorted(set(copied) - set(source.passages["stage"]))
        if missing:
            raise SystemExit(
                f"{args.share_from}/report has no measurement of {', '.join(missing)}; measure that build first."
            )
        shared = source.only(copied)
        shared.steps = {
            stage: {**record, "copied_from": str(Path(args.share_from) / "report")}
            for stage, record in shared.steps.items()
        }
        report = ReactivationReport.combine([shared, report])
    report.save(out / "report")
    print()
    for stage in STAGES:
        record = report.steps.get(stage, {})
        print(
            f"{stage}: measured in {record.get('seconds', float('nan')):.0f} s"
            + (" (shared)" if "copied_from" in record else "")
        )
    print_report(report, recipe)
    print(f"\nreport saved to {out / 'report'}\nwall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
