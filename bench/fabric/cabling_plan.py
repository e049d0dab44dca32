"""The rail-optimised plan, read back from the cabling: leaves, spines, rails and units, and what breaks it.

A rail-optimised fat tree (the DGX SuperPOD reference) puts HCA k of every node of a scalable unit on that
unit's leaf switch for rail k; leaves reach the spines through uplinks, every leaf of a rail the same way.
Nothing here trusts a label; everything is read from the cables:

* a **leaf** is a switch with rail HCAs on it, a **spine** a switch cabled to leaves only (a switch of another
  fabric, such as storage on ``mlx5_0``, is neither);
* a leaf's **rail** is the rail most of its node ports carry (rail k = the k-th HCA of ``rail_hcas``);
* a **unit** is a set of leaves that share most of their nodes (two leaves of one unit share every node, two
  of different units at most a miswired few), and a node belongs to the unit most of its leaves are in.

Rails are inferred only where the fabric is rail-optimised, and that is read from the structure, never from
names (``rail_optimised``): most nodes that cable two or more HCAs put each on a different switch. A classic fat
tree (one HCA per host, or a host's HCAs on one switch) has no rails to keep apart: a plan of rails read from
its HCA names would call every host with one HCA "missing" the others (a real EDR fabric gave 97 such false
findings). There the cables and switch links are judged without rails: a link below its peers, a leaf with
fewer cables to a spine than the other leaves.

``check`` then names every departure from the plan, each with the node port and the switch port:

* ``missing``: a node's rail-k HCA is not cabled; the plan's place is the unit's rail-k leaf, at the port the
  node uses on the unit's other leaves when they agree;
* ``miswired``: it is cabled to a leaf of another rail or another unit;
* ``degraded``: a cable runs at a lower width or speed than the fabric's other cables of its kind;
* ``uplink``: a leaf has fewer cables to a spine than the other leaves of its rail (a tie goes to the
  fuller leaf: a fat tree cables every leaf of a rail alike).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.exits import UserError
from bench.fabric import cabling_links
from bench.fabric.cabling import MAX_RAILS, Cable, Cabling, HostPort, SwitchPort
from bench.fabric.ibnetdiscover_names import NAME_FIX
from bench.fabric.sysfs_io import natural_key

FindingKind = Literal["missing", "miswired", "degraded", "uplink", "unnamed"]


@dataclass(frozen=True)
class Leaf:
    """A leaf switch: the rail its node ports carry, its unit, its nodes and its uplinks."""

    name: str
    rail: int | None
    """None when none of its node ports carries a rail HCA."""
    unit: int
    hosts: tuple[str, ...]
    uplinks: tuple[Cable, ...]
    """Its cables to spines, leaf end first."""


@dataclass(frozen=True)
class FabricShape:
    """What the cabling says the fabric is."""

    rail_hcas: tuple[str, ...]
    leaves: Mapping[str, Leaf]
    spines: tuple[str, ...]
    units: tuple[tuple[str, ...], ...]
    """The hosts of each unit, in natural order."""
    unit_of: Mapping[str, int]
    rail_optimised: bool = True
    """False: a fabric without rails (``rail_optimised``); its cabling is judged without a rail plan."""

    def unit_name(self, unit: int) -> str:
        """``unit 2 (node33-node64)``."""
        hosts = self.units[unit]
        span = f"{hosts[0]}-{hosts[-1]}" if len(hosts) > 1 else hosts[0] if hosts else "no nodes"
        return f"unit {unit + 1} ({span})"

    def leaves_of(self, rail: int, unit: int) -> list[Leaf]:
        return [leaf for leaf in self.leaves.values() if leaf.rail == rail and leaf.unit == unit]


@dataclass(frozen=True)
class CablingFinding:
    """One departure from the plan."""

    kind: FindingKind
    line: str
    node_port: str | None = None
    """``node07 mlx5_4 port 1``."""
    switch_port: str | None = None
    """Where the cable is (miswired, degraded) or where the plan puts it (missing)."""


def rail_order(cabling: Cabling, profile_names: Sequence[str] = (), excluded: Sequence[str] = ()) -> tuple[str, ...]:
    """The HCA of each rail: the file's ``rails``, else the profile's ``[rails] names`` when the cabling has them,
    else every cabled HCA in natural order, less the profile's excluded ones (``mlx5_0``).

    The last is reading the rails by position: where the NodeDescriptions name no HCA the profile knows
    (MLNX_OFED's ``<host> HCA-<n>``), the n-th HCA of a node is its n-th rail. That holds only when the cabling
    shows as many HCAs per node as the profile has rails; otherwise which one is not a rail (storage on
    mlx5_0? a spare?) cannot be told, and it is refused with the fix. UserError too above ``MAX_RAILS``."""
    if cabling.rails:
        if len(cabling.rails) > MAX_RAILS:
            listed = len(cabling.rails)
            raise UserError(f"{cabling.source}: rails lists {listed} HCAs, more than any node has ({MAX_RAILS})")
        return cabling.rails
    hosts = cabling.hosts
    cabled = {hca for hcas in hosts.values() for hca in hcas}
    if not rail_optimised(cabling, tuple(sorted(cabled, key=natural_key))):
        # No rails to tell apart (one HCA per host, or a host's HCAs on one switch): every cabled HCA is judged
        # alike and no name is taken for a rail, so nothing is refused for a count of names either.
        return tuple(sorted(cabled, key=natural_key))[:MAX_RAILS]
    if profile_names and cabled & set(profile_names):
        return tuple(name for name in profile_names if name in cabled)
    skip = {name.partition(":")[0] for name in excluded}
    order = tuple(sorted(cabled - skip, key=natural_key))
    if profile_names and len(order) != len(profile_names):
        shown = f"{order[0]}..{order[-1]}" if len(order) > 1 else ", ".join(order) or "none"
        raise UserError(
            f"{cabling.source}: its HCAs are named {shown} ({len(order)} per node at most), not the profile's "
            f"{len(profile_names)} rails ({profile_names[0]}..{profile_names[-1]}), so which HCA is which rail cannot "
            f"be told: {NAME_FIX}, or list the rails' HCAs in order in a cabling .toml (rails = [...])"
        )
    if len(order) > MAX_RAILS:
        raise UserError(
            f"{cabling.source}: {len(order)} different HCA names, more rails than any node has ({MAX_RAILS}): "
            f"{NAME_FIX}, or give the profile's [rails] names"
        )
    return order


def by_position(fabric: FabricShape, profile_names: Sequence[str]) -> str | None:
    """``rails read by position: HCA-2..HCA-9 are rails 0-7 (mlx5_1..mlx5_8)`` when the rails' HCAs are not
    the profile's names (``rail_order``'s last case), else None."""
    hcas = fabric.rail_hcas
    if not fabric.rail_optimised or not hcas or not profile_names or set(hcas) & set(profile_names):
        return None  # no rails read at all where the fabric has none
    return (
        f"rails read by position: {hcas[0]}..{hcas[-1]} are rails 0-{len(hcas) - 1} "
        f"({profile_names[0]}..{profile_names[-1]}); NodeDescriptions that name the HCA (rdma-ndd) need no guess"
    )


def rail_optimised(cabling: Cabling, hcas: Sequence[str]) -> bool:
    """Whether the cabling is rail-optimised, read from its structure: of the nodes that cable two or more of
    ``hcas``, more put each on a different switch than put two on one switch. The names of the HCAs play no
    part, so ``HCA-<n>`` and ``mlx5_<k>`` naming alike; a miswired node or two do not change the answer, a
    fabric of one HCA per host (no node votes) is not rail-optimised."""
    spread = together = 0
    for host in cabling.hosts:
        switches = [c.b.switch for hca in hcas if (c := cabling.cable_of(host, hca)) is not None]
        if len(switches) >= 2:
            if len(set(switches)) == len(switches):
                spread += 1
            else:
                together += 1
    return spread > together


def _shared_nodes(leaf_hosts: Mapping[str, set[str]], names: list[str]) -> Counter[tuple[str, str]]:
    """(leaf a, leaf b) -> the nodes both reach, for every two leaves that share one (a before b in ``names``)."""
    by_host: dict[str, list[str]] = {}
    for name in names:
        for host in leaf_hosts[name]:
            by_host.setdefault(host, []).append(name)
    shared: Counter[tuple[str, str]] = Counter()
    for leaves in by_host.values():
        for i, a in enumerate(leaves):
            for b in leaves[i + 1 :]:
                shared[(a, b)] += 1
    return shared


def _units(leaf_hosts: Mapping[str, set[str]]) -> list[list[str]]:
    """Leaves grouped into units: two leaves join when they share more than half of the smaller one's nodes."""
    names = sorted(leaf_hosts, key=natural_key)
    parent = {name: name for name in names}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), count in _shared_nodes(leaf_hosts, names).items():
        if 2 * count > min(len(leaf_hosts[a]), len(leaf_hosts[b])):
            parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(root(name), []).append(name)
    return list(groups.values())


