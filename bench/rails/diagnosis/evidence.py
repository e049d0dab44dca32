"""Counter evidence for the rails test: which device carried each rail, and that nothing else did.

While rail k runs alone, one rank per node reads the node's byte counters before and after. The devices that
moved at least the rail's share of bytes carried rail k there. Then, on every node:

* each rail went over its own NIC, and only that one: the interface ``--socket-ifname`` gave local rank k, or on
  IB the NIC nearest GPU k (``bench.fabric.rail_nics``), next to it; otherwise a ``path`` defect, and a rail
  whose own NIC port is down is that rail's dead link (:func:`path_defects`);
* no two rails shared a device (on GPUs: NCCL picked a different NIC for every GPU);
* the management interface and the profile's excluded devices (``mlx5_0`` on a 1CC) carried at most the
  counter tolerance.

The error counters' windows as rank 0 receives them from the nodes (``NodeWindow``, read by
``bench.rails.measurement.windows.NodeCounters``) are joined here too (:func:`join`).

Pure functions over the gathered deltas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench.fabric.rail_nics import NEAR
from bench.nccllogs.nccl_evidence import device_matches
from bench.rails.diagnosis.rails_outcome import ExpectedNic, RailDevices, short_device
from bench.rundir.findings import CounterFinding
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import Conviction, ErrorWindow, counters_from_json
from bench.units import format_size

DeviceEntries = dict[str, dict[str, Any]]
"""device -> ``error_counters.entry_json`` (``errors``, ``errors_saturated``, ``errors_reset``)."""


@dataclass(frozen=True)
class NodeWindow:
    """One node's window: its name, the rails whose traffic ran in it, and the devices that said something."""

    name: str
    rails: tuple[int, ...] | None
    """None: every rail (the rail groups at once, the pair matrix)."""
    errors: DeviceEntries


def join(per_node: Mapping[str, Sequence[NodeWindow]]) -> tuple[ErrorWindow, ...]:
    """The nodes' windows, window by window (every reader closes the same windows in the same order)."""
    lists = [windows for windows in per_node.values() if windows]
    if not lists:
        return ()
    out = []
    for index, first in enumerate(lists[0]):
        errors = {
            node: dict(windows[index].errors)
            for node, windows in per_node.items()
            if len(windows) > index and windows[index].errors
        }
        out.append(ErrorWindow(window=first.name, rails=first.rails, errors=counters_from_json(errors)))
    return tuple(out)


_REMOTE = re.compile(r"remote=\[([0-9a-fA-F.:]+)\]")


def attribute(
    rail: int,
    moved: Mapping[str, Mapping[str, int]],
    min_bytes: int,
    expected: Mapping[str, ExpectedNic] | None = None,
) -> RailDevices:
    """Rail ``rail``'s devices on each node: the busiest (if it moved at least ``min_bytes``), every device
    that moved that much, and what the node's rank of the rail expected."""
    device: dict[str, str | None] = {}
    carried: dict[str, tuple[str, ...]] = {}
    for node, per_device in moved.items():
        busy = sorted(((n, b) for n, b in per_device.items() if b >= min_bytes), key=lambda item: -item[1])
        device[node] = busy[0][0] if busy else None
        carried[node] = tuple(name for name, _ in busy)
    nics = dict(expected or {})
    return RailDevices(
        rail,
        device,
        {n: dict(d) for n, d in moved.items()},
        {node: nic.device for node, nic in nics.items()},
        carried,
        nics,
    )


def _same_device(a: str, b: str) -> bool:
    return short_device(a) == short_device(b)


def findings(
    devices: Sequence[RailDevices], quiet: Iterable[str], tolerance_bytes: int, min_bytes: int
) -> list[CounterFinding]:
    """Everything the counters contradict besides a rail's own path, one each with its node and rails (empty: the
    counters prove the layout); a rail on the wrong NIC is a ``path`` defect (:func:`path_defects`).

    ``quiet`` names the management interface and the excluded devices (``mlx5_0``, ``mlx5_0:1``, ``eth0``).
    """
    quiet = tuple(q for q in quiet if q)
    out: list[CounterFinding] = []
    used: dict[tuple[str, str], list[int]] = {}
    for rd in devices:
        on = (rd.rail,)
        for node, dev in rd.device.items():
            if dev is None:
                said = f"rail {rd.rail}: no device moved {format_size(min_bytes)}B while the rail ran alone"
                out.append(CounterFinding(node, on, said))
                continue
            if device_matches(dev, quiet):
                said = f"rail {rd.rail}: its bytes went over {dev}, which must stay quiet"
                out.append(CounterFinding(node, on, said))
            used.setdefault((node, short_device(dev) or dev), []).append(rd.rail)
        for node, per_device in rd.moved.items():
            for name, nbytes in per_device.items():
                if device_matches(name, quiet) and nbytes > tolerance_bytes and name != rd.device.get(node):
                    said = (
                        f"{name} carried {format_size(nbytes)}B while rail {rd.rail} ran alone "
                        f"(tolerance {format_size(tolerance_bytes)}B)"
                    )
                    out.append(CounterFinding(node, on, said))
    for (node, dev), rails in sorted(used.items()):
        if len(rails) > 1:
            said = f"rails {', '.join(map(str, rails))} all went over {dev}"
            out.append(CounterFinding(node, tuple(rails), said, whole_node=True))
    return out


