"""The CLI's flags stay what they were when they were hand-written (tests/cli/cli_flags.json, taken
from that parser): every subcommand keeps each flag with its default, type, choices, count and
requiredness, and its help (a flag may gain help, not lose it). Where the value lands (``dest``)
is the field's name now, so it is not compared."""

import json

from tests.cli.cli_flags import SNAPSHOT, flags


def test_every_subcommand_keeps_its_flags(monkeypatch):
    monkeypatch.delenv("WORKBENCH_MODEL", raising=False)  # --model's default: the embedded one
    before, after = json.loads(SNAPSHOT.read_text()), json.loads(json.dumps(flags()))
    assert sorted(after) == sorted(before), "subcommands added or lost"
    for command, options in before.items():
        lost = sorted(set(options) - set(after[command]))
        added = sorted(set(after[command]) - set(options))
        assert not lost and not added, f"{command}: lost {lost}, added {added}"
        for name, settings in options.items():
            now = after[command][name]
            if "has_help" in settings:
                assert now["has_help"] or not settings["has_help"], f"{command} {name} lost its help"
            compared = {k: v for k, v in settings.items() if k not in ("dest", "has_help")}
            assert {k: now[k] for k in compared} == compared, f"{command} {name}: {compared} became {now}"
