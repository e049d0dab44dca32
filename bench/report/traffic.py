"""The traffic proof: which devices carried the run's bytes, read from the NICs' own byte counters.

One table per counter window, one row per device that matters: each rail's NIC, the management interface,
and every device the profile says must stay idle (mlx5_0 on a 1CC); every other device of the node
(loopback, container bridges, veths, bonds: 25 on some GPU nodes) is summed into one row. Bytes are summed
over the nodes, with the least and the most one node carried beside them, tx and rx apart where the
window recorded them apart:

* the world sweep (run.json ``counters``, tx and rx);
* the rails test (rails.json ``counters``: from forming the rail groups to the end of the pair matrix);
* each rail alone (rails.json ``rails[].bytes_alone``): a row per rail, its own NIC against the others.

The counters are the hardware's: they count every process on the host, not only railbench's ranks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bench.bounded import ascii_digits
from bench.profile.cluster import Profile
from bench.report.certificate import human_bytes, node_list, plural
from bench.rundir.judged_by import JudgedBy
from bench.rundir.railsdoc import Counters, RailsDoc
from bench.rundir.runjson import RunDoc

OTHER = "other"
IDLE = "must stay idle"
MANAGEMENT = "management"


@dataclass(frozen=True)
class DeviceRow:
    """One device (or the other devices summed) over one window, every node together."""

    device: str
    role: str
    """``rail 3``, ``management``, ``must stay idle`` or ``other``."""
    tx: int | None
    """Summed over the nodes; None when the window counted tx and rx together."""
    rx: int | None
    total: int
    least: tuple[str, int]
    """The node that carried the least, and how much."""
    most: tuple[str, int]
    nodes: int
    names: tuple[str, ...] = ()
    """The devices an ``other`` row sums."""


@dataclass(frozen=True)
class Window:
    """One counter window: its rows, and whether tx and rx were counted apart."""

    name: str
    source: str
    rows: tuple[DeviceRow, ...]
    split: bool


@dataclass(frozen=True)
class RailAlone:
    """Rail k measured by itself: the bytes on its own NIC against everything else on the nodes."""

    rail: int
    devices: str
    own: int
    own_least: tuple[str, int]
    other_rails: int
    idle: int
    rest: int


@dataclass(frozen=True)
class TrafficProof:
    windows: tuple[Window, ...]
    alone: tuple[RailAlone, ...]
    sentences: tuple[str, ...]
    ok: bool
    """False when a device that must stay idle carried more than the profile's tolerance."""


def _matches(device: str, name: str) -> bool:
    """``mlx5_0:1`` is port 1 of ``mlx5_0``: a name without a port covers every port of the HCA."""
    return device == name or device.startswith(name + ":")


@dataclass(frozen=True)
class Roles:
    """What each device is for, from rails.json (which NIC carried each rail) and the profile."""

    rails: Mapping[str, int]
    """Device name (as rails.json and the profile name it) -> rail."""
    idle: tuple[str, ...]
    management: tuple[str, ...]
    rail_kind_ib: bool
    """Without rails.json: every IB port that is not excluded carries a rail."""

    def of(self, device: str, kind: str | None) -> str:
        if any(_matches(device, name) for name in self.idle):
            return IDLE
        for name, rail in self.rails.items():
            if _matches(device, name):
                return f"rail {rail}"
        if any(_matches(device, name) for name in self.management):
            return MANAGEMENT
        if self.rail_kind_ib and kind == "ib":
            return "rail"
        return OTHER


def roles(run: RunDoc, rails: RailsDoc | None, profile: Profile | None, judged: JudgedBy | None = None) -> Roles:
    """Who is who: rails from rails.json's devices (else the profile's rail names), the profile's excluded
    devices, and the management interface (the profile's, the rails test's --oob-ifname, or on an IB
    cluster the NCCL_SOCKET_IFNAME it bootstraps over)."""
    by_name: dict[str, int] = {}
    for entry in rails.rails if rails is not None else ():
        for devices in (entry.devices, entry.expected_devices):
            for name in devices.values():
                if name:
                    by_name.setdefault(name, entry.rail)
    if not by_name and profile is not None:
        by_name = {name: k for k, name in enumerate(profile.rail_names)}
    idle = tuple(profile.excluded_devices) if profile is not None else ()
    management: list[str] = []
    if profile is not None and profile.oob_ifname and profile.oob_ifname != "lo":
        management.append(profile.oob_ifname)
    if judged is not None:  # as the run itself was judged, whatever the profile says today
        idle = tuple(d for d in judged.idle_devices if d not in management)
    oob = run.rails_test.oob_ifname if run.rails_test else None
    if oob and oob != "lo":
        management.append(oob)
    bootstrap = run.env_var("NCCL_SOCKET_IFNAME")
    ib = profile is None or profile.uses_ib_verbs
    if ib and bootstrap and not bootstrap.startswith("^"):
        management += [name.lstrip("=") for name in bootstrap.split(",") if name.lstrip("=")]
    return Roles(by_name, idle, tuple(dict.fromkeys(management)), not by_name and ib)


def _role_order(role: str) -> tuple[int, int, str]:
    if role.startswith("rail"):
        number = role.removeprefix("rail").strip()
        return (0, int(number) if ascii_digits(number) and len(number) <= 6 else -1, role)
    return ({MANAGEMENT: 1, IDLE: 2, OTHER: 3}.get(role, 3), 0, role)


