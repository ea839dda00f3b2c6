"""The ground-truth lab from the command line: building and showing a lab, membership inference and
the canary audit on its model, and one card per canary."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from workbench import audit, backdoor, backdoor_attack, canary_card, membership
from workbench.cli.common import (
    add_model_options,
    command,
    output_path,
    progress_bar,
    progress_line,
    read_table,
    spec_from_args,
    write_table,
)
from workbench.cli.flags import pairs, values
from workbench.config import ModelSpec, setting
from workbench.lab import SHIPPED_LAB, LabRecipe, lab_dataset_for
from workbench.lab import build as build_lab
from workbench.lab_data import LabDataset
from workbench.session import load_session
from workbench.similarity import read_texts


@dataclass(kw_only=True)
class LabBuildOptions:
    out: str = setting(str(SHIPPED_LAB), "folder for dataset/, adapter/ and build.json")


@dataclass(kw_only=True)
class LabShowOptions:
    dir: str = setting(str(SHIPPED_LAB), "a lab build's folder")


@dataclass(kw_only=True)
class MembershipOptions:
    members: str | None = setting(
        None, "member texts: .txt (one per line) or .jsonl (default: a lab model's training dialogues)"
    )
    nonmembers: str | None = setting(
        None, "non-member texts (default: the lab's held-out and fresh same-style records)"
    )
    field: str = setting("text", "JSONL field of the texts")
    n_nonmembers: int = setting(membership.MIN_NONMEMBERS, "lab: non-members to draw")
    reference: str | None = setting(None, "a reference model for the ratio attack (e.g. the base model)")
    k: float = setting(0.2, "Min-K%% and Min-K%%++: the share of lowest tokens")
    seed: int = setting(0, "the non-members' and the bootstrap's seed")
    out: str = setting(help="per-text scores: .parquet, .jsonl or .csv")
    save: str | None = setting(None, "a folder for the whole report (the page reads it)")


@dataclass(kw_only=True)
class AuditOptions:
    n_never: int = setting(100, "never-inserted canaries to draw")
    alternatives: int = setting(20, "other secrets each canary is ranked against")
    delta: float = setting(audit.DELTA, "δ of the (ε, δ) bound")
    confidence: float = setting(0.95, "the bound's confidence level")
    null: bool = setting(False, "the null lab's labels: half the canaries called inserted at random")
    seed: int = setting(0, "the never-inserted canaries' seed")
    out: str = setting(help="per-canary scores: .parquet, .jsonl or .csv")


@dataclass(kw_only=True)
class CanariesOptions:
    lab: str | None = setting(None, "a lab build folder (default: the shipped lab, from its shipped runs and audit)")
    runs: tuple[str, ...] = setting(
        (),
        "a run's outputs on that lab's model (e.g. `workbench diverge --out`); repeatable",
        flag="--run",
        repeat=True,
        metavar="NAME=FILE",
    )
    text_column: str = setting("output", "the runs' text column")
    audit: str | None = setting(None, "that lab's audit scores (`workbench audit --out`)")
    backdoor: str | None = setting(
        None, "a backdoor build (or 'shipped'): its canaries through its victims' samples", metavar="DIR"
    )
    out: str | None = setting(None, "the card's numbers: .parquet, .jsonl or .csv")


def cmd_lab_build(args: argparse.Namespace) -> None:
    gender_shares = pairs(args.gender_shares, "--gender-share")
    if gender_shares is not None and len(gender_shares) == 1:  # the other gender takes the rest
        ((given, share),) = gender_shares.items()
        gender_shares |= {g: 1 - share for g in ("female", "male") if g != given}
    recipe = values(LabRecipe, args, gender_shares=gender_shares)
    with progress_bar() as progress:
        dataset = build_lab(args.out, recipe, progress, args.command_line)
    print(f"{len(dataset.records)} records, {len(dataset.canaries)} canaries -> {args.out}")


def cmd_lab_show(args: argparse.Namespace) -> None:
    dataset = LabDataset.load(Path(args.dir) / "dataset")
    print(
        f"{len(dataset.records)} training records, {len(dataset.holdout)} held out; recipe {json.dumps(dataset.recipe)}"
    )
    for prop, shares in dataset.truth["realized"].items():
        print(f"{prop}: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    for canary in dataset.canaries:
        print(f"canary {canary.kind:<10} {canary.secret:<16} inserted {canary.insertions}x")
    curve = Path(args.dir) / "adapter" / "loss_curve.json"
    if curve.is_file():
        losses = [c["loss"] for c in json.loads(curve.read_text())]
        print(f"training loss: {losses[0]:.3f} (first step) -> {losses[-1]:.3f} (last of {len(losses)} steps)")


def lab_of(spec: ModelSpec) -> LabDataset:
    dataset = lab_dataset_for(spec)
    if dataset is None:
        raise ValueError(
            f"{spec.name} is not a lab model, so its members are unknown: give --members and --nonmembers files."
        )
    return dataset


def cmd_membership(args: argparse.Namespace) -> None:
    out = output_path(args.out)
    spec = spec_from_args(args)
    if bool(args.members) != bool(args.nonmembers):
        raise ValueError("Give both --members and --nonmembers, or neither (a lab model's own sets).")
    if args.members:
        members, nonmembers = (
            [text for _, text in read_texts(path, args.field)] for path in (args.members, args.nonmembers)
        )
    else:
        members, nonmembers = membership.lab_sets(lab_of(spec), args.n_nonmembers)
    model = load_session(spec, progress=progress_line)
    reference = (
        load_session(ModelSpec(args.reference, device=args.device, dtype=args.dtype), progress=progress_line)
        if args.reference
        else None
    )
    with progress_bar() as progress:
        report = membership.run_membership(model, members, nonmembers, reference, args.k, args.seed, progress)
    write_table(report.scores, out)
    if args.save:
        report.save(args.save)
    print(f"{report.values['members']} members, {report.values['nonmembers']} non-members -> {out}")
    print(membership.readable(report.summary(seed=args.seed)).to_string(index=False))


def cmd_audit(args: argparse.Namespace) -> None:
    out = output_path(args.out)
    spec = spec_from_args(args)
    dataset = lab_of(spec)
    model = load_session(spec, progress=progress_line)
    with progress_bar() as progress:
        scores = audit.run_audit(model, dataset, args.n_never, args.alternatives, args.seed, progress)
    if args.null:
        scores = audit.null_labels(scores, args.seed)
    write_table(scores, out)
    table = audit.audit_table(scores, args.delta, args.confidence)
    print(
        f"{len(scores)} canaries ({(scores['insertions'] > 0).sum()} inserted), {args.alternatives} alternatives each -> {out}"
    )
    print(
        f"ε lower bound at δ = {args.delta:g}, {args.confidence:.0%} confidence, beside the largest the counts can show:"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def print_card(card: canary_card.CanaryCard, out: str | None) -> None:
    shown = card.readable()
    for row in shown.to_dict("records"):
        print(f"{row.pop('secret')} ({row.pop('kind')}, inserted {row.pop('inserted')}x):")
        for key, value in row.items():
            print(f"  {key}: {value}")
    if card.epsilon is not None:
        print(
            f"the audit's ε lower bound over all inserted canaries: {card.epsilon:.2f} (at most {card.max_epsilon:.2f} showable)"
        )
    for name, source in card.sources.items():
        print(f"from {name}: {source}")
    for line in card.not_measured:
        print(line)
    if out:
        path = output_path(out)
        write_table(card.table, path)
        print(f"card -> {path}")


def cmd_canaries(args: argparse.Namespace) -> None:
    if args.backdoor:
        if args.runs or args.audit or args.lab:
            raise ValueError("--backdoor follows a backdoor build's canaries through its victims: give it alone.")
        if args.backdoor == "shipped":
            card = canary_card.shipped_backdoor_card()
        else:
            built = backdoor.BackdoorBuild.load(args.backdoor)
            if not (built.folder / "report").is_dir():
                raise ValueError(
                    f"{built.folder} has no attack report yet: run `workbench backdoor attack --save {built.folder / 'report'}`."
                )
            report = backdoor_attack.BackdoorReport.load(built.folder / "report")
            card = canary_card.victims_card(built.dataset, report.samples, str(built.folder / "report"))
    elif not args.lab or args.lab == "shipped":
        if args.runs or args.audit:
            raise ValueError("The shipped lab's card reads its shipped runs: give --run and --audit with --lab DIR.")
        card = canary_card.shipped_lab_card()
    else:
        dataset = LabDataset.load(Path(args.lab) / "dataset")
        runs = []
        for given in args.runs or []:
            name, sep, path = given.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--run {given!r}: write NAME=FILE, e.g. grid=run.parquet.")
            runs.append(canary_card.Run(name, read_table(path), path, args.text_column))
        scores = read_table(args.audit) if args.audit else None
        card = canary_card.card(dataset, runs, scores, {"audit": args.audit} if args.audit else None)
    print_card(card, args.out)


def register(commands) -> None:
    lab = commands.add_parser("lab", help="the ground-truth lab: synthetic dataset and fine-tuned model")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    command(
        lab_commands,
        "build",
        "generate the dataset and LoRA fine-tune the base model",
        cmd_lab_build,
        LabBuildOptions,
        LabRecipe,
    )
    command(lab_commands, "show", "print a lab build's truth, canaries and loss", cmd_lab_show, LabShowOptions)
    member = command(
        commands,
        "membership",
        "membership inference: attacks against members and non-members",
        cmd_membership,
        MembershipOptions,
    )
    add_model_options(member)
    auditor = command(
        commands, "audit", "the canary audit of a lab model: exposure and an ε lower bound", cmd_audit, AuditOptions
    )
    add_model_options(auditor)
    command(
        commands,
        "canaries",
        "one card per canary: what every run on a lab found of each planted secret",
        cmd_canaries,
        CanariesOptions,
    )
