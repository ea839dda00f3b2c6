"""The CLI's flags stay what they were: generated or hand-written, every subcommand keeps each
flag with its destination, default, type, choices, count and help."""

import json

from tests.cli.cli_flags import SNAPSHOT, flags


def test_every_subcommand_keeps_its_flags():
    before, after = json.loads(SNAPSHOT.read_text()), json.loads(json.dumps(flags()))
    assert sorted(after) == sorted(before), "subcommands added or lost"
    for command, options in before.items():
        lost = sorted(set(options) - set(after[command]))
        added = sorted(set(after[command]) - set(options))
        assert not lost and not added, f"{command}: lost {lost}, added {added}"
        for name, settings in options.items():
            assert after[command][name] == settings, f"{command} {name}: {settings} became {after[command][name]}"
