"""What the fabric can carry in each round of the pair matrix: every pair's max-min fair share of its uplinks.

A pair on rail k whose nodes sit on one leaf crosses only that leaf: it runs at its links' rate whatever else
the round runs. A pair between two leaves sends one flow each way, and each flow leaves its source's leaf
through that leaf's uplinks and enters its destination's leaf through the destination leaf's (an uplink cable
is full duplex: the way up and the way down are separate capacities). The two flows run in turn: a round runs
every pair's flow from its lower node at once, then every other (``bench.rails.measurement.exchanges``), and each
half fills the uplinks with its own flows. In a rail-optimised two-tier tree every
leaf of a rail reaches every spine alike (the cabling check fails a leaf that does not, ``bench.fabric
.cabling_plan``), so the spines add no constraint of their own beyond the leaves' uplinks, and with the flows
spread over the uplinks (adaptive routing, or ECMP over many flows) a leaf's uplinks act as one pool.

So each round is a set of flows over two kinds of resource per leaf, ``up`` and ``down``, each of capacity
"the leaf's uplink bandwidth in units of one node's link" (``leaf_capacity``), and each flow is also held to 1
by its own node link. The rate the fabric gives each flow is its max-min fair share (progressive filling,
Bertsekas and Gallager, "Data Networks", 2nd ed., section 6.5.2): every flow grows alike until a resource it
crosses is full, and the flows on a full resource stop there. A non-blocking leaf (as many uplinks as nodes)
never fills before the node links do, so its pairs are expected at 1; a 2:1 tapered leaf whose every node
crosses to another unit in the round gives each flow 1/2. A pair's expected fraction is the lower of its two
flows' (the matrix keeps the slower direction, ``bench.rails.diagnosis.matrix``).

Pure numpy over the round's cells; each filling step fills at least one resource of every round still filling,
so the steps are bounded by twice the leaves of a rail and each is O(cells).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.fabric import cabling_links
from bench.fabric.cabling import Cabling
from bench.fabric.cabling_plan import Leaf
from bench.rails.plan.schedule import Round

FULL = 1.0
"""A node link's own rate: no flow runs faster than its node's cable."""


def leaf_capacity(cabling: Cabling, leaves: Sequence[Leaf]) -> np.ndarray:
    """``[leaf]``: the leaf's uplink bandwidth in units of one of its node links.

    Where ibnetdiscover gives every uplink's and the node cables' width and speed, bandwidths are compared
    (``cabling_links.bandwidth``: 16 uplinks at 4xNDR under 32 nodes at 4xNDR is 16, under 32 at 2xNDR it is
    32); else each uplink counts as one node link (a TOML plan says no speeds). A leaf without uplinks is a
    single unit's leaf or a cabling fault the cabling check names: nothing is expected of its cross pairs
    (infinite capacity), they are judged as they were."""
    node_links: dict[str, list[str | None]] = {}
    for cable in cabling.host_ports.values():
        node_links.setdefault(cable.b.switch, []).append(cable.link)
    out = np.full(len(leaves), np.inf)
    for i, leaf in enumerate(leaves):
        if not leaf.uplinks:
            continue
        usual = cabling_links.usual(node_links.get(leaf.name, []))
        node_rate = cabling_links.bandwidth(usual) if usual else None
        rates = [cabling_links.bandwidth(c.link) if c.link else None for c in leaf.uplinks]
        if node_rate and all(rates):
            out[i] = sum(r for r in rates if r) / node_rate
        else:
            out[i] = float(len(leaf.uplinks))
    return out


def fair_shares(
    leaf_a: np.ndarray,
    leaf_b: np.ndarray,
    group: np.ndarray,
    capacity: np.ndarray,
    routes: Routes | None = None,
    a_first: np.ndarray | None = None,
) -> np.ndarray:
    """Per cell (parallel arrays): the fraction of a node link the pair gets, the lower of its two flows'
    max-min fair shares among the flows of its own ``group`` (the round it runs in) that run with it.

    ``leaf_a``/``leaf_b``: the leaf of each end (-1 where the cabling does not place it: no expectation);
    ``capacity``: ``[leaf]`` from :func:`leaf_capacity`. Cells within one leaf, or unplaced, get 1. ``routes``:
    destination routing (:class:`Routes`), each flow on one uplink of each leaf; None: spread over the pool.
    ``a_first``: where given, the cells whose a -> b flow runs in the round's first half (a is the lower node):
    a round runs every pair's direction from its lower node at once, then the other
    (``bench.rails.measurement.exchanges``), so each half fills the uplinks on its own; None: both at once."""
    out = np.full(len(leaf_a), FULL)
    cross = np.flatnonzero((leaf_a != leaf_b) & (leaf_a >= 0) & (leaf_b >= 0))
    if not len(cross):
        return out
    la, lb = leaf_a[cross].astype(np.int64), leaf_b[cross].astype(np.int64)
    # Flow 2i goes a -> b (up at a's leaf, down at b's), flow 2i+1 b -> a.
    src = np.stack([la, lb], axis=1).ravel()
    dst = np.stack([lb, la], axis=1).ravel()
    del la, lb
    cell_group, groups = _ranks(group[cross].astype(np.int64))
    if a_first is None:
        flow_group = np.repeat(cell_group, 2)
    else:
        # Each round's halves are groups of their own: flow a -> b in the first where a is the lower node.
        first = a_first[cross]
        flow_group = np.stack([2 * cell_group + ~first, 2 * cell_group + first], axis=1).ravel()
        groups *= 2
    del cell_group
    leaves = len(capacity)
    if routes is None:
        up_j, down_j, uplinks = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), 1
        up_cap, down_cap = capacity[src], capacity[dst]
    else:
        # The destination's port fixes the uplink, up from the source's leaf and down into its own.
        rank = np.stack([routes.rank_b[cross], routes.rank_a[cross]], axis=1).ravel()
        up_j, down_j = rank % routes.count[src], rank % routes.count[dst]
        uplinks = int(routes.count.max(initial=1))
        up_cap, down_cap = capacity[src] / routes.count[src], capacity[dst] / routes.count[dst]
    # One integer per (round, leaf, uplink, way): the resource a flow crosses, numbered in that order.
    up_key = ((flow_group * leaves + src) * uplinks + up_j) * 2
    down_key = ((flow_group * leaves + dst) * uplinks + down_j) * 2 + 1
    del src, dst, up_j, down_j
    inverse, resources = _ranks(np.concatenate([up_key, down_key]), groups * leaves * uplinks * 2)
    del up_key, down_key
    cap = np.empty(resources)
    cap[inverse] = np.concatenate([up_cap, down_cap])
    flows = len(flow_group)
    rate = _fill(inverse[:flows], inverse[flows:], cap, flow_group)
    out[cross] = np.minimum(rate[0::2], rate[1::2])
    return out


def _ranks(values: np.ndarray, span: int | None = None) -> tuple[np.ndarray, int]:
    """``np.unique(values, return_inverse=True)``'s inverse and the count of distinct values, for non-negative
    integers under ``span`` (default: their largest + 1): through a table of the span where it is not much
    larger than the values, a sort otherwise. A 1024-node matrix's rounds hold 17 million flows; sorting their
    resources was most of the judgement."""
    span = int(values.max(initial=-1)) + 1 if span is None else span
    if span > 4 * len(values) + 1024:
        unique, inverse = np.unique(values, return_inverse=True)
        return inverse.astype(np.int64), len(unique)
    present = np.zeros(span, dtype=bool)
    present[values] = True
    rank = np.cumsum(present, dtype=np.int64)
    return rank[values] - 1, int(rank[-1]) if span else 0


@dataclass(frozen=True, eq=False)
class Routes:
    """Destination routing's inputs per cell: each end's port rank on its leaf (``rank_a``, ``rank_b``) and every
    leaf's uplink count (``count``, ``[leaf]``, at least 1)."""

    rank_a: np.ndarray
    rank_b: np.ndarray
    count: np.ndarray


