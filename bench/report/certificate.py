"""The acceptance report's sections as plain data: what an operator hands over.

Pure functions over a run's inputs (``RunInputs``) and compare.json; ``bench.report.page`` lays them out.
Each function returns None (or an empty table) when its data is absent, so a section appears only when
there is something to show.

* ``checks_grid``: preflight checks as a node x check grid, read from checks.json as ``check`` and
  ``accept`` write it (``nodes``: one entry per node with its ``results``), or the older flat ``checks``;
* ``traffic_proof``: bytes per device per node from run.json's ``counters``, excluded devices and the
  management interface marked, and one sentence per excluded device ("mlx5_0 carried 0 B on all 16 nodes");
* ``sweep_rows``: the per-size table of the world sweep (time, algbw, busbw, fastest/slowest rank, #wrong);
* ``compare_rows``: the regressed/missing/failed/improved metrics of compare.json, with what changed;
* ``environment``: versions per node with the odd ones marked, and the NCCL variables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.exits import UserError
from bench.jsondoc import table
from bench.report.inputs import RunInputs
from bench.units import format_size

CHECK_STATUSES = ("pass", "warn", "fail", "skip")
VERSION_KEYS = ("railbench", "python", "torch", "nccl", "cuda", "driver", "firmware", "kernel")


def plural(count: int, word: str) -> str:
    """``1 node``, ``2 nodes``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def human_bytes(count: float) -> str:
    """``0 B``, ``512 B``, ``12.3 MB`` (decimal units, as byte counters are read)."""
    if count < 1000:
        return f"{count:.0f} B"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"  # unreachable: count >= 1000 matched kB


@dataclass(frozen=True)
class Grid:
    """A node x item grid of short status words, with the reason behind every non-pass cell."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    """(node, one status per column: pass/warn/fail/skip or "" where the node has no such check)."""
    reasons: Mapping[tuple[str, str], str]
    """(node, column) -> reason, for hover titles and the footnotes."""


def checks_grid(checks: Mapping[str, Any] | None) -> Grid | None:
    """The preflight grid, or None when the run has no checks.json."""
    if not checks:
        return None
    per_node: dict[str, dict[str, tuple[str, str]]] = {}

    def put(node: str, result: Mapping[str, Any]) -> None:
        check = str(result.get("check") or result.get("name") or "?")
        per_node.setdefault(node, {})[check] = (str(result.get("status", "")), str(result.get("reason", "")))

    nodes = checks.get("nodes")
    if isinstance(nodes, list):
        for node in nodes:
            if not isinstance(node, Mapping):
                continue
            name = str(node.get("node") or "?")
            for result in node.get("results") or []:
                if isinstance(result, Mapping):
                    check = str(result.get("check") or result.get("name") or "?")
                    per_node.setdefault(name, {})[check] = (
                        str(result.get("status", "")),
                        str(result.get("reason", "")),
                    )
        for result in checks.get("cross_node") or []:
            if isinstance(result, Mapping):
                check = str(result.get("check") or "?")
                per_node.setdefault("all nodes", {})[check] = (
                    str(result.get("status", "")),
                    str(result.get("reason", "")),
                )
    flat = checks.get("checks")
    if isinstance(flat, list):  # a single node's flat list (older layout)
        for result in flat:
            if isinstance(result, Mapping):
                check = str(result.get("check") or result.get("name") or "?")
                per_node.setdefault("this node", {})[check] = (
                    str(result.get("status", "")),
                    str(result.get("reason", "")),
                )
    if not per_node:
        return None
    columns = tuple(dict.fromkeys(check for found in per_node.values() for check in found))
    rows = tuple((node, tuple(found.get(c, ("", ""))[0] for c in columns)) for node, found in per_node.items())
    reasons = {(node, c): why for node, found in per_node.items() for c, (status, why) in found.items() if why}
    return Grid(columns, rows, reasons)


@dataclass(frozen=True)
class TrafficProof:
    """Bytes per device per node (tx + rx), which devices had to stay idle, and what the counters prove."""

    devices: tuple[str, ...]
    nodes: tuple[str, ...]
    bytes: Mapping[tuple[str, str], int]
    """(node, device) -> tx + rx bytes over the benchmark."""
    idle: frozenset[str]
    """Devices that must carry no benchmark traffic: the profile's excluded HCAs and interfaces, management."""
    sentences: tuple[str, ...]
    ok: bool


