"""One bounded parser for every number railbench reads from outside (logs, JSON, sysfs, profiles).

Python's ``int()`` refuses strings over 4,300 digits with a ValueError and ``float()`` turns ``1e999`` into
``inf``; a reader that converts raw text directly turns hostile or damaged input into tracebacks, infinities
or negative bandwidths in the history. Every reader goes through these two calls instead: the text's length
is limited before conversion, floats must be finite, and the sign must make sense for the field. What does
not fit raises :class:`InputError` naming where the number came from, which the CLI reports as one line with
exit status 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bench.exits import UserError

Sign = Literal["any", "non-negative", "positive"]

MAX_NUMBER_CHARS = 64
"""Longer than any real counter, size, time or rate railbench reads (a 64-bit counter has 20 digits)."""


@dataclass(frozen=True)
class Where:
    """Where a number was read: a file (or sysfs path), a line number when the input has lines, a field."""

    source: str
    field: str
    line: int | None = None

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{at}: {self.field}"


class InputError(UserError):
    """A number (or other field) read from outside that railbench refuses; exit status 2."""


def _checked_text(text: str, where: Where) -> str:
    stripped = text.strip()
    if not stripped:
        raise InputError(f"{where} is empty: expected a number")
    if len(stripped) > MAX_NUMBER_CHARS:
        raise InputError(f"{where} is {len(stripped)} characters long, too long for a number: the input is damaged")
    return stripped


def _check_sign(value: float, sign: Sign, where: Where, shown: str) -> None:
    if sign == "non-negative" and value < 0:
        raise InputError(f"{where} is {shown}, a negative value where none can be: the input is damaged")
    if sign == "positive" and value <= 0:
        raise InputError(f"{where} is {shown}; it must be above zero")


def parse_int(text: str, where: Where, *, sign: Sign = "non-negative", maximum: int | None = None) -> int:
    """``text`` as an int, at most :data:`MAX_NUMBER_CHARS` long, with ``sign`` and ``maximum`` enforced."""
    stripped = _checked_text(text, where)
    try:
        value = int(stripped)
    except ValueError:
        raise InputError(f"{where} is {stripped[:20]!r}, not a whole number") from None
    _check_sign(value, sign, where, stripped)
    if maximum is not None and value > maximum:
        raise InputError(f"{where} is {stripped}, above the largest plausible value {maximum}")
    return value


def parse_float(text: str, where: Where, *, sign: Sign = "non-negative", maximum: float | None = None) -> float:
    """``text`` as a finite float (no nan, inf or overflow to inf), with ``sign`` and ``maximum`` enforced."""
    stripped = _checked_text(text, where)
    try:
        value = float(stripped)
    except ValueError:
        raise InputError(f"{where} is {stripped[:20]!r}, not a number") from None
    return finite(value, where, sign=sign, maximum=maximum, shown=stripped)


def finite(
    value: float, where: Where, *, sign: Sign = "non-negative", maximum: float | None = None, shown: str | None = None
) -> float:
    """``value`` (already a float, e.g. from JSON) checked as :func:`parse_float` checks text."""
    label = shown if shown is not None else repr(value)
    if not math.isfinite(value):
        raise InputError(f"{where} is {label}, not a finite number: the input is damaged")
    _check_sign(value, sign, where, label)
    if maximum is not None and value > maximum:
        raise InputError(f"{where} is {label}, above the largest plausible value {maximum:g}")
    return value
