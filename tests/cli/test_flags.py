"""The dataclass-to-flags helper: each kind of field becomes the flag a user expects, and reads back."""

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from workbench.cli.flags import add_fields, values
from workbench.config import setting


@dataclass(frozen=True, kw_only=True)
class Example:
    name: str = setting(help="required: no default")
    count: int = setting(3, "an int")
    rate: float | None = setting(None, "an optional float")
    quiet: bool = setting(False, "a switch")
    check: bool = setting(True, "on unless --no-check")
    sizes: tuple[int, ...] = setting((1, 2), "several at once")
    words: tuple[str, ...] = setting((), "repeatable", flag="--word", repeat=True)
    shares: Mapping[str, float] | None = setting(None, "NAME=VALUE, repeatable", flag="--share")
    kind: str = setting("a", "one of a list", choices=("a", "b"))


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_fields(parser, Example)
    return parser.parse_args(argv)


def test_defaults_read_back_as_the_dataclass_defaults():
    assert values(Example, _parse(["--name", "x"])) == Example(name="x")


def test_every_kind_of_field_parses():
    args = _parse(
        "--name x --count 5 --rate 0.5 --quiet --no-check --sizes 4 5 6 --word a --word b "
        "--share p=0.25 --share q=0.75 --kind b".split()
    )
    assert values(Example, args) == Example(
        name="x", count=5, rate=0.5, quiet=True, check=False, sizes=(4, 5, 6), words=("a", "b"),
        shares={"p": 0.25, "q": 0.75}, kind="b",
    )  # fmt: skip
    assert values(Example, args, count=9).count == 9  # given values win


@pytest.mark.parametrize(
    "argv",
    [[], ["--name", "x", "--kind", "c"], ["--name", "x", "--count", "many"]],
    ids=["required missing", "not a choice", "not an int"],
)
def test_bad_flags_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert "error" in capsys.readouterr().err


def test_a_bad_pair_is_a_clear_error():
    with pytest.raises(ValueError, match="--share 'p' is not NAME=VALUE"):
        values(Example, _parse(["--name", "x", "--share", "p"]))


def test_one_of_and_positional_fields():
    @dataclass(kw_only=True)
    class Source:
        texts: tuple[str, ...] = setting((), "texts", positional=True, nargs="*")
        prompt: str | None = setting(None, "a prompt")
        word: str | None = setting(None, "or a word")

    parser = argparse.ArgumentParser()
    add_fields(parser, Source, one_of={"prompt", "word"})
    assert parser.parse_args(["a", "b", "--word", "w"]).texts == ["a", "b"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--word", "w", "--prompt", "p"])
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_a_falsy_flag_setting_is_kept():
    @dataclass(kw_only=True)
    class Counted:
        level: int | None = setting(None, "alone: 0", nargs="?", const=0)

    parser = argparse.ArgumentParser()
    add_fields(parser, Counted)
    assert parser.parse_args(["--level"]).level == 0 and parser.parse_args([]).level is None
