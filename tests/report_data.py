"""Realistic run directories for the report tests, built from a small model of a rail-optimised cluster.

The numbers follow the shapes real clusters show (docs/design.md, "Units and formulas"): busbw rises with message
size and saturates near 92-96 % of 3200 Gb/s for world all_reduce, a healthy NDR rail carries ~384 Gb/s of
sendrecv, and one deliberately weak HCA (``bad``) drags its rail and every pair that crosses it. Pure
functions return rows and dicts; ``write_run_dir`` puts them on disk in the run-directory format.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.rundir.files import FORMAT_VERSION, RESULT_COLUMNS, results_csv_text

# busbw factor per collective, as nccl-tests computes it (n = ranks in the communicator)
_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "alltoall": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "sendrecv": lambda n: 1.0,
}
_PEAK_GBPS = {"all_reduce": 372.0, "all_gather": 362.0, "reduce_scatter": 352.0, "alltoall": 300.0, "sendrecv": 48.0}


@dataclass(frozen=True)
class ClusterModel:
    """What the fake cluster looks like and where it is broken."""

    hosts: tuple[str, ...] = ("gpu-node-01", "gpu-node-02", "gpu-node-03", "gpu-node-04")
    gpus_per_node: int = 8
    rails: int = 8
    collectives: tuple[str, ...] = ("all_reduce", "all_gather", "sendrecv")
    min_bytes: int = 1 << 10
    max_bytes: int = 1 << 30
    step_factor: int = 2
    bad: tuple[str, int] | None = ("gpu-node-03", 5)  # (node, rail) whose HCA is degraded
    bad_fraction: float = 0.45
    pair_sizes: tuple[int, ...] = (1 << 26,)
    cluster: str = "lambda-1cc-test"
    extra_run: dict[str, Any] = field(default_factory=dict)


def sizes(model: ClusterModel) -> list[int]:
    """The sweep's message sizes, nccl-tests style (-b/-e/-f)."""
    out, size = [], model.min_bytes
    while size <= model.max_bytes:
        out.append(size)
        size *= model.step_factor
    return out


def _curve(peak_GBps: float, nbytes: int, half_bytes: float = 4 << 20) -> float:
    """Saturating busbw curve: latency-bound at small sizes, near peak above a few hundred MB."""
    return peak_GBps * nbytes / (nbytes + half_bytes)


def _row(
    collective: str, scope: str, group: str, nranks: int, nnodes: int, nbytes: int, busbw: float, target_Gbps: float
) -> dict[str, Any]:
    factor = _FACTOR[collective](nranks)
    algbw = busbw / factor if factor else busbw
    time_us = nbytes / (algbw * 1e9) * 1e6 if algbw else 0.0
    busbw_Gbps = busbw * 8
    return {
        "collective": collective,
        "scope": scope,
        "group": group,
        "nranks": nranks,
        "nnodes": nnodes,
        "bytes": nbytes,
        "count": nbytes // 4,
        "dtype": "float32",
        "placement": "out-of-place",
        "iters": 20,
        "time_us": round(time_us, 2),
        "time_us_min": round(time_us * 0.97, 2),
        "time_us_max": round(time_us * 1.04, 2),
        "algbw_GBps": round(algbw, 3),
        "busbw_GBps": round(busbw, 3),
        "busbw_Gbps": round(busbw_Gbps, 3),
        "target_Gbps": target_Gbps,
        "efficiency": round(busbw_Gbps / target_Gbps, 4) if target_Gbps else "",
        "wrong": 0,
        "redop": "sum" if collective == "all_reduce" else "none",
        "root": -1,
        "algo": "RING",
    }


def rail_rate(model: ClusterModel, node: str, rail: int) -> float:
    """sendrecv busbw in GB/s that one node's HCA on ``rail`` delivers."""
    weak = model.bad is not None and model.bad == (node, rail)
    return _PEAK_GBPS["sendrecv"] * (model.bad_fraction if weak else 1.0) - 0.05 * (rail % 3)