def _fill(first: np.ndarray, second: np.ndarray, cap: np.ndarray, flow_group: np.ndarray) -> np.ndarray:
    """Progressive filling: each flow crosses resources ``first`` and ``second`` (capacities ``cap``) and its
    own node link (1); ``flow_group`` keeps rounds apart (their flows never share a resource in time)."""
    rate = np.zeros(len(first))
    used = np.zeros(len(cap))
    groups = int(flow_group.max()) + 1
    # The flows still filling, in their order (so ``used`` sums each resource's flows in the same order); each
    # step works on these alone: most flows of a large matrix are fixed in the first steps.
    active = np.arange(len(first))
    up, down, group = first, second, flow_group
    while len(active):
        count = np.bincount(up, minlength=len(cap)) + np.bincount(down, minlength=len(cap))
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(count > 0, (cap - used) / count, np.inf)
        # Every active flow of a round has grown alike so far: the round's next step is its lowest level.
        mine = np.minimum(np.minimum(level[up], level[down]), FULL)
        lowest = np.full(groups, np.inf)
        np.minimum.at(lowest, group, mine)
        done = mine <= lowest[group] * (1 + 1e-12)
        rate[active[done]] = mine[done]
        np.add.at(used, up[done], mine[done])
        np.add.at(used, down[done], mine[done])
        keep = ~done
        active, up, down, group = active[keep], up[keep], down[keep], group[keep]
    return rate


