"""Flags from dataclasses: every subcommand's options are the fields of a recipe, a config or an
options class, each declared once with ``config.setting`` (its help, and how the command line
spells it), and ``add_fields`` turns them into argparse flags; ``values`` reads them back.

How a field's type becomes a flag: int and float are parsed as such; a bool that defaults to
False is a switch, one that defaults to True gets a ``--no-`` form; a tuple takes several values
(``nargs="+"``), or repeats (``repeat=True``: ``--word a --word b``); a mapping repeats as
NAME=VALUE; a field without a default is required.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields


def _unwrapped(hint) -> object:
    """The type inside an Optional."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _kind(hint) -> tuple[str, type | None]:
    """("scalar" | "many" | "pairs", the element type argparse parses)."""
    hint = _unwrapped(hint)
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return "many", typing.get_args(hint)[0]
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        return "pairs", None
    return "scalar", hint


def flag_of(item: Field) -> str:
    return item.metadata.get("cli", {}).get("flag") or "--" + item.name.replace("_", "-")


def add_fields(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: Iterable[str] = (),
    defaults: object | None = None,
    repeat: Iterable[str] = (),
    one_of: Iterable[str] = (),
) -> None:
    """One flag per field of ``cls`` (but ``skip``), with the field's help; ``defaults``: an
    instance whose values are the flags' defaults; ``repeat``: fields that repeat here whatever
    their declaration says; ``one_of``: fields of which exactly one must be given."""
    hints = typing.get_type_hints(cls)
    skip, repeat, one_of = set(skip), set(repeat), set(one_of)
    exclusive = parser.add_mutually_exclusive_group(required=True) if one_of else None
    for item in fields(cls):
        if item.name in skip or not item.init:
            continue
        cli = item.metadata.get("cli", {})
        kind, element = _kind(hints[item.name])
        default = getattr(defaults, item.name) if defaults is not None else item.default
        options: dict = {"help": item.metadata.get("help") or None}
        for key in ("choices", "metavar", "const", "nargs"):
            if key in cli:
                options[key] = list(cli[key]) if key == "choices" else cli[key]
        if element in (int, float):
            options["type"] = element
        if "flag" in cli and element is not bool:  # --word WORD, not --word WORDS
            options.setdefault("metavar", cli["flag"].lstrip("-").upper().replace("-", "_"))
        if kind == "pairs":
            options |= {"action": "append", "metavar": "NAME=VALUE", "default": None}
        elif kind == "many" and (cli.get("repeat") or item.name in repeat):
            options |= {"action": "append", "default": None, "required": default is MISSING}
        elif kind == "many" and cli.get("positional"):
            options["nargs"] = cli.get("nargs", "+")
        elif kind == "many":
            options |= {
                "nargs": cli.get("nargs", "+"),
                "default": list(default) if default not in (MISSING, ()) else None,
            }
        elif element is bool:
            options = {"help": options["help"], "default": default}
            options["action"] = argparse.BooleanOptionalAction if default else "store_true"
        elif item.name in repeat:
            options |= {"action": "append", "default": None}
        elif default is MISSING:
            options["required"] = not cli.get("positional")
        else:
            options["default"] = default
        target = exclusive if item.name in one_of else parser
        if cli.get("positional"):  # argparse decides whether a positional is required
            options.pop("required", None)
            options.pop("default", None)
            target.add_argument(item.name, **options)
        else:
            if item.name in one_of:
                options.pop("required", None)
                options.setdefault("default", None)
            target.add_argument(flag_of(item), dest=item.name, **options)


def pairs(given: list[str] | None, flag: str) -> dict[str, float] | None:
    """NAME=VALUE items as a mapping (None when none were given)."""
    if not given:
        return None
    shares = {}
    for pair in given:
        name, sep, value = pair.rpartition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f'{flag} {pair!r} is not NAME=VALUE, e.g. "mental health=0.1".')
    return shares


def values(cls: type, args: argparse.Namespace, **given):
    """An instance of ``cls`` from the parsed flags (``given`` overrides them). A repeatable or
    NAME=VALUE flag left out keeps the field's default."""
    hints = typing.get_type_hints(cls)
    settings = {}
    for item in fields(cls):
        if not item.init or not hasattr(args, item.name):
            continue
        value, kind = getattr(args, item.name), _kind(hints[item.name])[0]
        if kind == "pairs":
            value = pairs(value, flag_of(item))
        elif kind == "many" and value is not None:
            value = tuple(value)
        if value is None and item.default is not MISSING and item.default is not None:
            continue
        settings[item.name] = value
    return cls(**(settings | given))
