"""Test fixtures for import, history and compare: nccl-tests output written the way nccl-tests prints it
(text with the ``%7s``/``%6s`` number formatting of src/util.cu, and the ``-J`` JSON), and railbench run
directories with chosen busbw values.

Everything here is computed from a simple bandwidth model, so fixtures are our own and every number obeys
the busbw formula.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.nccltests import busbw_factor
from bench.rundir.files import FORMAT_VERSION, atomic_write_json
from bench.rundir.results_csv import RESULT_COLUMNS, results_csv_text

PER_RANK = {"all_gather", "reduce_scatter", "alltoall", "gather", "scatter"}
ELSIZE = {"float": 4, "double": 8, "half": 2, "int8": 1}


def float_str(value: float, width: int) -> str:
    """nccl-tests' getFloatStr: 2, 1, then 0 decimals, then exponent form, to fit ``width``."""
    for text in (f"{value:{width}.2f}", f"{value:{width}.1f}", f"{value:{width}.0f}"):
        if len(text) <= width:
            return text
    return f"{value:{width}.1e}" if width >= 7 else f"{value:{width}.0e}"


@dataclass(frozen=True)
class Point:
    """One size of a synthetic sweep, with both halves computed from a latency + bandwidth model."""

    size: int
    count: int
    time_us: float
    algbw: float
    busbw: float


def sweep(
    collective: str,
    nranks: int,
    sizes: Sequence[int],
    *,
    dtype: str = "float",
    peak_GBps: float = 180.0,
    latency_us: float = 25.0,
) -> list[Point]:
    points = []
    for size in sizes:
        elements = size // ELSIZE[dtype]
        count = elements // nranks if collective in PER_RANK else elements
        time_us = latency_us + size / (peak_GBps * 1e3)
        algbw = size / (time_us * 1e3)
        points.append(Point(size, count, time_us, algbw, algbw * busbw_factor(collective, nranks)))
    return points


def _row(p: Point, dtype: str, redop: str, root: int, *, wrong: str = "0") -> str:
    half = f"  {float_str(p.time_us, 7)}  {float_str(p.algbw, 6)}  {float_str(p.busbw, 6)}  {wrong:>6}"
    return f"{p.size:12d}  {p.count:12d}  {dtype:>8}  {redop:>6}  {root:6d}" + half + half


