"""The command line is frozen: every command's flags, defaults, types and help are compared with
``tests/data/cli_freeze.json``, so a flag cannot change silently. After changing a flag on purpose, run
``python -m tests.test_cli_freeze`` and commit the new file with the change."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.cli import COMMANDS, _command_parser

FROZEN = Path(__file__).resolve().parent / "data" / "cli_freeze.json"


def _describe(action: argparse.Action) -> dict[str, Any]:
    default = action.default
    return {
        "flags": list(action.option_strings) or [action.dest],
        "dest": action.dest,
        "default": default if isinstance(default, str | int | float | bool | type(None)) else str(default),
        "type": getattr(action.type, "__name__", None) if action.type is not None else None,
        "choices": list(action.choices) if action.choices is not None else None,
        "nargs": action.nargs,
        "const": action.const if isinstance(action.const, str | int | float | bool | type(None)) else str(action.const),
        "required": action.required,
        "help": action.help,
    }


def current_cli() -> dict[str, list[dict[str, Any]]]:
    return {
        name: [_describe(a) for a in _command_parser(name)._actions if not isinstance(a, argparse._HelpAction)]
        for name in COMMANDS
    }


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