def results_rows(model: ClusterModel) -> list[dict[str, Any]]:
    """results.csv rows: the world sweep, rail groups, per-node collectives and node pairs per rail."""
    nnodes = len(model.hosts)
    world = nnodes * model.gpus_per_node
    rows: list[dict[str, Any]] = []
    for collective in model.collectives:
        for nbytes in sizes(model):
            n = 2 if collective == "sendrecv" else world
            busbw = _curve(_PEAK_GBPS[collective], nbytes)
            # world sendrecv is one pair of ranks over one rail; the others span every rail of every node
            target = 400.0 if collective == "sendrecv" else 3200.0
            rows.append(_row(collective, "world", "world", n, nnodes, nbytes, busbw, target))
            # nccl-tests reports in-place too; it is a hair slower and must not be averaged into the chart
            rows.append(
                dict(_row(collective, "world", "world", n, nnodes, nbytes, busbw * 0.99, target), placement="in-place")
            )
    for rail in range(model.rails):
        weakest = min(rail_rate(model, host, rail) for host in model.hosts)
        for nbytes in sizes(model)[-6:]:
            rows.append(
                _row("all_reduce", "rail", f"rail{rail}", nnodes, nnodes, nbytes, _curve(weakest, nbytes), 400.0)
            )
    for host in model.hosts:
        for nbytes in sizes(model)[-4:]:
            rows.append(_row("all_reduce", "node", host, model.gpus_per_node, 1, nbytes, _curve(470.0, nbytes), 3840.0))
    for a, b in pairs(model.hosts):
        for rail in range(model.rails):
            rate = min(rail_rate(model, a, rail), rail_rate(model, b, rail))
            for nbytes in model.pair_sizes:
                rows.append(_row("sendrecv", "pair", f"{a}-{b}/rail{rail}", 2, 2, nbytes, _curve(rate, nbytes), 400.0))
    return rows


def pairs(hosts: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1 :]]


def run_json(model: ClusterModel, command: str = "accept") -> dict[str, Any]:
    nnodes = len(model.hosts)
    ranks = [
        {"rank": n * model.gpus_per_node + g, "host": h, "local_rank": g, "node_rank": n}
        for n, h in enumerate(model.hosts)
        for g in range(model.gpus_per_node)
    ]
    run = {
        "format_version": FORMAT_VERSION,
        "tool": "railbench",
        "version": "0.1.0",
        "command": command,
        "cluster": model.cluster,
        "profile": "lambda-1cc",
        "started_utc": "2026-11-20T22:43:10Z",
        "finished_utc": "2026-11-20T23:01:44Z",
        "status": "complete",
        "verdict": "fail" if model.bad else "pass",
        "hosts": list(model.hosts),
        "nnodes": nnodes,
        "nranks": nnodes * model.gpus_per_node,
        "ranks": ranks,
        "launcher": "openmpi",
        "backend": "nccl",
        "versions": {"torch": "2.5.1", "nccl": "2.23.4", "cuda": "12.4", "driver": "550.127.05", "python": "3.11"},
        "env": {"NCCL_IB_HCA": "^=mlx5_0"},
        "sweep": {
            "collectives": list(model.collectives),
            "min_bytes": model.min_bytes,
            "max_bytes": model.max_bytes,
            "step_factor": model.step_factor,
            "iters": 20,
            "warmup": 5,
            "dtype": "float32",
            "check": False,
        },
    }
    run.update(model.extra_run)
    return run