def shape(cabling: Cabling, rail_hcas: Sequence[str]) -> FabricShape:
    """Leaves, spines, rails and units as the cables show them."""
    leaf_hosts: dict[str, set[str]] = {}
    leaf_rails: dict[str, Counter[int]] = {}
    # Each rail HCA's own port (its lowest cabled one): a node then sits on at most one leaf per rail, so
    # grouping leaves into units costs rails^2 per node however a hostile file cables its ports.
    for host in cabling.hosts:
        for k, hca in enumerate(rail_hcas):  # an HCA on another fabric (storage's mlx5_0) is not the rails' business
            cable = cabling.cable_of(host, hca)
            if cable is not None:
                leaf_hosts.setdefault(cable.b.switch, set()).add(host)
                leaf_rails.setdefault(cable.b.switch, Counter())[k] += 1
    uplinks: dict[str, list[Cable]] = {}
    for cable in cabling.switch_links:
        a, b = cable.a, cable.b
        assert isinstance(a, SwitchPort)  # switch_links holds switch-to-switch cables only
        for near, far in ((a, b), (b, a)):
            if near.switch in leaf_hosts and far.switch not in leaf_hosts:
                uplinks.setdefault(near.switch, []).append(Cable(near, far, cable.link))
    groups = sorted(
        _units(leaf_hosts), key=lambda g: natural_key(min((h for n in g for h in leaf_hosts[n]), key=natural_key))
    )
    unit_of_leaf = {name: i for i, group in enumerate(groups) for name in group}
    votes: dict[str, Counter[int]] = {}
    for name, hosts in leaf_hosts.items():
        for host in hosts:
            votes.setdefault(host, Counter())[unit_of_leaf[name]] += 1
    unit_of = {host: min(c, key=lambda u: (-c[u], u)) for host, c in votes.items()}
    units = tuple(tuple(sorted((h for h, u in unit_of.items() if u == i), key=natural_key)) for i in range(len(groups)))
    leaves = {}
    for name in sorted(leaf_hosts, key=natural_key):
        rails = leaf_rails.get(name)
        rail = min(rails, key=lambda k: (-rails[k], k)) if rails else None
        cables = tuple(sorted(uplinks.get(name, []), key=lambda c: c.a))
        members = tuple(sorted(leaf_hosts[name], key=natural_key))
        leaves[name] = Leaf(name, rail, unit_of_leaf[name], members, cables)
    spines = tuple(sorted({c.b.switch for leaf in leaves.values() for c in leaf.uplinks}, key=natural_key))
    return FabricShape(tuple(rail_hcas), leaves, spines, units, unit_of, rail_optimised(cabling, rail_hcas))


