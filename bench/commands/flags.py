"""Small argparse pieces shared by the commands that sweep sizes (``run`` and ``accept``)."""

from __future__ import annotations

import argparse
from typing import Any

from bench.errors import UserError


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
