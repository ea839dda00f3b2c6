"""Property inference from the command line: ``propinfer`` and the shadow sets that calibrate it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from workbench.cli.common import (
    add_model_options,
    command,
    output_path,
    progress_bar,
    progress_line,
    save_endpoint_record,
    spec_from_args,
    write_table,
)
from workbench.cli.flags import values
from workbench.config import ModelSpec, PropInferConfig, setting
from workbench.propinfer import LAB_PROPERTIES, LABELER_KINDS, PROMPT_SETS, labeler_for, mean_absolute_error
from workbench.propinfer_judge import score_summary
from workbench.propinfer_pipeline import infer
from workbench.session import load_session
from workbench.shadow_calibration import SHADOW_METHODS
from workbench.shadows import SHIPPED_SHADOWS, ShadowRecipe, ShadowSet, build_shadows, summarize

LABELERS_HELP = "; ".join(f"{k}: {v}" for k, v in LABELER_KINDS.items())
METHODS_HELP = "; ".join(f"{k}: {v}" for k, v in SHADOW_METHODS.items())


@dataclass(kw_only=True)
class LabelerOptions:
    labeler: str = setting("keyword", LABELERS_HELP, choices=LABELER_KINDS)
    patterns: str | None = setting(None, "JSON file of value -> regular expressions: a custom keyword labeler")
    calibration: str = setting("pooled", METHODS_HELP, choices=SHADOW_METHODS)


@dataclass(kw_only=True)
class PropInferOptions:
    property: str = setting(help="property of the lab's clinic data", choices=LAB_PROPERTIES)
    style: str = setting("question-answer", "prompt style", choices=PROMPT_SETS)
    prompt: tuple[str, ...] = setting((), "a prompt (repeatable; default: the style's prompt set)", repeat=True)
    out: str = setting(help="estimates: .parquet, .jsonl or .csv")
    generations: str | None = setting(None, "also write every generation with its label")
    shadows: str | None = setting(
        None,
        "calibrate on a shadow set: a folder (alone: the shipped data/shadows)",
        nargs="?",
        const=str(SHIPPED_SHADOWS),
    )
    with_base: bool = setting(False, "also sample the shadows' base model the same way: it anchors the base correction")


@dataclass(kw_only=True)
class ShadowsBuildOptions:
    out: str | None = setting(None, "folder of the set (default: the cache, named by the recipe)")


@dataclass(kw_only=True)
class ShadowsShowOptions:
    dir: str = setting(str(SHIPPED_SHADOWS), "the shadow set's folder")
    property: str = setting("diagnosis", "property of the lab's clinic data", choices=LAB_PROPERTIES)
    out: str | None = setting(None, "also write the sweep: .parquet, .jsonl or .csv")


def labeler_from_args(args: argparse.Namespace):
    if not args.patterns:
        return labeler_for(args.property, args.labeler)
    try:
        return labeler_for(args.property, args.labeler, Path(args.patterns).read_text())
    except ValueError as err:
        raise ValueError(f"--patterns {args.patterns}: {err}") from err


def cmd_propinfer(args: argparse.Namespace) -> None:
    out = output_path(args.out)
    generations_out = output_path(args.generations) if args.generations else None
    cfg = values(PropInferConfig, args)
    labeler = labeler_from_args(args)
    if args.with_base and not args.shadows:
        raise ValueError("--with-base anchors the base correction of a calibration: give --shadows too.")
    shadows = ShadowSet.load(args.shadows) if args.shadows else None  # a broken set: before sampling
    sessions = [load_session(spec_from_args(args), progress=progress_line)]
    if args.with_base:
        sessions.append(load_session(ModelSpec(shadows.recipe.base), progress=progress_line))
    with progress_bar() as progress:
        inference = infer(
            sessions,
            args.prompt or PROMPT_SETS[args.style],
            cfg,
            labeler,
            args.style,
            shadows,
            args.calibration,
            progress,
        )
    result, truth, judged = inference.target, inference.truth, inference.judged
    estimates = inference.table()
    write_table(estimates, out)
    save_endpoint_record(sessions[0], cfg.sampling(), out)
    if generations_out is not None:
        write_table(result.generations, generations_out)
    unlabeled = int(estimates["unlabeled"].iloc[0])
    if unlabeled == len(result.generations):
        print("No generation matched any value of the labeler: there is nothing to estimate.")
    else:
        for row in estimates.itertuples():
            line = f"{row.value:<20}{row.share:>7.1%}  [{row.ci_low:.1%}, {row.ci_high:.1%}]"
            if judged is not None:
                line += f"  calibrated {row.calibrated:>6.1%}  [{row.cal_low:.1%}, {row.cal_high:.1%}]"
            print(line + (f"  truth {row.true_share:.1%}" if truth else ""))
    summary = f"{len(result.generations)} generations, {unlabeled} unlabeled"
    if truth:
        summary += f", mean absolute error {mean_absolute_error(result.estimates, truth):.3f}"
        if judged is not None:
            summary += f" (calibrated {estimates['cal_error'].abs().mean():.3f})"
    print(f"{summary} -> {out}")
    if inference.calibration_failed:
        print(f"warning: no calibration: {inference.calibration_failed}", file=sys.stderr)
    if judged is not None:
        print_judged(judged, shadows, args, truth)


def print_judged(judged, shadows: ShadowSet, args: argparse.Namespace, truth) -> None:
    calibrated = judged.calibrated
    print(
        f"Calibrated on {len(shadows.shadows)} shadow models ({args.shadows}, {args.calibration}). {calibrated.calibration.verdict()}"
    )
    for warning in calibrated.warnings:
        print(f"warning: {warning}: the calibration may not apply.", file=sys.stderr)
    print(f"Leading estimate: {judged.lead}. {judged.why}")
    for note in judged.notes:
        print(note)
    if truth:
        print("Every method against the truth (interval score: the width plus 2/α times any miss; lower is better):")
        print(score_summary(judged.methods).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        print(judged.methods.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def cmd_shadows_build(args: argparse.Namespace) -> None:
    recipe = values(ShadowRecipe, args)
    out = Path(args.out) if args.out else recipe.default_dir()
    with progress_bar() as progress:
        shadows = build_shadows(out, recipe, progress, args.command_line)
    print(f"{len(shadows.shadows)} shadow models of {recipe.base} -> {out}")


def cmd_shadows_show(args: argparse.Namespace) -> None:
    out = output_path(args.out) if args.out else None
    shadows = ShadowSet.load(args.dir)
    recipe = shadows.recipe
    print(
        f"{recipe.k} shadows of {recipe.base}: {recipe.n_records} records, {recipe.epochs} epochs, lr {recipe.lr}, rank {recipe.rank}; "
        f"shares from Dirichlet({recipe.alpha}); {recipe.n_samples} {recipe.style} generations each "
        f"(temperature {recipe.temperature}, top-p {recipe.top_p}, top-k {recipe.top_k}, {recipe.max_new_tokens} new tokens)"
    )
    labeler = labeler_from_args(args)
    sweep = shadows.sweep(labeler, args.calibration)
    if out is not None:
        write_table(sweep, out)
    for row in summarize(sweep).itertuples():
        print(
            f"{row.estimate:<11} MAE {row.mae:.3f}, {row.covered} of {row.intervals} intervals cover the truth, mean width "
            f"{row.width:.3f}, mean interval score {row.interval_score:.3f} (leave one shadow out)"
        )
    print(shadows.fit(labeler, args.calibration).verdict())


def register(commands) -> None:
    infer_parser = command(
        commands,
        "propinfer",
        "estimate a property's shares in the fine-tuning data from generations",
        cmd_propinfer,
        PropInferOptions,
        LabelerOptions,
        PropInferConfig,
    )
    add_model_options(infer_parser)
    shadows = commands.add_parser("shadows", help="shadow models that calibrate property inference")
    shadow_commands = shadows.add_subparsers(dest="shadows_command", required=True)
    command(
        shadow_commands,
        "build",
        "fine-tune and sample K shadow models (resumes an interrupted build)",
        cmd_shadows_build,
        ShadowsBuildOptions,
        ShadowRecipe,
    )
    command(
        shadow_commands,
        "show",
        "a shadow set's sweep: naive and calibrated estimates against the truth",
        cmd_shadows_show,
        ShadowsShowOptions,
        LabelerOptions,
    )
