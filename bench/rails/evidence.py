"""Counter evidence for the rails test: which device carried each rail, and that nothing else did.

While rail k runs alone, one rank per node reads the node's byte counters before and after. The device that
moved the most bytes carried rail k there. Three things must then hold on every node:

* each rail went over its own device (the interface ``--socket-ifname`` gave local rank k, when known);
* no two rails shared a device (on GPUs: NCCL picked a different NIC for every GPU);
* the management interface and the profile's excluded devices (``mlx5_0`` on a 1CC) carried at most the
  counter tolerance.

Pure functions over the gathered deltas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.nccllogs.nccl_evidence import device_matches
from bench.rails.localise import Defect
from bench.rails.records import RailDevices, short_device
from bench.units import format_size

_REMOTE = re.compile(r"remote=\[([0-9a-fA-F.:]+)\]")


def attribute(
    rail: int,
    moved: Mapping[str, Mapping[str, int]],
    min_bytes: int,
    expected: Mapping[str, str | None] | None = None,
) -> RailDevices:
    """Rail ``rail``'s device on each node: the one that moved the most bytes, if at least ``min_bytes``."""
    device: dict[str, str | None] = {}
    for node, per_device in moved.items():
        busiest = max(per_device.items(), key=lambda item: item[1], default=(None, 0))
        device[node] = busiest[0] if busiest[1] >= min_bytes else None
    return RailDevices(rail, device, {n: dict(d) for n, d in moved.items()}, dict(expected or {}))


def _same_device(a: str, b: str) -> bool:
    return short_device(a) == short_device(b)


def findings(devices: Sequence[RailDevices], quiet: Iterable[str], tolerance_bytes: int, min_bytes: int) -> list[str]:
    """Everything the counters contradict, one line each (empty: the counters prove the layout).

    ``quiet`` names the management interface and the excluded devices (``mlx5_0``, ``mlx5_0:1``, ``eth0``).
    """
    quiet = tuple(q for q in quiet if q)
    out: list[str] = []
    used: dict[tuple[str, str], list[int]] = {}
    for rd in devices:
        for node, dev in rd.device.items():
            want = rd.expected.get(node)
            if dev is None:
                out.append(f"{node} rail {rd.rail}: no device moved {format_size(min_bytes)}B while the rail ran alone")
                continue
            if device_matches(dev, quiet):
                out.append(f"{node} rail {rd.rail}: its bytes went over {dev}, which must stay quiet")
            elif want is not None and not _same_device(dev, want):
                out.append(f"{node} rail {rd.rail}: its bytes went over {dev}, not its own interface {want}")
            used.setdefault((node, short_device(dev) or dev), []).append(rd.rail)
        for node, per_device in rd.moved.items():
            for name, nbytes in per_device.items():
                if device_matches(name, quiet) and nbytes > tolerance_bytes and name != rd.device.get(node):
                    out.append(
                        f"{node} {name} carried {format_size(nbytes)}B while rail {rd.rail} ran alone "
                        f"(tolerance {format_size(tolerance_bytes)}B)"
                    )
    for (node, dev), rails in sorted(used.items()):
        if len(rails) > 1:
            out.append(f"{node}: rails {', '.join(map(str, rails))} all went over {dev}")
    return out


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


def dead_links(reports: Sequence[GroupFailure], nodes: Sequence[str], line_rate: float | None) -> list[Defect]:
    """Name the dead part of every rail whose group could not form.

    A member whose own connect attempts fail with "Network is unreachable" has no working link on that rail.
    A member that others failed to reach, named by every member whose error names an address at all, is
    dead too. A member that only timed out waiting names nobody. When no node stands out, the rail as a
    whole is reported dead.
    """
    out: list[Defect] = []
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
        expected = line_rate or 0.0
        basis: Literal["line rate", "peers"] = "line rate" if line_rate else "peers"
        if not dead:
            out.append(
                Defect(
                    "rail",
                    None,
                    rail,
                    None,
                    0.0,
                    expected,
                    basis,
                    "dead",
                    len(evidence),
                    len(members),
                    0,
                    0,
                    0.0,
                    evidence,
                )
            )
        for node in (n for n in nodes if n in dead):
            ifname = next((r.ifname for r in members if r.node == node), None)
            out.append(
                Defect(
                    "link",
                    node,
                    rail,
                    ifname,
                    0.0,
                    expected,
                    basis,
                    "dead",
                    len(nodes) - 1,
                    len(nodes) - 1,
                    0,
                    0,
                    0.0,
                    evidence,
                )
            )
    return out