def text_log(
    collective: str,
    hosts: Sequence[str],
    gpus_per_host: int,
    sizes: Sequence[int],
    *,
    label_ranks: bool = False,
    info_lines: bool = True,
    timestamps: bool = False,
    wrong: Mapping[int, int] | None = None,
    stop_after: int | None = None,
    cut_last_row: bool = False,
    failure: str | None = None,
    nccl_code: int = 22703,
) -> str:
    """A new-format nccl-tests log of one ``*_perf`` run over ``hosts`` x ``gpus_per_host`` ranks.

    ``stop_after`` rows then (optionally) ``failure`` lines and no footer; ``cut_last_row`` also leaves half
    a row at the end, as a log cut mid-write does; ``label_ranks`` adds srun's ``0: `` prefix.
    """
    nranks = len(hosts) * gpus_per_host
    redop = "sum" if collective in {"all_reduce", "reduce", "reduce_scatter"} else "none"
    root = 0 if collective in {"broadcast", "reduce"} else -1
    points = sweep(collective, nranks, sizes)
    lines = [
        f"# nccl-tests version 2.16.4 nccl-headers={nccl_code} nccl-library={nccl_code}",
        f"# Collective test starting: {collective}_perf",
        f"# nThread 1 nGpus 1 minBytes {sizes[0]} maxBytes {sizes[-1]} step: 2(factor) warmup iters: 5 "
        "iters: 20 agg iters: 1 validation: 1 graph: 0",
        "#",
        "# Using devices",
    ]
    for rank in range(nranks):
        host = hosts[rank // gpus_per_host]
        local = rank % gpus_per_host
        lines.append(
            f"#  Rank {rank:2d} Group  0 Pid {4000 + rank:6d} on {host:>10} device {local:2d} "
            f"[0000:{0x18 + 16 * local:02x}:00] NVIDIA H100 80GB HBM3"
        )
    lines += ["#", "#  size  count  type  redop  root  time  algbw  busbw  #wrong  time  algbw  busbw  #wrong"]
    lines.append("#   (B) (elements)    (us) (GB/s) (GB/s)   (us) (GB/s) (GB/s)")
    if info_lines:
        lines.append(f"{hosts[0]}:4000:4100 [0] NCCL INFO comm 0x5612 rank 0 nRanks {nranks} nNodes {len(hosts)}")
    for i, p in enumerate(points[:stop_after]):
        stamp = "  2026-11-20 22:43:10" if timestamps else ""
        lines.append(_row(p, "float", redop, root, wrong=str((wrong or {}).get(p.size, 0))) + stamp)
        if info_lines and i == 1:
            lines.append(f"{hosts[-1]}:4001:4101 [1] NCCL INFO Channel 02/0 : 1[1] -> 2[2] via P2P/CUMEM")
    if cut_last_row and stop_after is not None:
        lines.append(_row(points[stop_after], "float", redop, root)[:70])
    if failure:
        lines.append(failure)
    if stop_after is None:
        bad = sum(1 for n in (wrong or {}).values() if n)
        avg = sum(p.busbw for p in points) / len(points)
        lines += [
            f"# Out of bounds values : {bad} {'FAILED' if bad else 'OK'}",
            f"# Avg bus bandwidth    : {avg:g} ",
            "#",
            f"# Collective test concluded: {collective}_perf",
        ]
    if label_ranks:
        lines = [f"0: {line}" for line in lines]
    return "\n".join(lines) + ("\n" if not cut_last_row else "")


def json_log(
    collective: str,
    hosts: Sequence[str],
    gpus_per_host: int,
    sizes: Sequence[int],
    *,
    version: int = 3,
    ngpus_per_process: int = 1,
    nccl_code: int = 22902,
    errors: Sequence[str] = (),
) -> str:
    """The file ``nccl-tests -J out.json`` writes, for one run (one device entry per process)."""
    nranks = len(hosts) * gpus_per_host
    points = sweep(collective, nranks, sizes)
    processes = nranks // ngpus_per_process
    devices = [
        {
            "rank": p * ngpus_per_process,
            "group": 0,
            "pid": 7000 + p,
            "hostname": hosts[p * ngpus_per_process // gpus_per_host],
            "device": p * ngpus_per_process % gpus_per_host,
            "device_hex": "0000:18:00",
            "device_info": "NVIDIA H100 80GB HBM3",
        }
        for p in range(processes)
    ]
    redop = "sum" if collective in {"all_reduce", "reduce", "reduce_scatter"} else "none"

    def half(p: Point) -> dict[str, object]:
        return {"time": round(p.time_us, 6), "alg_bw": round(p.algbw, 6), "bus_bw": round(p.busbw, 6), "nwrong": 0.0}

    avg_key, bw_key = (
        ("average_bus_bandwidith", "bandwidith") if version == 1 else ("average_bus_bandwidth", "bandwidth")
    )
    doc = {
        "version": version,
        "start_time": "2026-11-20 22:43:10",
        "args": [f"/opt/nccl-tests/build/{collective}_perf", "-b", str(sizes[0]), "-e", str(sizes[-1]), "-J", "o.json"],
        "env": ["NCCL_IB_HCA=^=mlx5_0", "NCCL_DEBUG=WARN", "HOME=/root"],
        "nccl_version": nccl_code,
        "config": {
            "nthreads": 1,
            "ngpus": ngpus_per_process,
            "minimum_bytes": sizes[0],
            "maximum_bytes": sizes[-1],
            "step_factor": 2,
            "warmup_iters": 5,
            "iterations": 20,
            "aggregated_iterations": 1,
            "validation": 1,
            "graph": 0,
            "blocking_collectives": "false",
            "parallel_init": "false",
            "devices": devices,
        },
        "results": [
            {
                "size": p.size,
                "count": p.count,
                "type": "float",
                "redop": redop,
                "root": "    -1",
                "out_of_place": half(p),
                "in_place": half(p),
                "actual_iterations": 20,
                "experiment_name": "",
            }
            for p in points
        ],
        "out_of_bounds": {"count": 0, "okay": "true"},
        avg_key: {bw_key: sum(p.busbw for p in points) / len(points), "okay": "unchecked"},
        "errors": list(errors),
        "end_time": "2026-11-20 22:44:02",
    }
    # nccl-tests writes the document in one line without spaces; so do we.
    return json.dumps(doc, separators=(",", ":"))


def make_run_dir(
    run_dir: Path,
    *,
    started_utc: str,
    busbw: Mapping[tuple[str, str, str, int], float],
    cluster: str = "lab",
    hosts: Sequence[str] = ("node01", "node02"),
    nranks: int = 16,
    nccl: str = "2.27.3",
    wrong: Mapping[tuple[str, str, str, int], int] | None = None,
    status: str = "complete",
    command: str = "run",
    meta_extra: Mapping[str, object] | None = None,
) -> Path:
    """A railbench run directory whose results.csv holds one out-of-place row per (collective, scope,
    group, bytes) key with the given busbw; ``meta_extra`` adds or replaces run.json keys (``sweep``,
    ``env``, ``versions``)."""
    meta = {
        "format_version": FORMAT_VERSION,
        "tool": "railbench",
        "version": "0.1.0",
        "command": command,
        "cluster": cluster,
        "profile": None,
        "started_utc": started_utc,
        "finished_utc": started_utc,
        "status": status,
        # as the frame writes it for rows without a target: measured, with why
        "verdict": "measured" if status == "complete" else "error",
        "reasons": ["no busbw target applies to these rows"],
        "hosts": list(hosts),
        "nnodes": len(hosts),
        "nranks": nranks,
        "versions": {"torch": "2.6.0", "nccl": nccl, "cuda": "12.4", "driver": "550.90", "python": "3.11"},
        **(meta_extra or {}),
    }
    rows = []
    for (collective, scope, group, nbytes), value in busbw.items():
        rows.append(
            {
                "collective": collective,
                "scope": scope,
                "group": group,
                "nranks": nranks,
                "nnodes": len(hosts),
                "bytes": nbytes,
                "count": nbytes // 4,
                "dtype": "float",
                "placement": "out-of-place",
                "iters": 20,
                "time_us": nbytes / (value * 1e3) if value else "",
                "algbw_GBps": value,
                "busbw_GBps": value,
                "busbw_Gbps": value * 8,
                "wrong": (wrong or {}).get((collective, scope, group, nbytes), 0),
            }
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "run.json", meta)
    (run_dir / "results.csv").write_text(results_csv_text(rows, RESULT_COLUMNS))
    return run_dir
