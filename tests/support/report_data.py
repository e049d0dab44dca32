"""Realistic run directories for the report tests, built from a small model of a rail-optimised cluster.

The numbers follow the shapes real clusters show (docs/design.md, "Units and formulas"): busbw rises with
message size and saturates near 92-96 % of 3200 Gb/s for world all_reduce, a healthy NDR rail carries ~384 Gb/s
of sendrecv, and one deliberately weak HCA (``bad``) drags its rail and every pair that crosses it. The files
follow what ``railbench accept`` writes today: run.json with the accept block and the byte counters of every
device a GPU node has (rails, mlx5_0, the management interface, loopback, container bridges and veths),
checks.json per node, rails.json with the rail groups, the pair matrix, the named parts and the intra-node
GPU matrix. Pure functions return rows and dicts; ``write_run_dir`` puts them on disk.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.profile.cluster import load_profile
from bench.rails.plan.acceptance import build
from bench.rails.plan.config import resolve
from bench.rails.plan.laps import compared
from bench.rails.plan.phases import Sweep
from bench.rundir.files import FORMAT_VERSION
from bench.rundir.railsdoc import RailsDoc
from bench.rundir.results_csv import RESULT_COLUMNS, results_csv_text
from tests.support.rails_configs import rails_config

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
NVLINK_GBPS = 2880.0  # the lambda-1cc profile's single-node sendrecv target
LINK_ACTION = "check the HCA and the switch port of {node} {device}"
GPU_ACTION = "reseat or replace {node} GPU {gpu}; check its NVLink with nvidia-smi nvlink -s"


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
    bad: tuple[str, int] | None = ("gpu-node-03", 5)  # (node, rail) whose HCA is degraded: a link fault
    bad_fraction: float = 0.45
    pair_sizes: tuple[int, ...] = (1 << 26,)
    cluster: str = "lambda-1cc-test"
    extra_run: dict[str, Any] = field(default_factory=dict)
    bad_gpu: tuple[str, int] | None = None
    """(node, local rank) whose NVLink is slow: a gpu fault in the intra-node matrix."""
    transient: tuple[str, str, int] | None = None
    """(node, peer, rail): slow once in the pair matrix, normal when re-measured."""
    failed_check: tuple[str, str, str] | None = None
    """(node, check, reason) that fails on one node."""
    other_devices: int = 14
    """Network devices per node beside the rails, mlx5_0, eth0 and lo (docker0, veths, a bond)."""
    intra_node: bool = True
    """Whether the run measured the GPU x GPU matrix of every node."""

    @property
    def failed(self) -> bool:
        return bool(self.bad or self.bad_gpu or self.failed_check)


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


def gpu_rate(model: ClusterModel, node: str, gpu: int, peer: int) -> float:
    """Intra-node sendrecv busbw in Gb/s from local rank ``gpu`` to ``peer`` (NVLink through the NVSwitch)."""
    weak = model.bad_gpu is not None and model.bad_gpu[0] == node and model.bad_gpu[1] in (gpu, peer)
    wobble = 1.0 - 0.01 * ((gpu * 7 + peer * 3) % 5)
    return round(NVLINK_GBPS * 0.97 * wobble * (0.4 if weak else 1.0), 3)


def device(rail: int) -> str:
    """The HCA of ``rail`` on a 1CC node: mlx5_0 is the management HCA, the rails are mlx5_1..mlx5_8."""
    return f"mlx5_{rail + 1}"


def results_rows(model: ClusterModel, node_pairs: bool = True) -> list[dict[str, Any]]:
    """results.csv rows: the world sweep, rail groups, per-node collectives, node pairs per rail (unless
    ``node_pairs`` is False: a caller that writes them its own way) and local pairs."""
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
    for a, b in pairs(model.hosts) if node_pairs else ():
        for rail in range(model.rails):
            rate = _pair_rate(model, a, b, rail)
            for nbytes in model.pair_sizes:
                rows.append(_row("sendrecv", "pair", f"{a}-{b}/rail{rail}", 2, 2, nbytes, _curve(rate, nbytes), 400.0))
    if model.intra_node:
        for host in model.hosts:
            for i, j in pairs(range(model.gpus_per_node)):
                slower = min(gpu_rate(model, host, i, j), gpu_rate(model, host, j, i)) / 8.0
                rows.append(_row("sendrecv", "local-pair", f"{host}/gpu{i}-gpu{j}", 2, 1, 1 << 28, slower, NVLINK_GBPS))
    return rows


def _pair_rate(model: ClusterModel, a: str, b: str, rail: int) -> float:
    return min(rail_rate(model, a, rail), rail_rate(model, b, rail))


def pairs(items: Sequence[Any]) -> list[tuple[Any, Any]]:
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]


def counters(model: ClusterModel, moved_per_rail: int = 5_100_000_000) -> dict[str, dict[str, dict[str, Any]]]:
    """run.json's counters over the sweep: every device of every node, as a GPU node has them."""
    quiet = {"rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0, "rx_crc_errors": 0, "carrier_changes": 0}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for n, host in enumerate(model.hosts):
        devices: dict[str, dict[str, Any]] = {"mlx5_0:1": {"tx_bytes": 0, "rx_bytes": 0, "kind": "ib", "errors": {}}}
        for rail in range(model.rails):
            share = moved_per_rail * (model.bad_fraction if model.bad == (host, rail) else 1.0)
            devices[f"{device(rail)}:1"] = {
                "tx_bytes": int(share) + 4096 * rail,
                "rx_bytes": int(share) + 2048 * n,
                "kind": "ib",
                "errors": {"symbol_error": 0, "link_downed": 0},
            }
        devices["eth0"] = {"tx_bytes": 48_200_000 + n, "rx_bytes": 51_900_000, "kind": "net", "errors": dict(quiet)}
        devices["lo"] = {"tx_bytes": 2_330_000_000, "rx_bytes": 2_330_000_000, "kind": "net", "errors": dict(quiet)}
        for k in range(model.other_devices):
            name = "docker0" if k == 0 else ("bond0" if k == 1 else f"veth{k:02d}a{n:02x}")
            devices[name] = {"tx_bytes": 1200 * k, "rx_bytes": 800 * k, "kind": "net", "errors": dict(quiet)}
        out[host] = devices
    return out


def _defects(model: ClusterModel) -> list[dict[str, Any]]:
    if not model.bad:
        return []
    node, rail = model.bad
    measured = round(rail_rate(model, node, rail) * 8, 2)
    others = [h for h in model.hosts if h != node]
    evidence = ["-".join(sorted((node, other))) + f"/rail{rail}" for other in others]
    dev = device(rail)
    action = LINK_ACTION.format(node=node, device=dev)
    line = (
        f"{node} rail {rail} ({dev}): {measured:.3g} Gb/s = {100 * measured / 400:.0f}% of 400 Gb/s in "
        f"{len(others)}/{len(others)} pairs → link fault; no error counter rose on {dev} port 1 during the test; "
        f"action: {action}"
    )
    return [
        {
            "kind": "link",
            "node": node,
            "peer": None,
            "rail": rail,
            "device": dev,
            "measured_Gbps": measured,
            "expected_Gbps": 400.0,
            "basis": "line rate",
            "symptom": "slow",
            "slow_pairs": len(others),
            "pairs": len(others),
            "slow_samples": len(others),
            "samples": len(others),
            "spread": 0.02,
            "evidence": evidence[:64],
            "samples_Gbps": {cell: [measured] for cell in evidence[:64]},
            "errors": [{"node": node, "device": f"{dev}:1", "errors": {}, "errors_saturated": [], "errors_reset": []}],
            "action": action,
            "severity": "fail",
            "line": line,
        }
    ]


def _intra_node(model: ClusterModel) -> dict[str, Any] | None:
    if not model.intra_node:
        return None
    measurements = []
    for host in model.hosts:
        for i in range(model.gpus_per_node):
            for j in range(model.gpus_per_node):
                if i != j:
                    rate = gpu_rate(model, host, i, j)
                    measurements.append(
                        {
                            "node": host,
                            "gpu": i,
                            "peer": j,
                            "bus_id": f"0000:{0x18 + 0x10 * i:02x}:00.0",
                            "peer_bus_id": f"0000:{0x18 + 0x10 * j:02x}:00.0",
                            "collective": "sendrecv",
                            "busbw_Gbps": rate,
                            "bytes": 1 << 28,
                            "time_us": round((1 << 28) * 8 / (rate * 1e3), 3),
                            "repeat": 0,
                            "round": 0,
                        }
                    )
    defects = []
    if model.bad_gpu:
        node, gpu = model.bad_gpu
        measured = gpu_rate(model, node, gpu, (gpu + 1) % model.gpus_per_node)
        action = GPU_ACTION.format(node=node, gpu=gpu)
        bus = f"0000:{0x18 + 0x10 * gpu:02x}:00.0"
        peers = model.gpus_per_node - 1
        defects.append(
            {
                "kind": "gpu",
                "node": node,
                "gpu": gpu,
                "peer": None,
                "bus_id": bus,
                "peer_bus_id": None,
                "measured_Gbps": measured,
                "expected_Gbps": NVLINK_GBPS,
                "basis": "target",
                "symptom": "slow",
                "slow_pairs": peers,
                "pairs": peers,
                "slow_samples": 2 * peers,
                "samples": 2 * peers,
                "evidence": [
                    f"{node}/gpu{min(gpu, p)}-gpu{max(gpu, p)}" for p in range(model.gpus_per_node) if p != gpu
                ],
                "action": action,
                "line": (
                    f"{node} GPU {gpu} ({bus}): {measured:,.0f} Gb/s = {100 * measured / NVLINK_GBPS:.0f}% of target "
                    f"{NVLINK_GBPS:,.0f} Gb/s in {peers}/{peers} local pairs → gpu fault; action: {action}"
                ),
            }
        )
    return {
        "skipped": None,
        "nodes": list(model.hosts),
        "local_ranks": model.gpus_per_node,
        "bus_ids": {h: [f"0000:{0x18 + 0x10 * i:02x}:00.0" for i in range(model.gpus_per_node)] for h in model.hosts},
        "target_Gbps": NVLINK_GBPS,
        "level_Gbps": round(NVLINK_GBPS * 0.92, 6),
        "too_noisy": None,
        "process_groups": len(model.hosts),
        "measurements": measurements,
        "defects": defects,
    }


def rails_json(model: ClusterModel) -> dict[str, Any]:
    """rails.json as the rails test writes it: rail groups, the pair matrix (both directions), named parts."""
    measurements: list[dict[str, Any]] = []
    nbytes = model.pair_sizes[-1]
    for rail in range(model.rails):
        weakest = min(rail_rate(model, host, rail) for host in model.hosts) * 8
        for collective in ("all_reduce", "all_gather"):
            measurements.append(
                {
                    "kind": "rail",
                    "rail": rail,
                    "node": None,
                    "peer": None,
                    "device": None,
                    "collective": collective,
                    "mode": "concurrent",
                    "busbw_Gbps": round(weakest * 0.97, 3),
                    "expected_Gbps": 400.0,
                    "bytes": nbytes,
                    "repeat": 0,
                }
            )
    for a, b in pairs(model.hosts):
        for rail in range(model.rails):
            rate = round(_pair_rate(model, a, b, rail) * 8, 2)
            flicker = model.transient is not None and {a, b} == set(model.transient[:2]) and rail == model.transient[2]
            samples = [(rate * 0.3, 0), (rate, 1), (rate * 0.99, 2)] if flicker else [(rate, 0)]
            for value, confirm in samples:
                for node, peer in ((a, b), (b, a)):
                    measurements.append(
                        {
                            "kind": "pair",
                            "rail": rail,
                            "node": node,
                            "peer": peer,
                            "device": device(rail),
                            "collective": "sendrecv",
                            "busbw_Gbps": round(value, 3),
                            "expected_Gbps": 400.0,
                            "bytes": nbytes,
                            "repeat": 0,
                            "confirm": confirm,
                        }
                    )
    transients = []
    if model.transient:
        node, peer, rail = model.transient
        rate = round(_pair_rate(model, node, peer, rail) * 8, 2)
        transients.append(
            {
                "node": node,
                "peer": peer,
                "rail": rail,
                "samples_Gbps": [rate * 0.3],
                "confirm_Gbps": [rate, rate * 0.99],
            }
        )
    moved = counters(model, 2_000_000_000)
    rail_counters = {
        host: {
            dev: {"bytes": e["tx_bytes"] + e["rx_bytes"], "tx_bytes": e["tx_bytes"], "rx_bytes": e["rx_bytes"]}
            for dev, e in devs.items()
        }
        for host, devs in moved.items()
    }
    return {
        "skipped": None,
        "nodes": list(model.hosts),
        "rails": [
            {
                "rail": rail,
                "line_rate_Gbps": 400.0,
                "devices": {h: device(rail) for h in model.hosts},
                "expected_devices": {h: device(rail) for h in model.hosts},
                "bytes_alone": {
                    h: {f"{device(r)}:1": (250_000_000 if r == rail else 132) for r in range(model.rails)}
                    | {"eth0": 9000}
                    for h in model.hosts
                },
            }
            for rail in range(model.rails)
        ],
        "measurements": measurements,
        "defects": _defects(model),
        "transients": transients,
        "too_noisy": None,
        "counter_findings": [],
        "below_target": [],
        "counters": rail_counters,
        "error_windows": [
            {"window": name, "rails": None, "errors": {}}
            for name in ("forming the rail groups", "every rail group at once", "pair matrix", "re-measurements")
        ],
        "process_groups": model.rails + 1,
        "intra_node": _intra_node(model),
    }


def rails_doc(model: ClusterModel) -> RailsDoc:
    """:func:`rails_json` as the report reads it."""
    return RailsDoc.from_json(rails_json(model))


def checks_json(model: ClusterModel) -> dict[str, Any]:
    """checks.json as ``accept`` writes it: every node's results, and the cross-node comparisons."""
    nodes = []
    for host in model.hosts:
        results = [
            {"check": "ib-devices", "status": "pass", "reason": "9 RDMA devices: mlx5_0..mlx5_8", "device": None},
            {"check": "rail-count", "status": "pass", "reason": f"{model.rails} rails", "device": None},
            *(
                {
                    "check": "rail",
                    "status": "pass",
                    "reason": f"{device(r)}:1 ACTIVE at 400 Gb/sec (4X NDR)",
                    "device": f"{device(r)}:1",
                }
                for r in range(model.rails)
            ),
            {
                "check": "nccl-ib-hca",
                "status": "pass",
                "reason": "NCCL_IB_HCA=^=mlx5_0 excludes mlx5_0 only",
                "device": None,
            },
            {
                "check": "nccl-socket-ifname",
                "status": "skip",
                "reason": "profile lambda-1cc uses IB verbs, not sockets",
                "device": None,
            },
            {
                "check": "socket-rail",
                "status": "skip",
                "reason": "profile lambda-1cc uses IB verbs, not sockets",
                "device": None,
            },
            {
                "check": "gpu-count",
                "status": "pass",
                "reason": f"{model.gpus_per_node} x H100 80GB HBM3",
                "device": None,
            },
            {
                "check": "gpu-nic-affinity",
                "status": "pass",
                "reason": "GPU k shares a PCIe switch with mlx5_(k+1)",
                "device": None,
            },
            {"check": "rail-firmware", "status": "pass", "reason": "28.39.1002 on every rail", "device": None},
            {
                "check": "link-flaps",
                "status": "skip",
                "reason": "kernel log not read: journalctl -k holds no kernel messages",
                "device": None,
            },
            {"check": "nccl-log", "status": "skip", "reason": "no --nccl-log given", "device": None},
        ]
        if model.failed_check and model.failed_check[0] == host:
            _, check, reason = model.failed_check
            results = [
                dict(r, status="fail", reason=reason) if r["check"] == check and r["status"] == "pass" else r
                for r in results
            ]
        verdict = "fail" if any(r["status"] == "fail" for r in results) else "pass"
        nodes.append(
            {
                "node": host,
                "verdict": verdict,
                "versions": {
                    "railbench": "0.1.0",
                    "torch": "2.5.1",
                    "nccl": "2.23.4",
                    "driver": "550.127.05",
                    "firmware": "28.39.1002",
                },
                "results": results,
            }
        )
    cross = [
        {"check": "same-answers", "status": "pass", "reason": f"{len(model.hosts)} nodes answer alike", "device": None},
        {"check": "same-versions", "status": "pass", "reason": "every node runs the same versions", "device": None},
    ]
    verdict = "fail" if model.failed_check else "pass"
    return {
        "profile": "lambda-1cc",
        "nranks": len(model.hosts) * model.gpus_per_node,
        "verdict": verdict,
        "nodes": nodes,
        "cross_node": cross,
    }


def _accept_block(model: ClusterModel) -> dict[str, Any]:
    """run.json's ``accept``: each node's, rail's and collective's verdict with the reasons accept gives."""
    defect_lines = {d["node"]: d["line"] for d in _defects(model)}
    intra = _intra_node(model) or {"defects": []}
    gpu_lines = {d["node"]: d["line"] for d in intra["defects"]}
    nodes = {}
    for host in model.hosts:
        reasons = []
        if model.failed_check and model.failed_check[0] == host:
            reasons.append(f"{model.failed_check[1]}: {model.failed_check[2]}")
        reasons += [line for line in (defect_lines.get(host), gpu_lines.get(host)) if line]
        nodes[host] = {"verdict": "fail" if reasons else "pass", "reason": "; ".join(reasons)}
    rails = {}
    for rail in range(model.rails):
        line = next((d["line"] for d in _defects(model) if d["rail"] == rail), "")
        rails[f"rail{rail}"] = {"verdict": "fail" if line else "pass", "reason": line}
    collectives = {c: {"verdict": "pass", "reason": ""} for c in (*model.collectives, "counters")}
    checks = {h: ("fail" if model.failed_check and model.failed_check[0] == h else "pass") for h in model.hosts}
    return {
        "verdict": "fail" if model.failed else "pass",
        "nodes": nodes,
        "rails": rails,
        "collectives": collectives,
        "checks": checks | {"cluster": "pass"},
    }


STARTED_UTC = "2026-11-20T22:43:10Z"
PLAN_SHARE = 0.35
"""Where in each phase's planned range the synthetic run's time falls (from the low figure towards the high)."""


def planned_run(model: ClusterModel) -> tuple[dict[str, Any], str]:
    """run.json's ``plan`` of the synthetic accept run and its ``finished_utc``: the planner's own plan for the
    model's shape and settings, each phase measured ``PLAN_SHARE`` of the way through its range, so that the
    certificate's duration is one the plan projects (it was a made-up 18 min 34 s at any size)."""
    config = rails_config(
        profile="lambda-1cc",
        iters=20,
        warmup=5,
        rail_bytes=model.pair_sizes[-1],
        pair_bytes=model.pair_sizes[-1],
        intra_node=model.intra_node,
    )
    settings = resolve(config, load_profile("lambda-1cc"))
    assert settings.plan_model is not None
    sweep = Sweep(sizes(model), model.collectives, 20, 5, False, model.max_bytes)
    planned = build(
        len(model.hosts),
        model.gpus_per_node,
        settings,
        settings.plan_model,
        intra=model.intra_node,
        sweep=sweep,
        check_window_s=3.0,
    )
    took = {
        p.name.split(" (")[0]: p.seconds.low + PLAN_SHARE * (p.seconds.high - p.seconds.low) for p in planned.phases
    }
    finish = took.pop("finish")
    started = datetime.strptime(STARTED_UTC, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    finished = started + timedelta(seconds=sum(took.values()) + finish)
    return dict(compared(planned, took)), finished.strftime("%Y-%m-%dT%H:%M:%SZ")


def run_json(model: ClusterModel, command: str = "accept") -> dict[str, Any]:
    nnodes = len(model.hosts)
    plan, finished_utc = planned_run(model)
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
        "started_utc": STARTED_UTC,
        "finished_utc": finished_utc,
        "plan": plan,
        "status": "complete",
        "verdict": "fail" if model.failed else "pass",
        "exit_status": 1 if model.failed else 0,
        "hosts": list(model.hosts),
        "nnodes": nnodes,
        "nranks": nnodes * model.gpus_per_node,
        "ranks": ranks,
        "launcher": "openmpi",
        "backend": "nccl",
        "versions": {"torch": "2.5.1", "nccl": "2.23.4", "cuda": "12.4", "driver": "550.127.05", "python": "3.11"},
        "env": {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "eth0"},
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
        "counters": counters(model),
        "findings": [],
        "reasons": [],
        "accept": _accept_block(model),
        "rails_test": {
            "collectives": ["all_reduce", "all_gather"],
            "rail_bytes": model.pair_sizes[-1],
            "pair_bytes": model.pair_sizes[-1],
            "iters": 20,
            "warmup": 5,
            "repeats": 1,
            "intra_node": model.intra_node,
            "pass_fraction": 0.9,
            "relative_fraction": 0.35,
            "confirm": 2,
            "oob_ifname": None,
        },
    }
    run.update(model.extra_run)
    return run


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
