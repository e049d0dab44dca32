"""Turning a measurement into a results.csv row: algbw, busbw and efficiency, with nccl-tests' formulas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.measure.collectives import Collective, get_collective


def _sig(x: float) -> float:
    # Seven significant digits: tiny CPU bandwidths keep their ratio, large GPU ones their precision.
    return float(f"{x:.7g}")


def bandwidths(nbytes: int, time_us: float, busbw_factor: float) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (1e9 bytes/s): algbw = S / t, busbw = algbw x factor."""
    if time_us <= 0:
        return 0.0, 0.0
    algbw = nbytes / (time_us * 1e-6) / 1e9
    return algbw, algbw * busbw_factor


def result_row(
    coll: Collective,
    *,
    nbytes: int,
    count: int,
    dtype: str,
    nranks: int,
    nnodes: int,
    iters: int,
    time_us: float,
    time_us_min: float,
    time_us_max: float,
    wrong: int | None,
    target_gbps: float | None,
    scope: str = "world",
    group: str = "world",
    algo: str = "",
) -> dict[str, Any]:
    """One row with every RESULT_COLUMNS field; efficiency is blank without a target."""
    algbw, busbw = bandwidths(nbytes, time_us, coll.busbw_factor(nranks))
    busbw_gbps = busbw * 8
    return {
        "collective": coll.name,
        "scope": scope,
        "group": group,
        "nranks": nranks,
        "nnodes": nnodes,
        "bytes": nbytes,
        "count": count,
        "dtype": dtype,
        "placement": coll.placement,
        "iters": iters,
        "time_us": _sig(time_us),
        "time_us_min": _sig(time_us_min),
        "time_us_max": _sig(time_us_max),
        "algbw_GBps": _sig(algbw),
        "busbw_GBps": _sig(busbw),
        "busbw_Gbps": _sig(busbw_gbps),
        "target_Gbps": target_gbps if target_gbps else None,
        "efficiency": _sig(busbw_gbps / target_gbps) if target_gbps else None,
        "wrong": wrong,
        "redop": coll.redop,
        "root": coll.root,
        "algo": algo,
    }


def pair_row(
    nbytes: int,
    times_us: Sequence[float],
    *,
    nnodes: int,
    iters: int,
    target_gbps: float | None,
    scope: str,
    group: str,
) -> dict[str, Any]:
    """One results.csv row for a pair of ranks measured in both directions (float32 messages of ``nbytes``):
    the slower direction is the pair's time, as for nccl-tests' sendrecv between two ranks."""
    slow = max(times_us)
    return result_row(
        get_collective("sendrecv"),
        nbytes=nbytes,
        count=nbytes // 4,
        dtype="float",
        nranks=2,
        nnodes=nnodes,
        iters=iters,
        time_us=slow,
        time_us_min=min(times_us),
        time_us_max=slow,
        wrong=None,
        target_gbps=target_gbps,
        scope=scope,
        group=group,
    )
