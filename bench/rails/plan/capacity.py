"""What the fabric can carry in each round of the pair matrix: every pair's max-min fair share of its uplinks.

A pair on rail k whose nodes sit on one leaf crosses only that leaf: it runs at its links' rate whatever else
the round runs. A pair between two leaves sends one flow each way, and each flow leaves its source's leaf
through that leaf's uplinks and enters its destination's leaf through the destination leaf's (an uplink cable
is full duplex: the way up and the way down are separate capacities). In a rail-optimised two-tier tree every
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


def fair_shares(leaf_a: np.ndarray, leaf_b: np.ndarray, group: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per cell (parallel arrays): the fraction of a node link the pair gets, the lower of its two flows'
    max-min fair shares among the flows of its own ``group`` (the round it runs in).

    ``leaf_a``/``leaf_b``: the leaf of each end (-1 where the cabling does not place it: no expectation);
    ``capacity``: ``[leaf]`` from :func:`leaf_capacity`. Cells within one leaf, or unplaced, get 1."""
    out = np.full(len(leaf_a), FULL)
    cross = np.flatnonzero((leaf_a != leaf_b) & (leaf_a >= 0) & (leaf_b >= 0))
    if not len(cross):
        return out
    la, lb, g = leaf_a[cross].astype(np.int64), leaf_b[cross].astype(np.int64), group[cross].astype(np.int64)
    leaves = len(capacity)
    # Flow 2i goes a -> b (up at a's leaf, down at b's), flow 2i+1 b -> a. Resource (group, leaf, way).
    src = np.stack([la, lb], axis=1).ravel()
    dst = np.stack([lb, la], axis=1).ravel()
    flow_group = np.repeat(g, 2)
    up = (flow_group * leaves + src) * 2
    down = (flow_group * leaves + dst) * 2 + 1
    keys, inverse = np.unique(np.concatenate([up, down]), return_inverse=True)
    first, second = inverse[: len(up)], inverse[len(up) :]
    cap = capacity[(keys // 2) % leaves]
    rate = _fill(first, second, cap, np.unique(flow_group, return_inverse=True)[1])
    out[cross] = np.minimum(rate[0::2], rate[1::2])
    return out


def _fill(first: np.ndarray, second: np.ndarray, cap: np.ndarray, flow_group: np.ndarray) -> np.ndarray:
    """Progressive filling: each flow crosses resources ``first`` and ``second`` (capacities ``cap``) and its
    own node link (1); ``flow_group`` keeps rounds apart (their flows never share a resource in time)."""
    rate = np.zeros(len(first))
    active = np.ones(len(first), dtype=bool)
    used = np.zeros(len(cap))
    groups = int(flow_group.max()) + 1
    while active.any():
        count = np.bincount(first[active], minlength=len(cap)) + np.bincount(second[active], minlength=len(cap))
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(count > 0, (cap - used) / count, np.inf)
        # Every active flow of a round has grown alike so far: the round's next step is its lowest level.
        mine = np.minimum(np.minimum(level[first], level[second]), FULL)
        lowest = np.full(groups, np.inf)
        np.minimum.at(lowest, flow_group[active], mine[active])
        done = active & (mine <= lowest[flow_group] * (1 + 1e-12))
        rate[done] = mine[done]
        np.add.at(used, first[done], mine[done])
        np.add.at(used, second[done], mine[done])
        active &= ~done
    return rate


@dataclass(frozen=True, eq=False)
class Load:
    """The matrix's rounds on the fabric: where each pair ran, and what the fabric could give it there."""

    round_of: np.ndarray
    """``[repeat, a, b]``: the round (within its repeat) the pair ran in; -1 where it did not run."""
    fraction: np.ndarray
    """``[repeat, rail, a, b]``: the share of a node link the pair could get in that round (1: all of it)."""

    @property
    def loaded(self) -> bool:
        """Whether any pair was expected below its links' rate (a tapered tree that the schedule fills)."""
        return bool((self.fraction < FULL).any())


def matrix_load(leaf: np.ndarray, capacity: np.ndarray, rounds: Sequence[Round], repeats: int) -> Load:
    """The load of the matrix rounds (``confirm`` 0) of the first ``repeats`` repeats; ``leaf`` is
    ``[rail, node]`` in the matrix's order (-1: unplaced)."""
    rails, n = leaf.shape
    round_of = np.full((repeats, n, n), -1, dtype=np.int32)
    fraction = np.ones((repeats, rails, n, n))
    for repeat in range(repeats):
        mine = [r for r in rounds if r.repeat == repeat and r.confirm == 0 and r.pairs]
        if not mine:
            continue
        pairs = np.concatenate([np.array(r.pairs, dtype=np.int64).reshape(-1, 2) for r in mine])
        index = np.concatenate([np.full(len(r.pairs), r.index, dtype=np.int64) for r in mine])
        a, b = pairs[:, 0], pairs[:, 1]
        round_of[repeat, a, b] = round_of[repeat, b, a] = index
        fraction[repeat] = cells_load(leaf, capacity, a, b, index)
    return Load(round_of, fraction)


def cells_load(leaf: np.ndarray, capacity: np.ndarray, a: np.ndarray, b: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: the fraction each pair ``(a[i], b[i])`` could get on every rail, running beside the
    other pairs of its ``group`` (rails are separate planes: each rail's leaves carry only that rail)."""
    rails, n = leaf.shape
    out = np.ones((rails, n, n))
    for k in range(rails):
        share = fair_shares(leaf[k, a], leaf[k, b], group, capacity)
        out[k, a, b] = out[k, b, a] = share
    return out


def taper(leaf: np.ndarray, capacity: np.ndarray) -> float:
    """The highest ratio of a leaf's nodes to its uplink capacity among the leaves of the run that carry
    traffic between units (1 or less: non-blocking)."""
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