def _profile_idle_devices(profile: str | None) -> tuple[frozenset[str], int]:
    if not profile:
        return frozenset(), 0
    from bench.profiles import load_profile

    try:
        loaded = load_profile(profile)
    except UserError:
        return frozenset(), 0
    idle = set(loaded.excluded_devices) | set(loaded.excluded_ifnames)
    if loaded.oob_ifname and loaded.oob_ifname != "lo":
        idle.add(loaded.oob_ifname)
    return frozenset(idle), int(loaded.counter_tolerance_bytes or 0)


def traffic_proof(run: Mapping[str, Any]) -> TrafficProof | None:
    """The counters of run.json as proof of where the traffic went, or None when none were recorded."""
    counters = run.get("counters")
    if not isinstance(counters, Mapping) or not counters:
        return None
    moved: dict[tuple[str, str], int] = {}
    for node, devices in counters.items():
        if not isinstance(devices, Mapping):
            continue
        for device, entry in devices.items():
            if isinstance(entry, Mapping):
                total = int(entry.get("tx_bytes") or 0) + int(entry.get("rx_bytes") or 0)
                moved[(str(node), str(device))] = total
    if not moved:
        return None
    nodes = tuple(dict.fromkeys(node for node, _ in moved))
    idle, tolerance = _profile_idle_devices(run.get("profile"))
    devices = tuple(sorted({d for _, d in moved}, key=lambda d: (d not in idle, d)))
    sentences, ok = [], True
    for device in (d for d in devices if d in idle):
        seen = {node: moved[(node, device)] for node in nodes if (node, device) in moved}
        busiest = max(seen.values())
        where = f"all {plural(len(seen), 'node')}" if len(seen) > 1 else f"{next(iter(seen))}"
        if busiest == 0:
            sentences.append(f"{device} carried 0 B on {where}.")
        elif busiest <= tolerance:
            sentences.append(
                f"{device} carried at most {human_bytes(busiest)} on {where}, within the "
                f"{human_bytes(tolerance)} tolerance (background traffic)."
            )
        else:
            ok = False
            loud = [n for n, b in seen.items() if b > tolerance]
            sentences.append(f"{device} carried {human_bytes(busiest)} on {', '.join(loud)}: it must stay idle.")
    if not idle:
        sentences.append("The profile names no device that must stay idle: the counters show where the bytes went.")
    return TrafficProof(devices, nodes, moved, idle, tuple(sentences), ok)


SWEEP_HEADERS = (
    "collective",
    "size",
    "placement",
    "time (us)",
    "algbw GB/s",
    "busbw GB/s",
    "fastest rank (us)",
    "slowest rank (us)",
    "#wrong",
)


def _num(value: object, spec: str) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else format(number, spec)


def sweep_rows(results: pd.DataFrame) -> tuple[tuple[str, ...], ...]:
    """One line per (collective, size, placement) of the world sweep, zero-byte rows included."""
    world = results[results["scope"] == "world"]
    if world.empty:
        return ()
    agg = world.groupby(["collective", "bytes", "placement"], as_index=False, sort=True).agg(
        time_us=("time_us", "mean"),
        algbw_GBps=("algbw_GBps", "mean"),
        busbw_GBps=("busbw_GBps", "mean"),
        time_us_min=("time_us_min", "min"),
        time_us_max=("time_us_max", "max"),
        wrong=("wrong", "sum"),
    )
    return tuple(
        (
            str(r.collective),
            format_size(int(r.bytes)),
            str(r.placement or "—"),
            _num(r.time_us, ",.1f"),
            _num(r.algbw_GBps, ",.2f"),
            _num(r.busbw_GBps, ",.2f"),
            _num(r.time_us_min, ",.1f"),
            _num(r.time_us_max, ",.1f"),
            _num(r.wrong, ".0f"),
        )
        for r in agg.itertuples()
    )


COMPARE_HEADERS = ("metric", "state", "tonight GB/s", "baseline GB/s", "change", "what changed since the baseline")