def rails_json(model: ClusterModel) -> dict[str, Any]:
    """The rails helper's output: per (node, rail) measurements, node-pair measurements and named defects."""
    measurements: list[dict[str, Any]] = []
    for host in model.hosts:
        for rail in range(model.rails):
            measurements.append(
                {
                    "kind": "rail",
                    "rail": rail,
                    "node": host,
                    "peer": None,
                    "device": f"mlx5_{rail + 1}",
                    "busbw_Gbps": round(rail_rate(model, host, rail) * 8, 2),
                    "expected_Gbps": 400.0,
                }
            )
    for a, b in pairs(model.hosts):
        for rail in range(model.rails):
            rate = min(rail_rate(model, a, rail), rail_rate(model, b, rail))
            measurements.append(
                {
                    "kind": "pair",
                    "rail": rail,
                    "node": a,
                    "peer": b,
                    "device": f"mlx5_{rail + 1}",
                    "busbw_Gbps": round(rate * 8, 2),
                    "expected_Gbps": 400.0,
                }
            )
    defects = []
    if model.bad:
        node, rail = model.bad
        measured = round(rail_rate(model, node, rail) * 8, 2)
        defects.append(
            {
                "kind": "hca",
                "node": node,
                "rail": rail,
                "device": f"mlx5_{rail + 1}",
                "measured_Gbps": measured,
                "expected_Gbps": 400.0,
                "evidence": f"every pair on rail {rail} that includes {node} is slow; other rails of {node} are fine",
            }
        )
    return {"measurements": measurements, "defects": defects}


def checks_json(model: ClusterModel) -> dict[str, Any]:
    checks = [
        {"name": "ib_ports", "status": "pass", "reason": "8/8 ports ACTIVE at 400 Gb/sec (4X NDR)"},
        {"name": "nccl_ib_hca", "status": "pass", "reason": "NCCL_IB_HCA=^=mlx5_0 excludes mlx5_0 only"},
        {"name": "versions", "status": "pass", "reason": "NCCL 2.23.4, torch 2.5.1 on every node"},
    ]
    if model.bad:
        node, rail = model.bad
        checks.append({"name": "rails", "status": "fail", "reason": f"{node} rail {rail} below 90% of line rate"})
    return {"checks": checks, "verdict": "fail" if model.bad else "pass"}


def trend_csv_text(nights: int = 30, regress_last: bool = True) -> str:
    """trend.csv as the compare helper writes it: one row per night and metric with the baseline band."""
    buf = io.StringIO()
    cols = ["run_time", "metric", "busbw_GBps", "baseline_GBps", "band_lo_GBps", "band_hi_GBps", "state"]
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for metric, base in (("all_reduce 1G world", 371.0), ("sendrecv 64M pair", 47.5)):
        for night in range(nights):
            wobble = math.sin(night * 1.7) * base * 0.01
            value = base + wobble
            state = "ok"
            if regress_last and night == nights - 1 and metric.startswith("all_reduce"):
                value, state = base * 0.82, "regressed"
            writer.writerow(
                {
                    "run_time": f"2026-10-{(night % 30) + 1:02d}T02:00:00Z",
                    "metric": metric,
                    "busbw_GBps": round(value, 2),
                    "baseline_GBps": base,
                    "band_lo_GBps": round(base * 0.97, 2),
                    "band_hi_GBps": round(base * 1.03, 2),
                    "state": state,
                }
            )
    return buf.getvalue()


def write_run_dir(
    path: Path,
    model: ClusterModel | None = None,
    *,
    rails: bool = True,
    checks: bool = True,
    trend: bool = True,
    rows: list[dict[str, Any]] | None = None,
) -> Path:
    """A complete run directory at ``path`` (created); optional inputs can be left out."""
    model = model or ClusterModel()
    path.mkdir(parents=True, exist_ok=True)
    (path / "run.json").write_text(json.dumps(run_json(model), indent=2) + "\n", encoding="utf-8")
    body = rows if rows is not None else results_rows(model)
    (path / "results.csv").write_text(results_csv_text(body, RESULT_COLUMNS), encoding="utf-8")
    if rails:
        (path / "rails.json").write_text(json.dumps(rails_json(model), indent=2) + "\n", encoding="utf-8")
    if checks:
        (path / "checks.json").write_text(json.dumps(checks_json(model), indent=2) + "\n", encoding="utf-8")
    if trend:
        (path / "trend.csv").write_text(trend_csv_text(), encoding="utf-8")
    return path
