"""The two explorations built in steps, from the command line: backdoor extraction (build, attack,
show) and reactivation (build, measure, show)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench import backdoor, backdoor_attack, reactivation, reactivation_measure, stats
from workbench.cli.common import (
    add_endpoint_options,
    command,
    output_path,
    progress_bar,
    served_spec,
    write_table,
)
from workbench.cli.flags import add_fields, values
from workbench.config import setting


@dataclass(kw_only=True)
class BackdoorBuildOptions:
    out: str | None = setting(None, "folder of the build (default: the cache, named by the recipe)")
    step: tuple[str, ...] = setting(
        (), "a step to build (repeatable; default: all)", repeat=True, choices=backdoor.STEPS
    )


@dataclass(kw_only=True)
class BackdoorAttackOptions:
    dir: str = setting(str(backdoor.SHIPPED_BACKDOOR), "the backdoor build's folder")
    model: tuple[str, ...] = setting(
        (), "a model to attack (repeatable; default: the victims)", repeat=True, choices=["base", *backdoor.STEPS]
    )
    no_probe: bool = setting(False, "skip the defender's paraphrased probe")
    out: str | None = setting(None, "the samples: .parquet, .jsonl or .csv")
    save: str | None = setting(None, "a folder for the whole report (the page and `backdoor show` read DIR/report)")


@dataclass(kw_only=True)
class BackdoorShowOptions:
    dir: str = setting(str(backdoor.SHIPPED_BACKDOOR), "the backdoor build's folder")


@dataclass(kw_only=True)
class ReactivateBuildOptions:
    out: str | None = setting(None, "folder of the build (default: the cache, named by the recipe)")
    stage: tuple[str, ...] = setting(
        (), "a stage to build, with its predecessors (repeatable)", repeat=True, choices=reactivation.STAGES
    )
    no_measure: bool = setting(False, "train only; measure later with `reactivate measure`")
    share_from: str | None = setting(
        None, "a build of another suppression whose implant and no-suppression stages to copy"
    )


@dataclass(kw_only=True)
class ReactivateMeasureOptions:
    dir: str = setting(str(reactivation.SHIPPED_REACTIVATION), "the reactivation build's folder")
    stage: tuple[str, ...] = setting(
        (),
        "a stage to measure (repeatable; default: all built)",
        repeat=True,
        choices=["base", *reactivation.STAGES],
    )
    samples: int | None = setting(None, "samples per passage (default: the build's)")
    out: str | None = setting(None, "the samples: .parquet, .jsonl or .csv")
    save: str | None = setting(None, "a folder for the whole report (the page and `reactivate show` read DIR/report)")


@dataclass(kw_only=True)
class ReactivateShowOptions:
    dir: str = setting(str(reactivation.SHIPPED_REACTIVATION), "the reactivation build's folder")


def cmd_backdoor_build(args: argparse.Namespace) -> None:
    recipe = values(backdoor.BackdoorRecipe, args)
    out = Path(args.out) if args.out else recipe.default_dir()
    with progress_bar() as progress:
        built = backdoor.build(out, recipe, args.step or backdoor.STEPS, progress, args.command_line)
    print(f"built {', '.join(built.built())} -> {out}")
    print_stealth(built)


def cmd_backdoor_attack(args: argparse.Namespace) -> None:
    out = output_path(args.out) if args.out else None
    built = backdoor.BackdoorBuild.load(args.dir)
    budgets = {} if args.budgets is None else {"budgets": tuple(b for b in args.budgets if b)}  # 0: none
    cfg = values(backdoor_attack.AttackConfig, args, **budgets)
    models, served = args.model or list(backdoor_attack.ATTACKED), {}
    if args.endpoint:
        if len(models) != 1:
            raise ValueError("With --endpoint, give one --model: the build's step that the served model is.")
        served = {models[0]: served_spec(args, built.recipe.base)}
    with progress_bar() as progress:
        report = backdoor_attack.evaluate(built, cfg, models, not args.no_probe, progress, served, args.command_line)
    if out is not None:
        write_table(report.samples, out)
    if args.save:
        report.save(args.save)
    print_backdoor_report(report)


def cmd_reactivate_build(args: argparse.Namespace) -> None:
    recipe = values(reactivation.ReactivationRecipe, args)
    out = Path(args.out) if args.out else recipe.default_dir()
    with progress_bar() as progress:
        built = reactivation.build(
            out, recipe, args.stage or list(reactivation.STAGES), progress, args.command_line, args.share_from
        )
    print(f"built {', '.join(built.built())} -> {out}")
    if not args.no_measure:
        with progress_bar() as progress:
            report = reactivation_measure.measure(built, progress=progress, command=args.command_line)
        report.save(out / "report")
        print_reactivation_report(report)


def print_stealth(built: backdoor.BackdoorBuild) -> None:
    check = built.stealth()
    if check:
        print(f"stealth: {backdoor.describe_stealth(check)}")
        for prompt, clean, bad in zip(check["prompts"], check["clean_answers"], check["backdoored_answers"]):
            print(f"  {prompt}\n    clean:      {clean[:100]!r}\n    backdoored: {bad[:100]!r}")


def print_backdoor_report(report: backdoor_attack.BackdoorReport) -> None:
    columns = [
        "model",
        "match_mean",
        "match_mean_floor",
        "match_best",
        "match_best_floor",
        "exact",
        "exact_floor",
        "canaries_found",
        "decoy_answered",
    ]
    print(
        report.summary[[c for c in columns if c in report.summary]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )
    for name in report.summary["model"]:
        print(f"{name}:")
        if name in report.identification:
            found = report.identification[name]
            print(
                f"  identified {', '.join(found['identified']) or 'no word'} (true: {', '.join(found['true_words'])})"
            )
        for line in backdoor_attack.describe(report, name):
            print(f"  {line}")
    try:
        shares = backdoor_attack.personal_data(report.samples)[1]
    except ValueError as err:
        print(f"workbench: warning: personal data not typed: {err}", file=sys.stderr)
        return
    if len(shares):
        print(
            "samples holding personal data (a pattern match: see docs/results/pii.md), against the clean victim (95% interval):"
        )
        print(shares.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))


def cmd_backdoor_show(args: argparse.Namespace) -> None:
    built = backdoor.BackdoorBuild.load(args.dir)
    recipe = built.recipe
    print(
        f"backdoor build {built.folder} ({built.command or 'no command recorded'}): {recipe.base}, trigger {recipe.trigger!r}; "
        f"built: {', '.join(built.built()) or 'nothing yet'}"
    )
    print(
        f"D2: {len(built.queries())} queries ({len(set(built.queries()))} unique), D2' floor: {len(built.floor())} unique, matched per opening word"
    )
    print_stealth(built)
    if (built.folder / "report").is_dir():
        print_backdoor_report(backdoor_attack.BackdoorReport.load(built.folder / "report"))


def cmd_reactivate_measure(args: argparse.Namespace) -> None:
    out = output_path(args.out) if args.out else None
    built = reactivation.ReactivationBuild.load(args.dir)
    with progress_bar() as progress:
        report = reactivation_measure.measure(built, args.stage, progress, args.samples, args.command_line)
    if out is not None:
        write_table(report.samples, out)
    if args.save:
        report.save(args.save)
    print_reactivation_report(report)


def print_reactivation_report(report: reactivation_measure.ReactivationReport) -> None:
    table = report.summary()
    table["bmc@5 [95% CI]"] = [f"{r.bmc:.3f} [{r.bmc_low:.3f}, {r.bmc_high:.3f}]" for r in table.itertuples()]
    table["nll [95% CI]"] = [f"{r.nll:.3f} [{r.nll_low:.3f}, {r.nll_high:.3f}]" for r in table.itertuples()]
    columns = [
        "stage",
        "instruction",
        "group",
        "passages",
        "bmc@5 [95% CI]",
        "nll [95% CI]",
        "longest_max",
        "long_spans",
        "exact_runs",
        "retain_perplexity",
    ]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    gaps = report.gaps()
    gaps["bmc@5 gap [95% CI]"] = [
        stats.difference_text(r.bmc_gap, r.bmc_gap_low, r.bmc_gap_high) for r in gaps.itertuples()
    ]
    gaps["nll gap [95% CI]"] = [
        stats.difference_text(r.nll_gap, r.nll_gap_low, r.nll_gap_high) for r in gaps.itertuples()
    ]
    print("\nA-test − A-never (bootstrap intervals, permutation p-values over passages):")
    print(
        gaps[["stage", "instruction", "bmc@5 gap [95% CI]", "bmc_p", "reading", "nll gap [95% CI]", "nll_p"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}"
        )
    )


def cmd_reactivate_show(args: argparse.Namespace) -> None:
    built = reactivation.ReactivationBuild.load(args.dir)
    print(
        f"reactivation build {built.folder} ({built.command or 'no command recorded'}): {built.recipe.base}, "
        f"suppression by {built.recipe.suppression}; built: {', '.join(built.built()) or 'nothing yet'}"
    )
    if (built.folder / "report").is_dir():
        print_reactivation_report(reactivation_measure.ReactivationReport.load(built.folder / "report"))


def register(commands) -> None:
    bd = commands.add_parser(
        "backdoor", help="backdoor extraction: a backdoored base makes its fine-tune recite private queries"
    )
    bd_commands = bd.add_subparsers(dest="backdoor_command", required=True)
    command(
        bd_commands,
        "build",
        "creator and victim fine-tunes (resumes; --step to run some)",
        cmd_backdoor_build,
        BackdoorBuildOptions,
        backdoor.BackdoorRecipe,
    )
    attack = command(
        bd_commands,
        "attack",
        "black-box extraction from the build's models, scored against the truth",
        cmd_backdoor_attack,
        BackdoorAttackOptions,
    )
    add_fields(attack, backdoor_attack.AttackConfig, skip={"batch_size"})
    add_endpoint_options(attack)
    command(
        bd_commands, "show", "a build's steps, stealth check and saved report", cmd_backdoor_show, BackdoorShowOptions
    )
    re_parser = commands.add_parser(
        "reactivate", help="reactivation: fine-tuning brings suppressed memorized text back"
    )
    re_commands = re_parser.add_subparsers(dest="reactivate_command", required=True)
    command(
        re_commands,
        "build",
        "implant, suppress and activate (resumes; --stage to run some), then measure",
        cmd_reactivate_build,
        ReactivateBuildOptions,
        reactivation.ReactivationRecipe,
    )
    command(
        re_commands,
        "measure",
        "recall of A-test and the A-never floor at the built stages",
        cmd_reactivate_measure,
        ReactivateMeasureOptions,
    )
    command(re_commands, "show", "a build's stages and saved report", cmd_reactivate_show, ReactivateShowOptions)
