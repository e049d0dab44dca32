"""The command line is frozen: every command's flags, defaults, types and help are compared with
``tests/data/cli_freeze.json``, so a flag cannot change silently. After changing a flag on purpose, run
``python -m tests.test_cli_freeze`` and commit the new file with the change."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.support.cli_shape import current_cli

FROZEN = Path(__file__).resolve().parent / "data" / "cli_freeze.json"


def test_the_cli_matches_the_frozen_copy() -> None:
    assert current_cli() == json.loads(FROZEN.read_text()), (
        "a flag changed: if on purpose, run 'python -m tests.test_cli_freeze' and commit tests/data/cli_freeze.json"
    )


def test_every_flag_has_a_description() -> None:
    # A sub-command group (history add|list) is described by its sub-commands' own help.
    missing = [
        f"{name} {d['flags'][0]}"
        for name, flags in current_cli().items()
        for d in flags
        if not d["help"] and d["nargs"] != argparse.PARSER
    ]
    assert missing == []


if __name__ == "__main__":
    FROZEN.write_text(json.dumps(current_cli(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FROZEN}", file=sys.stderr)
