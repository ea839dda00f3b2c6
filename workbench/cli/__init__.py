"""Batch command line over the workbench library. Every subcommand's flags are generated from the
fields of a recipe, a config or an options class (``workbench.cli.flags``); the subcommands live
by exploration in this package's modules.

    workbench info [--model NAME] [--json]
    workbench diverge --word poem --repeats 50 --n 100 --out results.parquet
    workbench sinks --prompt "Some text" --out scores.parquet
    workbench propinfer --model smollm2-135m-instruct-lab --property diagnosis --n 500 --out estimates.csv
    workbench compare --extracted a.jsonl --candidates b.jsonl --out pairs.parquet
    workbench selec --base smollm2-135m-instruct --tuned smollm2-135m-instruct-lab --out ranking.parquet
    workbench lab build [--out DIR] [--share "mental health=0.1" ...] | workbench lab show [--dir DIR]
    workbench shadows build [--out DIR] | workbench shadows show [--dir DIR]
    workbench backdoor build [--out DIR] | workbench backdoor attack [--dir DIR] | workbench backdoor show [--dir DIR]
    workbench reactivate build [--out DIR] | workbench reactivate measure [--dir DIR] | workbench reactivate show [--dir DIR]
    workbench membership [--members FILE --nonmembers FILE] [--reference NAME] --out scores.parquet
    workbench audit [--model NAME] [--n-never 100] [--null] --out canaries.parquet

Errors end with a one-line message on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys

from workbench.builds import command_line
from workbench.cli import build_commands, lab_commands, models, properties, texts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (models, properties, texts, lab_commands, build_commands):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = command_line(argv, parser.prog)  # recorded by what it builds
    try:
        args.run(args)
    except (ValueError, OSError) as err:  # bad input, unreadable or unwritable files: one line, no traceback
        print(f"workbench: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
