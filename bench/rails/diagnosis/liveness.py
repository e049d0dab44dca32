"""Which members of each rail group are alive, decided before the group forms, and the dead parts named.

A dead link must never hide another fault (docs/design.md, "Dead parts"): each rail group is formed from its
live members only, every other rail, pair and node is measured as usual, and the dead member's pairs are
reported dead without being attempted. Before any rail group exists every rank reports its own rail link
(``LinkReport``): the port's state from sysfs and which peers of its rail it could reach with a bounded
connect (``bench.rails.measurement.links``), or, on NCCL, which pair probes completed within their deadline. Every rank
reads every report (through the store) and :func:`decide` turns them into the same ``Membership`` on every
rank, so every rank calls ``new_group`` with the same members.

The smallest explanation wins, as in localisation:

* a member whose port is down, or whose own connects all fail with "Network is unreachable" (its rail lost
  its route), is a dead ``link``;
* then, repeatedly, a member that failed with every peer it was tested with (at least two) is a dead
  ``link``: one bad end explains all of its pairs;
* a failed pair left over between two members that each reached someone else is a dead ``pair``; one end
  leaves the group (a group cannot form around a pair that cannot connect), its other pairs unmeasured;
  so is the one pair of a rail with two members left whose ports are up (a 2-node cluster): either end's link
  or the switch, which one pair cannot tell (its defect says so, ``RailDefect.only_pair``);
* a rail whose every member is dead (whose ports are all down, or, with three members or more, where nobody
  connects) is a dead ``rail``; a node dead on every rail (two or more) is a dead ``node``.

Pure functions: the reports come in as arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from bench.codec import ABSENT
from bench.rundir.named_parts import NamedPart
from bench.rundir.rails_records import Conviction

SELF_FAULTS = ("Network is unreachable", "Cannot assign requested address")
"""strerror(ENETUNREACH), strerror(EADDRNOTAVAIL): the connecting end itself has no route or no address on this
rail, whoever it was connecting to."""


@dataclass(frozen=True)
class LinkReport:
    """What one rank knows about its own rail link before the rail groups form."""

    node: int
    rail: int
    device: str | None
    """The rail's interface (socket rails) or HCA port (``mlx5_4:1``) on this node, where known."""
    address: str | None
    """This end's IPv4 address on its rail interface (socket rails)."""
    port: str
    """The port's state in sysfs' words: ``up``, ``down (no carrier)``, ``ACTIVE``, ``DOWN (Disabled)``."""
    port_up: bool | None
    """None: the port's state was not read (no device known for this rail)."""
    reached: tuple[int, ...] = ()
    """Nodes of this rail this end connected to (or completed a pair probe with) within the deadline."""
    failed: tuple[tuple[int, str], ...] = ()
    """(node, what went wrong) for every peer this end was tested with and could not reach."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LinkReport:
        d = json.loads(text)
        return cls(
            int(d["node"]),
            int(d["rail"]),
            d["device"],
            d["address"],
            str(d["port"]),
            d["port_up"],
            tuple(int(n) for n in d["reached"]),
            tuple((int(n), str(why)) for n, why in d["failed"]),
        )


@dataclass(frozen=True)
class DeadPart:
    """One part found dead before anything was measured: why, and the pairs it costs."""

    kind: Literal["link", "pair", "rail", "node"]
    node: int | None
    rail: int | None
    peer: int | None = None
    reasons: tuple[str, ...] = ()
    """One line per piece of evidence (the port's state, who could not reach it and how)."""


@dataclass(frozen=True)
class Membership:
    """Every rail group's live members, the same on every rank."""

    live: tuple[tuple[int, ...], ...]
    """``live[rail]``: the node indices of that rail's group, in node order; empty when fewer than two live."""
    dead: tuple[DeadPart, ...] = ()
    unmeasured: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    """(node, rail) left out of their rail group although not named dead (a dead pair's other end)."""

    def in_group(self, node: int, rail: int) -> bool:
        return node in self.live[rail]

    def pair_open(self, a: int, b: int, rail: int) -> bool:
        """Whether the pair (a, b) is measured on ``rail``: both ends in its group."""
        return self.in_group(a, rail) and self.in_group(b, rail)

    @property
    def everyone(self) -> bool:
        """Nothing was left out: every rail group holds every node."""
        return not self.dead and not self.unmeasured


def everyone_live(nodes: int, rails: int) -> Membership:
    return Membership(tuple(tuple(range(nodes)) for _ in range(rails)))


def _pair_results(reports: Sequence[LinkReport]) -> dict[tuple[int, int], list[str]]:
    """(low, high) -> errors of every tested pair: empty when either end reached the other (a connect that
    completed carried packets both ways), else what each end saw."""
    tested: dict[tuple[int, int], list[str]] = {}
    ok: set[tuple[int, int]] = set()
    for r in reports:
        for peer in r.reached:
            ok.add((min(r.node, peer), max(r.node, peer)))
        for peer, why in r.failed:
            tested.setdefault((min(r.node, peer), max(r.node, peer)), []).append(why)
    for key in ok:
        tested[key] = []
    return tested


def _dead_by_own_report(reports: Sequence[LinkReport], rail: int) -> list[DeadPart]:
    """The links dead by their own report: a port that is down, or a node whose every connect failed at its
    own end."""
    dead: list[DeadPart] = []
    for r in reports:
        if r.port_up is False:
            dead.append(DeadPart("link", r.node, rail, reasons=(f"port {r.device or '?'} is {r.port}",)))
        elif r.failed and not r.reached and all(any(s in why for s in SELF_FAULTS) for _, why in r.failed):
            dead.append(DeadPart("link", r.node, rail, reasons=(f"its own connects failed: {r.failed[0][1]}",)))
    return dead


def _dead_pairs(
    results: dict[tuple[int, int], list[str]], live: list[int], rail: int
) -> tuple[list[DeadPart], set[int]]:
    """A pair that still fails between members that each connected with someone else: the pair itself. Its
    higher end leaves the group (removed from ``live``), which could not form around a pair that cannot
    connect. Returns the dead pairs and the members left out."""
    dead: list[DeadPart] = []
    out: set[int] = set()
    for (a, b), errors in sorted(results.items()):
        if errors and a in live and b in live:
            dead.append(DeadPart("pair", a, rail, b, reasons=("; ".join(sorted(set(errors)))[:300],)))
            out.add(b)
            live.remove(b)
    return dead, out


def _rail(reports: Sequence[LinkReport], rail: int) -> tuple[tuple[int, ...], list[DeadPart], set[int]]:
    """One rail: its group's members, what is dead, and the members left out without being dead."""
    dead = _dead_by_own_report(reports, rail)
    live = sorted({r.node for r in reports} - {d.node for d in dead})
    results = _pair_results(reports)

    def failing(x: int) -> tuple[list[int], int]:
        """x's failed partners among the live members, and how many live partners it was tested with."""
        peers = [b if a == x else a for (a, b) in results if x in (a, b) and a in live and b in live]
        return [p for p in peers if results[(min(x, p), max(x, p))]], len(peers)

    pairs = [key for key in results if key[0] in live and key[1] in live]
    if len(live) == len(reports) >= 3 and pairs and all(results[key] for key in pairs):
        # Nobody connected with anybody: no member stands out, the rail itself (its switch) is dead. Two members
        # have one pair, which is every pair of the rail and of either end's link: it is named the pair below.
        seen = "; ".join(sorted({why for key in pairs for why in results[key]}))
        return (
            (),
            [DeadPart("rail", None, rail, reasons=(f"no pair connected ({len(pairs)} tested): {seen}"[:300],))],
            set(),
        )
    while True:
        # The member with the most failed pairs among those that failed with every peer tested (two at least).
        candidates = [(len(bad), x) for x in live for bad, tested in [failing(x)] if tested >= 2 and len(bad) == tested]
        if not candidates:
            break
        _, x = max(candidates)
        bad, _ = failing(x)
        seen = "; ".join(sorted({why for p in bad for why in results[(min(x, p), max(x, p))]}))
        dead.append(
            DeadPart("link", x, rail, reasons=(f"no peer connected with it ({len(bad)}/{len(bad)}): {seen}"[:300],))
        )
        live.remove(x)
    pairs_dead, out = _dead_pairs(results, live, rail)
    dead += pairs_dead
    if len(reports) >= 2 and len(dead) == len(reports) and all(d.kind == "link" for d in dead):
        dead = [DeadPart("rail", None, rail, reasons=tuple(f"node index {d.node}: {d.reasons[0]}" for d in dead))]
    if len(live) < 2:
        return (), dead, out | set(live)
    return tuple(live), dead, out


def decide(reports: Iterable[LinkReport], nodes: int, rails: int) -> Membership:
    """Every rail group's live members and the dead parts, from every rank's report."""
    by_rail: dict[int, list[LinkReport]] = {k: [] for k in range(rails)}
    for r in reports:
        by_rail[r.rail].append(r)
    live: list[tuple[int, ...]] = []
    dead: list[DeadPart] = []
    unmeasured: set[tuple[int, int]] = set()
    for k in range(rails):
        members, found, out = _rail(by_rail[k], k)
        live.append(members)
        dead += found
        unmeasured |= {(n, k) for n in out}
    # A node dead on every rail is one dead node, not a dead link per rail.
    for n in range(nodes):
        links = [d for d in dead if d.kind == "link" and d.node == n]
        if rails >= 2 and len(links) == rails:
            dead = [d for d in dead if d not in links]
            dead.append(DeadPart("node", n, None, reasons=tuple(f"rail {d.rail}: {d.reasons[0]}" for d in links)))
    return Membership(tuple(live), tuple(dead), frozenset(unmeasured))


def dead_defects(
    membership: Membership,
    nodes: Sequence[str],
    line_rate: float | None,
    devices: Mapping[tuple[int, int], str | None],
    scheduled: Callable[[int, int], bool] | None = None,
) -> list[NamedPart]:
    """A ``dead`` defect for every dead part, with the pairs it cost (never attempted) as its evidence.

    ``devices``: (node, rail) -> the rail's interface or HCA port on that node. ``scheduled(a, b)``: whether the
    schedule pairs a and b at all (``bench.rails.plan.schedule.unit_rounds``); a pair it leaves out was never
    going to run and is no cost of the dead part. None: every pair (the full matrix).
    """
    n = len(nodes)
    meets = scheduled or (lambda a, b: True)
    basis: Literal["line rate", "peers"] = "line rate" if line_rate else "peers"
    out: list[NamedPart] = []
    gone = {(d.node, d.rail) for d in membership.dead if d.kind == "link"}
    gone |= {(d.node, k) for d in membership.dead if d.kind == "node" for k in range(len(membership.live))}
    for d in sorted(membership.dead, key=_order):
        if d.kind == "pair":
            assert d.node is not None and d.peer is not None and d.rail is not None
            pairs = 1
            cells = [f"{nodes[d.node]}-{nodes[d.peer]}/rail{d.rail}"]
        elif d.kind == "rail":
            pairs = sum(1 for a in range(n) for b in range(a + 1, n) if meets(a, b))
            cells = [f"rail {d.rail}: every pair"]
        elif d.kind == "node":
            assert d.node is not None
            pairs = sum(1 for p in range(n) if p != d.node and meets(d.node, p)) * len(membership.live)
            cells = [f"{nodes[d.node]}: every pair on every rail"]
        else:
            assert d.node is not None and d.rail is not None
            partners = [p for p in range(n) if p != d.node and meets(d.node, p)]
            pairs = len(partners)
            cells = [f"{nodes[min(d.node, p)]}-{nodes[max(d.node, p)]}/rail{d.rail}" for p in partners]
        where = nodes[d.node] if d.node is not None else f"rail {d.rail}"
        evidence = tuple(f"{where}: {why}" for why in d.reasons) + tuple(f"{c}: not attempted" for c in cells)
        out.append(
            NamedPart(
                kind=d.kind,
                node=nodes[d.node] if d.node is not None else None,
                peer=nodes[d.peer] if d.peer is not None else None,
                rail=d.rail,
                device=devices.get((d.node, d.rail)) if d.node is not None and d.rail is not None else None,
                conviction=Conviction.unmeasured(
                    "dead", evidence, pairs=pairs, expected_Gbps=line_rate or 0.0, basis=basis
                ),
                # A pair with no other live node on its rail is the rail's only pair: its end cannot be told.
                only_pair=True if d.kind == "pair" and n - sum(1 for x, k in gone if k == d.rail) == 2 else ABSENT,
            )
        )
    return out


def _order(d: DeadPart) -> tuple[int, int, int, int]:
    rank = {"rail": 0, "node": 1, "link": 2, "pair": 3}[d.kind]
    return rank, -1 if d.rail is None else d.rail, -1 if d.node is None else d.node, -1 if d.peer is None else d.peer
