"""The time budget of one measurement cell (a pair direction, or a rail-group collective).

A cell should take about ``messages x wire bytes / rate``; its budget is ``BUDGET_FACTOR`` times that,
between ``FLOOR_S`` and ``CEILING_S``. When it runs out, the measurement stops at the bytes moved so far
(``bench.measure.timing.time_budgeted``), the cell is slow with its measured rate, and the matrix goes on:
a link that fell back to 1% of its rate costs a budget per cell, not a hundred times the matrix.

The rate is the rail's line rate where known. Where it is not (sockets on veth), it is the fabric's own:
the fastest rail group's busbw at first, then the upper median of the pair rates seen so far on the rail.
Both ends of a pair must plan alike, so every input here is known identically on every rank of a rail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BUDGET_FACTOR = 4.0
"""A cell may take this many times what its messages should take at the expected rate."""
FLOOR_S = 0.5
"""Never less: scheduling noise alone can stretch a short cell several-fold, and a slow cell should get
one warm message timed after its probe (the first message alone reads low on a token bucket)."""
CEILING_S = 60.0
"""Never more (and the budget where no rate is known at all)."""


def cell_budget(wire_bytes: int, messages: int, rate_Gbps: float | None, given_s: float | None = None) -> float:
    """Seconds for ``messages`` messages of ``wire_bytes`` each at ``rate_Gbps`` (``given_s`` wins)."""
    if given_s is not None:
        return given_s
    if not rate_Gbps or rate_Gbps <= 0:
        return CEILING_S
    expected = messages * wire_bytes * 8 / (rate_Gbps * 1e9)
    return min(CEILING_S, max(FLOOR_S, BUDGET_FACTOR * expected))


def expected_rate(line_rate_Gbps: float | None, start_Gbps: float | None, seen_Gbps: Sequence[float]) -> float | None:
    """The rate a pair on this rail should reach: the line rate, else the upper median of the pair rates seen
    so far on the rail (a dead-slow link is a minority of them), else ``start_Gbps``."""
    if line_rate_Gbps:
        return line_rate_Gbps
    positive = sorted(r for r in seen_Gbps if r > 0)
    if positive:
        return float(positive[len(positive) // 2])
    return start_Gbps if start_Gbps and np.isfinite(start_Gbps) else None
