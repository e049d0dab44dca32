"""Small argparse pieces shared by the commands: the step rules of ``run`` and ``accept``, and the hidden
``--spec`` through which a railbench parent hands its ranks their config (``run``, ``rails``, ``accept``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from bench.exits import UserError
from bench.runtime import spec

T = TypeVar("T")


class Given(argparse.Action):
    """Store the value and remember that the user typed the flag (``<dest>_given``).

    ``-f`` has a default (2), so its value alone cannot tell ``-i 1K`` from ``-i 1K -f 4``; the second asks
    for two step rules at once and must be refused rather than letting one silently win.
    """

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def refuse_two_step_rules(args: argparse.Namespace) -> None:
    """-i and -f together: one line that says which to keep."""
    if args.step_bytes is not None and getattr(args, "step_factor_given", False):
        raise UserError("-i/--step-bytes and -f/--step-factor both given: a sweep adds or multiplies, keep one of them")


def add_spec_argument(parser: argparse.ArgumentParser) -> None:
    """``--spec JSON``: how a railbench parent hands its ranks the whole config (not for users)."""
    parser.add_argument(spec.SPEC_FLAG, default=None, help=argparse.SUPPRESS)


def config_or_spec(args: argparse.Namespace, cls: type[T], from_args: Callable[[argparse.Namespace], T]) -> T:
    """The parent's config when this process is one of its ranks, else the config the user's flags give."""
    text = getattr(args, "spec", None)
    return spec.decode(cls, text) if text else from_args(args)
