"""Turning a measurement into a results.csv row: algbw, busbw and efficiency, with nccl-tests' formulas."""

from __future__ import annotations

from typing import Any

from bench.collectives import Collective


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
        "time_us": round(time_us, 3),
        "time_us_min": round(time_us_min, 3),
        "time_us_max": round(time_us_max, 3),
        "algbw_GBps": round(algbw, 6),
        "busbw_GBps": round(busbw, 6),
        "busbw_Gbps": round(busbw_gbps, 6),
        "target_Gbps": target_gbps if target_gbps else None,
        "efficiency": round(busbw_gbps / target_gbps, 6) if target_gbps else None,
        "wrong": wrong,
        "redop": coll.redop,
        "root": coll.root,
        "algo": algo,
    }
