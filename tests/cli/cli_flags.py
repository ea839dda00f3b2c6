"""Every subcommand's flags as argparse holds them, for the before/after comparison of the
generated CLI. ``python -m tests.cli.cli_flags`` rewrites the snapshot (after a deliberate change)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.cli import build_parser

SNAPSHOT = Path(__file__).with_name("cli_flags.json")
ROOT = str(Path(__file__).resolve().parents[2])  # defaults under the checkout are kept relative to it


def _plain(value):
    """JSON-able form of a default, type or choice list."""
    if isinstance(value, str):
        return value.replace(ROOT, "<checkout>")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return getattr(value, "__name__", None) or str(value)


def flags(parser: argparse.ArgumentParser | None = None, path: str = "") -> dict[str, dict]:
    """{"subcommand path": {"flag or positional": its settings}} for every leaf of the parser."""
    parser = parser or build_parser()
    table, leaves = {}, {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                leaves.update(flags(sub, f"{path} {name}".strip()))
        elif not isinstance(action, argparse._HelpAction):
            name = "/".join(action.option_strings) or action.dest
            table[name] = {
                "dest": action.dest,
                "action": type(action).__name__,
                "default": _plain(action.default),
                "type": _plain(action.type),
                "choices": _plain(list(action.choices)) if action.choices is not None else None,
                "nargs": _plain(action.nargs),
                "required": action.required,
                "const": _plain(action.const),
                "has_help": bool(action.help),
            }
    for k, group in enumerate(parser._mutually_exclusive_groups):
        members = sorted("/".join(a.option_strings) or a.dest for a in group._group_actions)
        table[f"(one of, group {k})"] = {"members": members, "required": group.required}
    return leaves or {path: table}


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(flags(), indent=1, sort_keys=True) + "\n")
