"""The world sweep's per-size table, laid out as nccl-tests prints it: one line per collective and size, the
out-of-place half and then the in-place half (time, algbw, busbw, #wrong each).

An imported nccl-tests log measured both halves and both are shown, side by side as the log had them; a
railbench run measures the one placement torch offers for each collective (all_reduce in place, all_gather
out of place), and the half it did not measure is a dash, so the table says which one was timed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pandas as pd

from bench.units import format_size

HALF = ("time (us)", "algbw GB/s", "busbw GB/s", "#wrong")
SWEEP_HEADERS = (
    "collective",
    "size",
    "count",
    *(f"out-of-place {h}" if h == HALF[0] else h for h in HALF),
    *(f"in-place {h}" if h == HALF[0] else h for h in HALF),
    "fastest rank (us)",
    "slowest rank (us)",
)


class _Half(NamedTuple):
    time_us: float
    algbw_GBps: float
    busbw_GBps: float
    wrong: float
    time_us_min: float
    time_us_max: float


def number_cell(value: object, spec: str) -> str:
    """A table cell for a number, formatted by ``spec``; a dash for no number (blank, NaN, text)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else format(number, spec)


def _cells(half: _Half | None) -> tuple[str, ...]:
    if half is None:
        return ("—",) * len(HALF)
    return (
        number_cell(half.time_us, ",.1f"),
        number_cell(half.algbw_GBps, ",.2f"),
        number_cell(half.busbw_GBps, ",.2f"),
        number_cell(half.wrong, ".0f"),
    )


def sweep_rows(results: pd.DataFrame) -> tuple[tuple[str, ...], ...]:
    """One line per (collective, size) of the world sweep (SWEEP_HEADERS), zero-byte rows included,
    collectives in the order they ran (as the terminal printed them), sizes ascending; repeated measurements
    of one size are averaged (the fastest and slowest rank over all of them)."""
    world = results[results["scope"] == "world"]
    if world.empty:
        return ()
    ran = {name: i for i, name in enumerate(dict.fromkeys(world["collective"]))}
    # Every results.csv writer fills placement; a hand-made file without it reads as out-of-place.
    half = world["placement"].where(world["placement"] == "in-place", "out-of-place")
    world = world.assign(ran=world["collective"].map(ran), half=half)
    agg = world.groupby(["ran", "collective", "bytes", "half"], as_index=False, sort=True).agg(
        count=("count", "first"),
        time_us=("time_us", "mean"),
        algbw_GBps=("algbw_GBps", "mean"),
        busbw_GBps=("busbw_GBps", "mean"),
        wrong=("wrong", "sum"),
        checked=("wrong", "count"),
        time_us_min=("time_us_min", "min"),
        time_us_max=("time_us_max", "max"),
    )
    lines: dict[tuple[int, str, int], dict[str, _Half]] = {}
    counts: dict[tuple[int, str, int], object] = {}
    for r in agg.itertuples():
        key = (int(r.ran), str(r.collective), int(r.bytes))
        wrong = r.wrong if r.checked else math.nan  # N/A (not checked) stays N/A: a sum of nothing is not 0
        lines.setdefault(key, {})[str(r.half)] = _Half(
            r.time_us, r.algbw_GBps, r.busbw_GBps, wrong, r.time_us_min, r.time_us_max
        )
        counts.setdefault(key, r.count)
    out = []
    for key, halves in lines.items():
        _, collective, nbytes = key
        mins = [float(h.time_us_min) for h in halves.values() if not math.isnan(float(h.time_us_min))]
        maxes = [float(h.time_us_max) for h in halves.values() if not math.isnan(float(h.time_us_max))]
        fastest, slowest = min(mins, default=math.nan), max(maxes, default=math.nan)
        out.append(
            (
                collective,
                format_size(nbytes),
                number_cell(counts[key], ".0f"),
                *_cells(halves.get("out-of-place")),
                *_cells(halves.get("in-place")),
                number_cell(fastest, ",.1f"),
                number_cell(slowest, ",.1f"),
            )
        )
    return tuple(out)