def _window(name: str, source: str, counters: Counters, who: Roles, nodes: Sequence[str]) -> Window | None:
    """Rows of one window: ``counters`` is node -> device -> tx and rx bytes, or bytes both ways."""
    per: dict[tuple[str, str], dict[str, list[int]]] = {}  # (role, device) -> node -> [tx, rx, total]
    split = True
    for node, devices in counters.items():
        for device, entry in devices.items():
            tx, rx = entry.tx_bytes, entry.rx_bytes
            if tx is not None and rx is not None:
                total = tx + rx
            else:
                split, tx, rx = False, 0, 0
                total = entry.bytes or 0
            role = who.of(device, entry.kind)
            key = (role, OTHER if role == OTHER else device)
            sums = per.setdefault(key, {}).setdefault(node, [0, 0, 0])
            sums[0], sums[1], sums[2] = sums[0] + tx, sums[1] + rx, sums[2] + total
    if not per:
        return None
    others = sorted({d for devs in counters.values() for d in devs} - {device for role, device in per if role != OTHER})
    rows = []
    for (role, device), by_node in sorted(per.items(), key=lambda kv: (_role_order(kv[0][0]), kv[0][1])):
        ordered = sorted(by_node.items(), key=lambda kv: (kv[1][2], nodes.index(kv[0]) if kv[0] in nodes else 0))
        label = device if role != OTHER else f"other devices (up to {_most_per_node(counters, who)} a node)"
        rows.append(
            DeviceRow(
                label,
                role,
                sum(v[0] for v in by_node.values()) if split else None,
                sum(v[1] for v in by_node.values()) if split else None,
                sum(v[2] for v in by_node.values()),
                (ordered[0][0], ordered[0][1][2]),
                (ordered[-1][0], ordered[-1][1][2]),
                len(by_node),
                tuple(others) if role == OTHER else (),
            )
        )
    return Window(name, source, tuple(rows), split)


def _most_per_node(counters: Counters, who: Roles) -> int:
    """The most devices one node has beside its rails, management and idle devices."""
    return max((sum(1 for d in devices if who.of(d, None) == OTHER) for devices in counters.values()), default=0)


def _alone(rails: RailsDoc | None, who: Roles) -> tuple[RailAlone, ...]:
    out = []
    for entry in rails.rails if rails is not None else ():
        if not entry.bytes_alone:
            continue
        rail = entry.rail
        own_per_node: dict[str, int] = {}
        other_rails = idle = rest = 0
        for node, devices in entry.bytes_alone.items():
            for device, count in devices.items():
                role = who.of(device, None)
                if role == f"rail {rail}":
                    own_per_node[node] = own_per_node.get(node, 0) + count
                elif role.startswith("rail"):
                    other_rails += count
                elif role == IDLE:
                    idle += count
                else:
                    rest += count
        names = sorted({str(d) for d in entry.devices.values()})
        least = min(own_per_node.items(), key=lambda kv: kv[1]) if own_per_node else ("", 0)
        out.append(RailAlone(rail, ", ".join(names), sum(own_per_node.values()), least, other_rails, idle, rest))
    return tuple(out)


def _idle_sentences(windows: Iterable[Window], tolerance: int) -> tuple[list[str], bool]:
    sentences, ok = [], True
    for window in windows:
        for row in (r for r in window.rows if r.role == IDLE):
            where = f"all {plural(row.nodes, 'node')}" if row.nodes > 1 else row.least[0]
            busiest_node, busiest = row.most
            during = f"during the {window.name}"
            if busiest == 0:
                sentences.append(f"{row.device} carried 0 B on {where} {during}.")
            elif busiest <= tolerance:
                sentences.append(
                    f"{row.device} carried at most {human_bytes(busiest)} on {where} {during}, within the "
                    f"{human_bytes(tolerance)} tolerance (background traffic)."
                )
            else:
                ok = False
                sentences.append(
                    f"{row.device} carried {human_bytes(busiest)} on {busiest_node} {during}: it must stay idle."
                )
    return sentences, ok


def traffic_proof(
    run: RunDoc, rails: RailsDoc | None, profile: Profile | None, judged: JudgedBy | None = None
) -> TrafficProof | None:
    """The counters of run.json and rails.json as proof of where the traffic went, or None without any; the idle
    devices and their tolerance are those the run was judged by (run.json ``judged_by``) where it says."""
    who = roles(run, rails, profile, judged)
    hosts = list(run.hosts)
    windows = []
    if run.counters:
        windows.append(_window("world sweep", "run.json counters", run.counters, who, hosts))
    if rails is not None and rails.counters:
        windows.append(_window("rails test", "rails.json counters", rails.counters, who, hosts))
    kept = tuple(w for w in windows if w is not None)
    alone = _alone(rails, who)
    if not kept and not alone:
        return None
    tolerance = int(profile.counter_tolerance_bytes or 0) if profile is not None else 0
    if judged is not None:
        tolerance = judged.counter_tolerance_bytes
    sentences, ok = _idle_sentences(kept, tolerance)
    if not who.idle:
        sentences.append("The profile names no device that must stay idle: the counters show where the bytes went.")
    quiet = [
        f"{r.device} carried nothing on {node_list([r.least[0]])} during the {w.name}"
        for w in kept
        for r in w.rows
        if r.role.startswith("rail") and r.least[1] == 0 and r.total > 0
    ]
    if quiet:
        sentences.append("; ".join(quiet) + ", while its rail carried bytes elsewhere.")
    for finding in run.findings or ():
        if finding.message:
            sentences.append(f"{finding.severity.upper()}: {finding.message}".lstrip(": "))
    sentences.append("The counters are the NICs' own: they count every process on the host, not only railbench.")
    return TrafficProof(kept, alone, tuple(sentences), ok)