def _planned_port(fabric: FabricShape, cabling: Cabling, host: str, leaf: Leaf) -> str:
    """``leaf-su1-r3 port 7`` when ``host`` uses port 7 on every other leaf of its unit and port 7 is free on
    ``leaf``; else ``leaf-su1-r3, a free port``."""
    ports = set()
    for rail, hca in enumerate(fabric.rail_hcas):
        cable = cabling.cable_of(host, hca)
        home = fabric.leaves.get(cable.b.switch) if cable is not None else None
        if cable is not None and home is not None and home.rail == rail and home.unit == fabric.unit_of.get(host):
            ports.add(cable.b.port)
    if len(ports) == 1 and (port := ports.pop()) not in cabling.used_ports(leaf.name):
        return str(SwitchPort(leaf.name, port))
    return f"{leaf.name}, a free port"


def _where_planned(fabric: FabricShape, cabling: Cabling, host: str, rail: int) -> str:
    unit = fabric.unit_of.get(host)
    planned = fabric.leaves_of(rail, unit) if unit is not None else []
    if len(planned) == 1:
        return _planned_port(fabric, cabling, host, planned[0])
    if planned:
        return " or ".join(leaf.name for leaf in planned)
    return f"a rail {rail} leaf of {fabric.unit_name(unit) if unit is not None else 'its unit'} (the cabling has none)"