def compare_rows(compare: Mapping[str, Any] | None) -> tuple[tuple[str, ...], ...]:
    """The metrics compare flagged (regressed, missing, failed, then improved)."""
    if not compare:
        return ()
    order = {"regressed": 0, "missing": 1, "failed": 2, "improved": 3}
    flagged = [m for m in compare.get("metrics") or [] if isinstance(m, Mapping) and m.get("state") in order]
    flagged.sort(key=lambda m: (order[str(m.get("state"))], str(m.get("metric"))))
    return tuple(
        (
            str(m.get("metric")),
            str(m.get("state")),
            _num(m.get("busbw_GBps"), ",.2f"),
            _num(m.get("baseline_GBps"), ",.2f"),
            _num(m.get("change"), "+.1%"),
            ", ".join(str(c) for c in m.get("changes") or []) or "—",
        )
        for m in flagged
    )


@dataclass(frozen=True)
class Environment:
    """Versions per node (odd values marked) and the NCCL variables of the run."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    odd: frozenset[tuple[str, str]]
    """(node, version key) whose value differs from most nodes."""
    variables: tuple[tuple[str, str], ...]


def environment(inputs: RunInputs) -> Environment | None:
    """Per-node versions from checks.json (else run.json's, for rank 0's node) and the NCCL_* variables."""
    per_node: dict[str, Mapping[str, Any]] = {}
    for node in (inputs.checks or {}).get("nodes") or []:
        if isinstance(node, Mapping) and isinstance(node.get("versions"), Mapping):
            per_node[str(node.get("node"))] = node["versions"]
    versions = inputs.run.get("versions")
    if not per_node and isinstance(versions, Mapping):
        hosts = inputs.run.get("hosts") or []
        per_node["rank 0" if len(hosts) != 1 else str(hosts[0])] = versions
    env = table(inputs.run, "env")
    variables = tuple((str(k), str(v)) for k, v in sorted(env.items()) if str(k).startswith("NCCL_"))
    if not per_node and not variables:
        return None
    keys = [k for k in VERSION_KEYS if any(v.get(k) for v in per_node.values())]
    odd: set[tuple[str, str]] = set()
    for key in keys:
        counts = Counter(str(v.get(key) or "") for v in per_node.values())
        if len(counts) > 1:
            usual = counts.most_common(1)[0][0]
            odd |= {(node, key) for node, v in per_node.items() if str(v.get(key) or "") != usual}
    rows = tuple((node, *(str(v.get(k) or "—") for k in keys)) for node, v in per_node.items())
    return Environment(("node", *keys), rows, frozenset(odd), variables)


def versions_sentence(env: Environment) -> str:
    """``Versions agree on all 16 nodes.`` or which nodes are odd."""
    if not env.odd:
        return f"Versions agree on {'all ' if len(env.rows) > 1 else ''}{plural(len(env.rows), 'node')}."
    odd_nodes = sorted({node for node, _ in env.odd})
    keys = sorted({key for _, key in env.odd})
    return f"Odd nodes: {', '.join(odd_nodes)} ({', '.join(keys)} differ from the other nodes)."


def facts(run: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The run's identity in a few lines, with nothing shown as None."""

    def text(value: object) -> str | None:
        return None if value in (None, "", [], {}) else str(value)

    nnodes, nranks = run.get("nnodes"), run.get("nranks")
    placement = ", ".join(
        p
        for p in (
            plural(nnodes, "node") if isinstance(nnodes, int) and nnodes else "",
            plural(nranks, "rank") if isinstance(nranks, int) and nranks else "",
        )
        if p
    )
    versions = table(run, "versions")
    lines: list[tuple[str, str | None]] = [
        ("cluster", text(run.get("cluster"))),
        ("command", text(run.get("command"))),
        ("profile", text(run.get("profile"))),
        ("status", text(run.get("status"))),
        ("started (UTC)", text(run.get("started_utc"))),
        ("finished (UTC)", text(run.get("finished_utc"))),
        ("placement", placement or None),
        ("launcher", text(run.get("launcher"))),
        ("backend", text(run.get("backend"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v) or None),
        ("NCCL_IB_HCA", str((run.get("env") or {}).get("NCCL_IB_HCA", "(unset)"))),
    ]
    return tuple((k, v) for k, v in lines if v is not None)
