"""How ``--help`` says a flag's default: once, and in words where the value comes from elsewhere.

Kept apart from ``bench.commands.flags`` so that every command's parser (``bench.cli``) gets the formatter
without importing the jobs' configs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

DEFAULT_TEXT = "default_text"
"""The attribute of an argparse action that holds its default in words (see :class:`HelpFormatter`)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, said once: the words set with :func:`said` when the value
    comes from elsewhere (a profile, the host), else the default's value; nothing for an unset value or a
    switch that is off (argparse's own formatter printed ``(default: None)``, and twice where the help had
    already said it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if not text or text == argparse.SUPPRESS or not action.option_strings:
            return text
        default = getattr(action, DEFAULT_TEXT, None)
        if default is None:
            default = _shown(action)
        if default and "(default" not in text:
            text = f"{text} (default: {default})"
        return text.replace("%", "%%")  # argparse %-formats help; no help here uses %(...)s


def _shown(action: argparse.Action) -> str | None:
    value = action.default
    if isinstance(action, OnOff):
        return None if value is None else ("on" if value else "off")
    if value is None or value is False or value == argparse.SUPPRESS or action.nargs == 0:
        return None
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def said(action: argparse.Action, words: str) -> argparse.Action:
    """Show ``words`` as the action's default in ``--help``."""
    setattr(action, DEFAULT_TEXT, words)
    return action


class OnOff(argparse.Action):
    """``--x`` turns it on, ``--no-x`` off; the default may be None (decided later, e.g. by the backend).

    argparse's ``BooleanOptionalAction`` appends its own ``(default: ...)`` to the help on Python 3.11, which
    doubled the default; this says it once, through :class:`HelpFormatter`."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        default: bool | None = None,
        required: bool = False,
        help: str | None = None,
        metavar: str | None = None,
    ) -> None:
        # argparse passes what add_argument was given; an on/off flag takes no type, choices, nargs or const,
        # so those stay errors (a TypeError at parser build time, as a mistyped keyword is).
        names = [*option_strings, *(f"--no-{o[2:]}" for o in option_strings if o.startswith("--"))]
        super().__init__(names, dest, nargs=0, default=default, required=required, help=help, metavar=metavar)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option: str | None = None
    ) -> None:
        setattr(namespace, self.dest, not (option or "").startswith("--no-"))

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)