def _in_plan(fabric: FabricShape, cabling: Cabling, host: str) -> bool:
    """Whether ``host`` is a node of the rail plan: it cables every rail, or at least one of its cables is where
    the plan puts it. A UFM server or a storage host with two HCAs on two rail leaves is neither (a real
    SuperPOD dump has two), and calling its other rails "missing" would be false."""
    cables = [(k, cabling.cable_of(host, hca)) for k, hca in enumerate(fabric.rail_hcas)]
    placed = [(k, c) for k, c in cables if c is not None]
    if len(placed) == len(fabric.rail_hcas):
        return True
    unit = fabric.unit_of.get(host)
    return any((leaf := fabric.leaves.get(c.b.switch)) and leaf.rail == k and leaf.unit == unit for k, c in placed)


def _degraded(cables: Sequence[Cable], what: str) -> list[CablingFinding]:
    """A cable that carries less than the usual link of ``cables`` (``bench.fabric.cabling_links``)."""
    norm, slow = cabling_links.below(cables)
    out = []
    for c in slow:
        line = f"degraded cable: {c} runs at {c.link}, the fabric's other {what} at {norm}"
        node = str(c.a) if isinstance(c.a, HostPort) else None
        out.append(CablingFinding("degraded", line, node, str(c.b) if node else f"{c.a} and {c.b}"))
    return out


def _unnamed(cabling: Cabling) -> list[CablingFinding]:
    """One finding per NodeDescription that names no one adapter: those adapters' cabling is not judged."""
    out = []
    for description, ports in cabling.unnamed:
        line = (
            f"unnamed adapters: {len(ports)} channel adapter(s) share the NodeDescription {description!r} (first on "
            f"{ports[0]}), which names no host: their cabling is not judged; {NAME_FIX}"
        )
        out.append(CablingFinding("unnamed", line, None, ports[0]))
    return out


def _without_rails(cabling: Cabling, fabric: FabricShape) -> list[CablingFinding]:
    """A fabric that is not rail-optimised: its node cables and switch links below their peers, its leaves short
    of a spine, its unnamed adapters; no rail plan, so no cable is missing or miswired for one."""
    out = _degraded(list(cabling.host_ports.values()), "node cables")
    # A cable from a switch to itself (a lab's loopback) joins no two switches: not a peer of the links between them
    links = [c for c in cabling.switch_links if isinstance(c.a, SwitchPort) and c.a.switch != c.b.switch]
    out += _degraded(links, "switch links")
    return out + _uplink_findings(fabric) + _unnamed(cabling)