def _words(device: str) -> str:
    hca, colon, port = device.partition(":")
    return f"{hca} port {port}" if colon else hca


def path_defects(devices: Sequence[RailDevices], quiet: Iterable[str] = ()) -> list[NamedPart]:
    """A ``path`` defect for every node and rail whose bytes did not leave through the NIC next to its GPU, and
    a dead ``link`` for every rail whose own NIC port is down (NCCL uses ACTIVE ports only, so that rail's bytes
    go elsewhere and no path is judged there; no other rail is affected: each keeps its own nearest NIC).

    A path defect: the bytes went over another NIC, over two or more NICs (their GPU shares its nearest NICs,
    or NCCL spread the rail), or over the expected NIC when that NIC is far from the GPU (a host bridge or the
    CPU interconnect between them: GPUDirect RDMA cannot run at full rate). The ``quiet`` devices (management,
    excluded) are left to :func:`findings`.
    """
    quiet = tuple(q for q in quiet if q)
    out: list[NamedPart] = []
    for rd in devices:
        for node, nic in sorted(rd.nics.items()):
            if nic.device is None:
                continue
            gpu = f"GPU {nic.gpu}" if nic.gpu else "its GPU"
            if nic.down:
                line = f"{_words(nic.device)} is {nic.state}, the NIC nearest {gpu}"
                out.append(_port_defect("link", "dead", node, rd.rail, nic.device, (), line))
                continue
            carried = tuple(c for c in rd.carried.get(node, ()) if not device_matches(c, quiet))
            if not carried:
                continue  # no device moved the rail's bytes: a counter finding, not a path
            if len(carried) > 1:
                line = (
                    f"bytes on {len(carried)} NICs ({', '.join(map(_words, carried))}), expected {_words(nic.device)}"
                )
            elif not _same_device(carried[0], nic.device):
                why = f"nearest {gpu}" if nic.gpu else "the interface it binds"
                line = f"bytes on {_words(carried[0])}, expected {_words(nic.device)} ({why})"
            elif nic.distance is not None and nic.distance not in NEAR:
                line = f"bytes on {_words(carried[0])}, {nic.distance} from {gpu}: no NIC sits next to it"
            else:
                continue
            out.append(_port_defect("path", "misrouted", node, rd.rail, nic.device, carried, line))
    return out


def _port_defect(
    kind: Literal["link", "path"],
    symptom: Literal["dead", "misrouted"],
    node: str,
    rail: int,
    expected: str,
    carried: tuple[str, ...],
    line: str,
) -> NamedPart:
    # told by the port's state or the counters, not by a rate: no pair measured it
    return NamedPart(
        expected_device=expected,
        carried=carried,
        kind=kind,
        node=node,
        rail=rail,
        device=short_device(carried[0] if carried else expected),
        conviction=Conviction.unmeasured(symptom, (line,), basis="line rate"),
    )


@dataclass(frozen=True)
class GroupFailure:
    """What one rank saw when its rail group was made."""

    node: str
    rail: int
    address: str | None
    """This rank's address on its rail interface."""
    ifname: str | None
    problem: str | None
    """The transport's error (None: the group formed)."""


def dead_links(reports: Sequence[GroupFailure], nodes: Sequence[str], line_rate: float | None) -> list[NamedPart]:
    """Name the dead part of every rail whose group could not form.

    A member whose own connect attempts fail with "Network is unreachable" has no working link on that rail.
    A member that others failed to reach, named by every member whose error names an address at all, is
    dead too. A member that only timed out waiting names nobody. When no node stands out, the rail as a
    whole is reported dead.
    """
    out: list[NamedPart] = []
    for rail in sorted({r.rail for r in reports if r.problem}):
        members = [r for r in reports if r.rail == rail]
        by_address = {r.address: r.node for r in members if r.address}
        accused: dict[str, set[str]] = {node: set() for node in nodes}
        witnesses: set[str] = set()
        dead: set[str] = set()
        for r in members:
            if r.problem and "Network is unreachable" in r.problem:
                dead.add(r.node)
            named = {by_address.get(a) for a in _REMOTE.findall(r.problem or "")} - {None, r.node}
            if named:
                witnesses.add(r.node)
            for other in named:
                accused[str(other)].add(r.node)
        for node in nodes:
            others = witnesses - {node}
            if others and accused[node] >= others:
                dead.add(node)
        evidence = tuple(f"{r.node} rail {rail}: {r.problem}" for r in members if r.problem)[:16]
        basis: Literal["line rate", "peers"] = "line rate" if line_rate else "peers"
        if not dead:
            # counted in the group's members, slow those whose transport said why it never formed
            lost = Conviction.unmeasured(
                "dead",
                evidence,
                pairs=len(members),
                slow_pairs=len(evidence),
                expected_Gbps=line_rate or 0.0,
                basis=basis,
            )
            out.append(NamedPart(kind="rail", rail=rail, conviction=lost))
        for node in (n for n in nodes if n in dead):
            ifname = next((r.ifname for r in members if r.node == node), None)
            lost = Conviction.unmeasured(
                "dead", evidence, pairs=len(nodes) - 1, expected_Gbps=line_rate or 0.0, basis=basis
            )
            out.append(NamedPart(kind="link", node=node, rail=rail, device=ifname, conviction=lost))
    return out
