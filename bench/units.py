"""Sizes and rates in the units nccl-tests uses.

Sizes: ``8``, ``1K``, ``64M``, ``16G`` are powers of 1024, as nccl-tests' ``-b/-e`` read them.
Rates: GB/s is 1e9 bytes/s and Gb/s is 1e9 bits/s, so 3200 Gb/s per node is 400 GB/s.
"""

from __future__ import annotations

import re

from bench.exits import UserError

_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MAX_SIZE = 1 << 60
_MAX_SIZE_CHARS = 40
_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """``"64M"`` -> 67108864. Raises UserError naming ``what`` on anything else."""
    text = str(text)
    if len(text) > _MAX_SIZE_CHARS:  # before float(): 400 digits would overflow to inf
        raise UserError(f"{what} is {len(text)} characters long, too long for a size: e.g. 8, 1K, 64M, 16G")
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise UserError(f"{what} {text!r} is not a size: use bytes or a K/M/G suffix, e.g. 8, 1K, 64M, 16G")
    number, suffix = match.groups()
    value = float(number) * _SUFFIX[suffix.upper()]
    if value > MAX_SIZE:
        raise UserError(f"{what} {text!r} is larger than any message or buffer (1 EiB at most)")
    if value != int(value):
        raise UserError(f"{what} {text!r} is not a whole number of bytes")
    return int(value)


def format_size(nbytes: int | float) -> str:
    """Human label in powers of 1024: 1024 -> ``1K``, 1536 -> ``1.5K``, 3 << 30 -> ``3G``."""
    value = float(nbytes)
    for suffix in ("", "K", "M", "G", "T"):
        if abs(value) < 1024 or suffix == "T":
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
        value /= 1024
    raise AssertionError("unreachable")


def gbps_from_GBps(gigabytes_per_s: float) -> float:
    """GB/s (1e9 bytes/s) to Gb/s (1e9 bits/s)."""
    return gigabytes_per_s * 8.0


def GBps_from_gbps(gigabits_per_s: float) -> float:
    """Gb/s to GB/s."""
    return gigabits_per_s / 8.0


LINK_SCOPES = frozenset({"rail", "pair", "local-pair"})
"""Scopes whose busbw is a link's rate: said in Gb/s, as the rails' lines, rails.json and charts say it (the
statistics and compare.json stay in GB/s, results.csv's ``busbw_GBps``; ``docs/design.md``, "Units and
formulas"). A world collective's busbw is said in GB/s, as nccl-tests prints it."""


def rate_unit_of(scope: str) -> tuple[str, float]:
    """The unit a busbw of ``scope`` is said in, and the factor from GB/s to it."""
    return ("Gb/s", 8.0) if scope in LINK_SCOPES else ("GB/s", 1.0)
