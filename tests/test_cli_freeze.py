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
from bench.commands.helptext import DEFAULT_TEXT

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
        "metavar": action.metavar if isinstance(action.metavar, str | type(None)) else list(action.metavar),
        "default_text": getattr(action, DEFAULT_TEXT, None),
    }


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, and each sub-command's (``history add``, ``export openmetrics``)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for name in COMMANDS:
        parser = _command_parser(name)
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    found[f"{name} {sub}"] = subparser
    return found


def current_cli() -> dict[str, list[dict[str, Any]]]:
    return {
        name: [_describe(a) for a in parser._actions if not isinstance(a, argparse._HelpAction)]
        for name, parser in parsers().items()
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