def check(cabling: Cabling, rail_hcas: Sequence[str]) -> tuple[FabricShape, list[CablingFinding]]:
    """The fabric's shape and every departure from the rail-optimised plan (empty: cabled as planned); on a
    fabric that is not rail-optimised, every departure judged without rails (degraded links, missing uplinks)."""
    fabric = shape(cabling, rail_hcas)
    if not fabric.rail_optimised:
        return fabric, _without_rails(cabling, fabric)
    out: list[CablingFinding] = []
    for host in cabling.hosts:
        unit = fabric.unit_of.get(host)
        if unit is None or not _in_plan(fabric, cabling, host):
            continue  # a host of another role (storage, the UFM server), not a node of the rail plan
        for rail, hca in enumerate(fabric.rail_hcas):
            cable = cabling.cable_of(host, hca)
            if cable is None:
                planned = _where_planned(fabric, cabling, host, rail)
                node_port = str(HostPort(host, hca))
                line = f"missing cable: {node_port} (rail {rail}) is not cabled; the plan puts it on {planned}"
                out.append(CablingFinding("missing", line, node_port, planned))
                continue
            leaf = fabric.leaves[cable.b.switch]
            if leaf.rail == rail and leaf.unit == unit:
                continue
            what = f"a rail {leaf.rail} leaf" if leaf.rail != rail else f"a leaf of {fabric.unit_name(leaf.unit)}"
            planned = _where_planned(fabric, cabling, host, rail)
            line = f"miswired cable: {cable.a} (rail {rail}) is on {cable.b}, {what}; the plan puts it on {planned}"
            out.append(CablingFinding("miswired", line, str(cable.a), str(cable.b)))
    rail_set = set(fabric.rail_hcas)
    host_cables = [c for p, c in cabling.host_ports.items() if p.hca in rail_set]
    uplinks = [c for leaf in fabric.leaves.values() for c in leaf.uplinks]
    out += _degraded(host_cables, "node cables") + _degraded(uplinks, "uplinks")
    return fabric, out + _uplink_findings(fabric) + _unnamed(cabling)


def _uplink_findings(fabric: FabricShape) -> list[CablingFinding]:
    """A leaf with fewer cables to a spine than most leaves of its rail have. Linear in the uplinks and the
    findings: only the leaves that reach a spine are counted, the others have 0 cables to it."""
    out = []
    by_rail: dict[int | None, list[Leaf]] = {}
    for leaf in fabric.leaves.values():  # without rails, every leaf is cabled alike in a fat tree
        by_rail.setdefault(leaf.rail if fabric.rail_optimised else None, []).append(leaf)
    for rail, leaves in by_rail.items():
        if len(leaves) < 2:
            continue
        reach: dict[str, Counter[str]] = {}  # spine -> leaf -> its cables to that spine
        for leaf in leaves:
            for c in leaf.uplinks:
                reach.setdefault(c.b.switch, Counter())[leaf.name] += 1
        for spine in sorted(reach, key=natural_key):
            out += _short_of_spine(rail, leaves, spine, reach[spine])
    return out


def _short_of_spine(rail: int | None, leaves: list[Leaf], spine: str, counts: Counter[str]) -> list[CablingFinding]:
    """The leaves of ``rail`` with fewer cables to ``spine`` than most of them (``counts``: leaf -> cables)."""
    seen = Counter(counts.values())
    if len(leaves) > len(counts):
        seen[0] = len(leaves) - len(counts)
    usual = max(seen, key=lambda n: (seen[n], n))  # a tie goes to the fuller leaf: the fat tree's plan
    out = []
    for leaf in leaves:
        have = counts.get(leaf.name, 0)
        if have < usual:
            ports = [str(c.a) for c in leaf.uplinks if c.b.switch == spine]
            now = f" (now {', '.join(ports)})" if ports else ""
            others = "the other leaves" if rail is None else f"the other rail {rail} leaves"
            line = (
                f"missing uplink: {leaf.name} has {have} cable(s) to {spine}, {others} {usual}{now}; cable a free "
                f"port of {leaf.name} to {spine}"
            )
            out.append(CablingFinding("uplink", line, None, f"{leaf.name} -> {spine}"))
    return out


def summary(fabric: FabricShape, hosts: int) -> str:
    """``64 nodes x 8 rails on 16 leaves in 2 units, 8 spines``; ``97 nodes on 4 leaves, 2 spines, not
    rail-optimised`` for a fabric without rails."""
    if not fabric.rail_optimised:
        return f"{hosts} nodes on {len(fabric.leaves)} leaves, {len(fabric.spines)} spines, not rail-optimised"
    return (
        f"{hosts} nodes x {len(fabric.rail_hcas)} rails on {len(fabric.leaves)} leaves in {len(fabric.units)} "
        f"units, {len(fabric.spines)} spines"
    )