@dataclass(frozen=True, eq=False)
class Plane:
    """The run's (rail, node)s on the fabric, as the fair shares read them (``fabric_map.FabricMap.plane``)."""

    leaf: np.ndarray
    """``[rail, node]``: the leaf, -1 where unplaced."""
    capacity: np.ndarray
    """``[leaf]``: uplink bandwidth in node links (:func:`leaf_capacity`)."""
    rank: np.ndarray
    """``[rail, node]``: the node's port among its leaf's node ports, in port order (0 the lowest)."""
    count: np.ndarray
    """``[leaf]``: its uplinks (at least 1)."""

    def shares(self, k: np.ndarray, a: np.ndarray, b: np.ndarray, group: np.ndarray, destination: bool) -> np.ndarray:
        """:func:`fair_shares` of cells ``(k, a, b)`` in rounds ``group``: under destination routing, or spread.
        Leaves carry one rail each, so the rails' flows never share a resource: one filling serves them all."""
        routes = Routes(self.rank[k, a], self.rank[k, b], self.count) if destination else None
        return fair_shares(self.leaf[k, a], self.leaf[k, b], group, self.capacity, routes, np.asarray(a < b))


ROUTINGS = ("spread", "destination")
"""How flows pick their uplink: spread over the leaf's uplinks (adaptive routing, ECMP over many flows), or the
one the destination's port fixes (OpenSM's ftree and updn engines route each destination LID one way)."""


@dataclass(frozen=True, eq=False)
class Load:
    """The matrix's rounds on the fabric: where each pair ran, and what the fabric could give it there."""

    round_of: np.ndarray
    """``[repeat, a, b]``: the round (within its repeat) the pair ran in; -1 where it did not run."""
    fraction: dict[str, np.ndarray]
    """Per routing (:data:`ROUTINGS`), ``[repeat, rail, a, b]``: the share of a node link the pair could get in
    that round (1: all of it)."""

    @property
    def loaded(self) -> bool:
        """Whether any pair was expected below its links' rate (a tapered tree that the schedule fills)."""
        return any(bool((f < FULL).any()) for f in self.fraction.values())


def matrix_load(plane: Plane, rounds: Sequence[Round], repeats: int) -> Load:
    """The load of the matrix rounds (``confirm`` 0) of the first ``repeats`` repeats, in the matrix's node
    order, under each routing."""
    rails, n = plane.leaf.shape
    round_of = np.full((repeats, n, n), -1, dtype=np.int32)
    fraction = {routing: np.ones((repeats, rails, n, n)) for routing in ROUTINGS}
    for repeat in range(repeats):
        mine = [r for r in rounds if r.repeat == repeat and r.confirm == 0 and r.pairs]
        if not mine:
            continue
        pairs = np.concatenate([np.array(r.pairs, dtype=np.int64).reshape(-1, 2) for r in mine])
        index = np.concatenate([np.full(len(r.pairs), r.index, dtype=np.int64) for r in mine])
        a, b = pairs[:, 0], pairs[:, 1]
        round_of[repeat, a, b] = round_of[repeat, b, a] = index
        same = _alike_rails(plane)
        distinct = np.flatnonzero(same == np.arange(rails))
        k = np.repeat(distinct, len(a))
        aa, bb, group = np.tile(a, len(distinct)), np.tile(b, len(distinct)), np.tile(index, len(distinct))
        for routing in ROUTINGS:
            share = plane.shares(k, aa, bb, group, routing == "destination")
            out = fraction[routing]
            out[repeat, k, aa, bb] = out[repeat, k, bb, aa] = share
            for rail in np.flatnonzero(same != np.arange(rails)):
                out[repeat, rail] = out[repeat, same[rail]]
    return Load(round_of, fraction)


def _alike_rails(plane: Plane) -> np.ndarray:
    """``[rail]``: the first rail cabled as this one is: its nodes grouped on leaves alike (in whatever leaf
    order), each leaf with the same uplink capacity and count, each node on the same port rank. Such rails fill
    alike, step for step, to the same bits (their flows share no resource, and each step's arithmetic is the
    same), so one filling serves them all: a rail-optimised fabric's eight rails are one."""
    rails = plane.leaf.shape[0]
    seen: dict[bytes, int] = {}
    out = np.arange(rails)
    for k in range(rails):
        leaf = plane.leaf[k]
        ids, first, label = np.unique(leaf, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        relabel = np.empty(len(ids), dtype=np.int64)
        relabel[order] = np.arange(len(ids))
        placed = ids[order] >= 0
        leaves = ids[order][placed]
        signature = b"|".join(
            [
                np.where(leaf >= 0, relabel[label], -1).tobytes(),
                placed.tobytes(),
                plane.capacity[leaves].tobytes(),
                plane.count[leaves].tobytes(),
                plane.rank[k].tobytes(),
            ]
        )
        out[k] = seen.setdefault(signature, k)
    return out


def taper(plane: Plane) -> float:
    """The highest ratio of a leaf's nodes to its uplink capacity among the leaves of the run that carry
    traffic between units (1 or less: non-blocking)."""
    leaf, capacity = plane.leaf, plane.capacity
    worst = 0.0
    for k in range(leaf.shape[0]):
        on = leaf[k][leaf[k] >= 0]
        if len(set(on.tolist())) < 2:
            continue
        counts = np.bincount(on, minlength=len(capacity))
        with np.errstate(divide="ignore"):
            ratio = np.where(counts > 0, counts / capacity, 0.0)
        worst = max(worst, float(ratio.max()))
    return worst
