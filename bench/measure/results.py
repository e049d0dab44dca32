"""Turning a measurement into a results.csv row: algbw, busbw and efficiency, with nccl-tests' formulas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bench.measure.collectives import Collective, get_collective
from bench.rundir.results_csv import Row


def _sig(x: float) -> float:
    # Seven significant digits: tiny CPU bandwidths keep their ratio, large GPU ones their precision.
    return float(f"{x:.7g}")


def bandwidths(nbytes: int, time_us: float, busbw_factor: float) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (1e9 bytes/s): algbw = S / t, busbw = algbw x factor."""
    if time_us <= 0:
        return 0.0, 0.0
    algbw = nbytes / (time_us * 1e-6) / 1e9
    return algbw, algbw * busbw_factor


class Measured(Protocol):
    """The numbers of one measurement, as the timing loop (``SizeResult``) and the rails test
    (``RailResult``) keep them."""

    @property
    def nbytes(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def iters(self) -> int: ...
    @property
    def time_us(self) -> float: ...
    @property
    def time_us_min(self) -> float: ...
    @property
    def time_us_max(self) -> float: ...
    @property
    def wrong(self) -> int | None: ...


@dataclass(frozen=True)
class Timing:
    """A measurement's numbers built by hand (a pair's two directions, a test's row)."""

    nbytes: int
    count: int
    iters: int
    time_us: float
    time_us_min: float
    time_us_max: float
    wrong: int | None = None


@dataclass(frozen=True)
class RowPlace:
    """Where a measurement ran: its element type and communicator, and its scope and group in results.csv."""

    dtype: str
    nranks: int
    nnodes: int
    scope: str = "world"
    group: str = "world"


def result_row(coll: Collective, timed: Measured, place: RowPlace, target_gbps: float | None, algo: str = "") -> Row:
    """One row with every RESULT_COLUMNS field; efficiency is blank without a target."""
    algbw, busbw = bandwidths(timed.nbytes, timed.time_us, coll.busbw_factor(place.nranks))
    busbw_gbps = busbw * 8
    return {
        "collective": coll.name,
        "scope": place.scope,
        "group": place.group,
        "nranks": place.nranks,
        "nnodes": place.nnodes,
        "bytes": timed.nbytes,
        "count": timed.count,
        "dtype": place.dtype,
        "placement": coll.placement,
        "iters": timed.iters,
        "time_us": _sig(timed.time_us),
        "time_us_min": _sig(timed.time_us_min),
        "time_us_max": _sig(timed.time_us_max),
        "algbw_GBps": _sig(algbw),
        "busbw_GBps": _sig(busbw),
        "busbw_Gbps": _sig(busbw_gbps),
        "target_Gbps": target_gbps if target_gbps else None,
        "efficiency": _sig(busbw_gbps / target_gbps) if target_gbps else None,
        "wrong": timed.wrong,
        "redop": coll.redop,
        "root": coll.root,
        "algo": algo,
    }


def pair_row(nbytes: int, times_us: Sequence[float], iters: int, place: RowPlace, target_gbps: float | None) -> Row:
    """One results.csv row for a pair of ranks measured in both directions (float32 messages of ``nbytes``):
    the slower direction is the pair's time, as for nccl-tests' sendrecv between two ranks."""
    slow = max(times_us)
    timing = Timing(nbytes, nbytes // 4, iters, slow, min(times_us), slow)
    return result_row(get_collective("sendrecv"), timing, place, target_gbps)
