"""The command line's shape as data: every command's parser (and each sub-command's) and, per parser, each
flag's names, default, type, help and metavar. ``tests/test_cli_freeze.py`` holds it against the frozen copy;
``tests/test_cli.py`` reads the help lines and the flags shared between commands."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli import COMMANDS, _command_parser
from bench.commands.helptext import DEFAULT_TEXT


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
