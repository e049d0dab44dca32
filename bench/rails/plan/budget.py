"""The time budget of one measurement cell (a pair direction, or a rail-group collective).

A cell should take about ``messages x wire bytes / rate``; its budget is ``BUDGET_FACTOR`` times that,
between ``FLOOR_S`` and ``CEILING_S``. When it runs out, the measurement stops at the bytes moved so far
(``bench.measure.budgeted.time_budgeted``), the cell is slow with its measured rate, and the matrix goes on:
a link that fell back to 1% of its rate costs a budget per cell, not a hundred times the matrix.

The rate is the rail's line rate where known. Where it is not (sockets on veth), it is the fabric's own:
the larger of the fastest rail group's busbw and the upper median of the pair rates seen so far on every rail.
Both ends of a pair must plan alike, so every input here is known identically on every rank of a rail. The
probes a budget is planned from are warm: ``time_budgeted`` times each only after one untimed call of the same
size, so NCCL's connection set-up on first use never shrinks a budget or stretches a probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BUDGET_FACTOR = 4.0
"""A cell may take this many times what its messages should take at the expected rate."""
FLOOR_S = 0.5
"""Never less: scheduling noise alone can stretch a short cell several-fold, and a slow cell should get
one warm message timed after its probe (the first message alone reads low on a token bucket)."""
CEILING_S = 60.0
"""Never more (and the budget where no rate is known at all)."""
CHUNK_BYTES = 1 << 20
"""Smallest chunk a cell that does not fit its budget moves its bytes in: large enough that the chunk's
rate is the link's, not its latency's."""
MAX_CHUNKS = 64
"""At most this many chunks per message (a 256 MiB message moves in 4 MiB chunks)."""


def cell_budget(wire_bytes: int, messages: int, rate_Gbps: float | None, given_s: float | None = None) -> float:
    """Seconds for ``messages`` messages of ``wire_bytes`` each at ``rate_Gbps`` (``given_s`` wins)."""
    if given_s is not None:
        return given_s
    if not rate_Gbps or rate_Gbps <= 0:
        return CEILING_S
    expected = messages * wire_bytes * 8 / (rate_Gbps * 1e9)
    return min(CEILING_S, max(FLOOR_S, BUDGET_FACTOR * expected))


def chunks_per_message(nbytes: int) -> int:
    """How many chunks one message splits into when its cell runs out of budget (1 for small messages)."""
    return max(1, min(MAX_CHUNKS, nbytes // CHUNK_BYTES))


def expected_rate(line_rate_Gbps: float | None, start_Gbps: float | None, seen_Gbps: Sequence[float]) -> float | None:
    """The rate a pair should reach: the line rate, else the larger of ``start_Gbps`` (the fastest rail
    group's busbw) and the upper median of the pair rates seen so far on every rail (a dead-slow link, or a
    slow rail of several, is a minority of them). Every rail's, because on a rail that is slow as a whole
    every pair rate seen is slow, and a budget planned from them would let the broken rail take a hundred
    times the matrix."""
    if line_rate_Gbps:
        return line_rate_Gbps
    start = start_Gbps if start_Gbps and math.isfinite(start_Gbps) and start_Gbps > 0 else None
    known = [r for r in (start, upper_median(seen_Gbps)) if r is not None]
    return max(known) if known else None


def upper_median(rates_Gbps: Sequence[float]) -> float | None:
    """The upper median of the positive rates (None without one): a dead-slow minority cannot pull it down."""
    positive = sorted(r for r in rates_Gbps if r > 0)
    return float(positive[len(positive) // 2]) if positive else None
