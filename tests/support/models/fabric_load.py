"""The schedule's own flows loading a two-tier tree, and hot spots that move between rounds.

Used by the fabric model (``tests/support/models/fabric_model.py``) in the regimes that switch them on
(``Regime.loaded``, ``Regime.hot_spots``); docs/rails.md ("The fabric model's regimes") cites each property.

* **Links.** Each leaf (unit u, rail k) has ``Shape.uplinks`` uplinks, full duplex: a flow leaving the leaf
  crosses one upward, a flow entering it one downward (the spine's port to the far leaf is that leaf's uplink
  cable). Every link carries ``capacity_gbps`` (what one healthy link sustains); a degraded uplink a share of it.
* **Routing.** Static destination routing (OpenSM's ftree/updn): the destination fixes the uplink, j =
  the destination's port on its leaf modulo the uplinks, on the way up and on the way down. Adaptive routing
  (NVIDIA Quantum AR) spreads a leaf's flows over all its uplinks: its uplinks act as one pool of their summed
  capacity, each way.
* **Rates.** In each round, every flow gets its max-min fair share (progressive filling: Bertsekas and
  Gallager, "Data Networks", 6.5.2) of the links it crosses, capped by its own demand (its link's rate, its
  faults). Each direction of a pair is a flow; rounds are independent (they do not overlap in time).
* **ECMP** (``Regime.ecmp_qps``, RoCE): the switches hash each queue pair's packets onto one uplink by their
  five-tuple, whose UDP source port the queue pair keeps for its life, so its path is the same in every round
  (Gangidi et al., "RDMA over Ethernet for Distributed AI Training at Meta Scale", SIGCOMM 2024: few, long-lived
  flows of low entropy collide under ECMP and stay collided; their fix was more queue pairs per connection). NCCL
  runs a pair's transfer over a few channels, each its own queue pair (``NCCL_NCHANNELS_PER_NET_PEER``), and
  splits the bytes evenly between them: the pair is as slow as its slowest queue pair times their count.
* **Hot spots.** In each round, each (leaf, rail) is hot with the regime's chance, drawn afresh per round
  (re-measurement rounds included): its cross-unit flows, both ways, run at a depth drawn from the regime's
  range for that round only (ECMP hash collisions of large flows, Al-Fares et al., "Hedera", NSDI 2010;
  transient congestion that adaptive routing moves but does not remove).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tests.support.models.fabric_model import Fault, Shape
    from tests.support.models.fabric_regimes import Regime


ROUNDS_AT_ONCE = 64
"""Rounds solved together: enough for numpy to pay off, few enough that a 1024-node matrix stays small."""


def max_min_rates(demand: np.ndarray, links: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Max-min fair rates of flows, each capped by its ``demand``, over links of ``capacity``.

    ``links[f]`` are the link ids flow f crosses (-1 pads a flow that crosses fewer). Progressive filling done
    link by link: a flow whose demand is under every share its links offer is satisfied; else a link whose fair
    share (remaining capacity over its unfrozen flows) is no more than any share its flows see elsewhere is a
    bottleneck, and its flows are frozen at that share. Shares only rise as flows freeze, so each such step
    freezes flows at their max-min rate; several disjoint problems (rounds) are solved at once.
    """
    links = np.asarray(links, dtype=np.int64).reshape(len(demand), -1)
    remaining = np.asarray(capacity, dtype=float).copy()
    rate = np.zeros(len(demand))
    valid = links >= 0
    safe = np.where(valid, links, 0)
    active = np.asarray(demand) > 0
    while active.any():
        on = valid & active[:, None]
        count = np.bincount(links[on], minlength=len(remaining))
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(count > 0, np.maximum(remaining, 0.0) / np.maximum(count, 1), np.inf)
        offered = np.where(valid, share[safe], np.inf).min(axis=1)
        done = active & (demand <= offered)
        if not done.any():
            lowest = np.full(len(remaining), np.inf)
            np.minimum.at(lowest, links[on], np.broadcast_to(offered[:, None], links.shape)[on])
            bottleneck = (count > 0) & (share <= lowest)
            done = active & (valid & bottleneck[safe]).any(axis=1)
        got = np.where(demand <= offered, demand, offered)[done]
        rate[done] = got
        active &= ~done
        frozen = valid & done[:, None]
        remaining -= np.bincount(links[frozen], np.broadcast_to(rate[:, None], links.shape)[frozen], len(remaining))
    return rate


def uplink_capacity(shape: Shape, faults: tuple[Fault, ...], capacity_gbps: float) -> np.ndarray:
    """``[unit, rail, uplink]``: what each uplink carries each way, a degraded one its factor of it."""
    out = np.full((shape.units, shape.rails, shape.uplinks), capacity_gbps)
    for f in faults:
        if f.kind == "uplink" and f.unit is not None and f.rail is not None and f.uplink is not None:
            out[f.unit, f.rail, f.uplink] *= f.factor
    return out


def ecmp_paths(
    shape: Shape, salt: int, qps: int, rail: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(up, down)``, each ``[flow, queue pair]``: the uplink of a -> b's leaf each of its ``qps`` queue pairs is
    hashed onto, and the far leaf's uplink it comes down (from the same spine: uplink j of every leaf goes to spine
    ``j // links_per_spine``, as ``Shape.cabling`` cables it). ``salt`` stands for the run's queue pair numbers and
    source ports: the same for every round of one run."""
    qp = np.arange(qps, dtype=np.uint64)[None, :]
    key = (rail.astype(np.uint64)[:, None] * np.uint64(1 << 20) + a.astype(np.uint64)[:, None]) * np.uint64(1 << 20)
    key = (key + b.astype(np.uint64)[:, None]) * np.uint64(64) + qp
    h = _mixed(key ^ np.uint64(salt))
    up = (h % np.uint64(shape.uplinks)).astype(np.int64)
    across = (_mixed(h) % np.uint64(shape.links_per_spine)).astype(np.int64)
    down = np.minimum(up // shape.links_per_spine * shape.links_per_spine + across, shape.uplinks - 1)
    return up, down


def _mixed(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64's): every input bit moves every output bit, as a switch's hash does."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def loaded_share(
    shape: Shape,
    regime: Regime,
    uplinks: np.ndarray,
    group: np.ndarray,
    rail: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    demand: np.ndarray,
    salt: int = 0,
) -> np.ndarray:
    """Each sample's max-min rate over its ``demand`` (1: nothing held it back), the samples of one ``group``
    being the flows that run at once (a -> b on ``rail``: one half of a round); ``uplinks`` as
    ``uplink_capacity`` gives them; ``salt``: the run's ECMP hashing (:func:`ecmp_paths`)."""
    share = np.ones(len(a))
    ua, ub = a // shape.unit, b // shape.unit
    cross = np.flatnonzero((ua != ub) & (demand > 0))
    # Rounds are independent problems: solved a block of rounds at a time, memory stays that block's.
    order = cross[np.argsort(group[cross], kind="stable")]
    bounds = np.searchsorted(group[order], np.arange(0, int(group.max(initial=0)) + 1 + ROUNDS_AT_ONCE, ROUNDS_AT_ONCE))
    for lo, hi in itertools.pairwise(bounds):
        block = order[lo:hi]
        if len(block):
            first = int(group[block].min())
            g, k, d = group[block] - first, rail[block], demand[block]
            if regime.ecmp_qps:
                rate = _ecmp_rates(shape, regime.ecmp_qps, uplinks, salt, g, k, a[block], b[block], d)
            else:
                rate = _round_rates(shape, regime, uplinks, g, k, ua[block], ub[block], b[block], d)
            share[block] = rate / d
    return share


def _round_rates(
    shape: Shape,
    regime: Regime,
    uplinks: np.ndarray,
    g: np.ndarray,
    k: np.ndarray,
    up_unit: np.ndarray,
    down_unit: np.ndarray,
    b: np.ndarray,
    demand: np.ndarray,
) -> np.ndarray:
    """The max-min rates of cross-unit flows of rounds ``g`` (numbered from 0): up through their leaf's uplinks,
    down through the far leaf's."""
    groups = int(g.max()) + 1
    if regime.static_routing:
        j = b % shape.unit % shape.uplinks
        per_round = shape.units * shape.rails * shape.uplinks
        up = ((g * shape.units + up_unit) * shape.rails + k) * shape.uplinks + j
        down = ((g * shape.units + down_unit) * shape.rails + k) * shape.uplinks + j
        each = np.tile(uplinks.ravel(), groups)
    else:
        per_round = shape.units * shape.rails
        up = (g * shape.units + up_unit) * shape.rails + k
        down = (g * shape.units + down_unit) * shape.rails + k
        each = np.tile(uplinks.sum(axis=2).ravel(), groups)
    capacity = np.concatenate([each, each])
    links = np.column_stack([up, down + groups * per_round])
    return max_min_rates(demand, links, capacity)


def _ecmp_rates(
    shape: Shape,
    qps: int,
    uplinks: np.ndarray,
    salt: int,
    g: np.ndarray,
    k: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    demand: np.ndarray,
) -> np.ndarray:
    """The rates of cross-unit flows of rounds ``g`` whose queue pairs ECMP hashed onto fixed uplinks: each queue
    pair gets its max-min share of the two it crosses for its part of the bytes, and the flow moves at its slowest
    queue pair's rate times their count (the bytes are split evenly, the transfer ends with its last part)."""
    groups = int(g.max()) + 1
    up, down = ecmp_paths(shape, salt, qps, k, a, b)
    per_round = shape.units * shape.rails * shape.uplinks
    leaf_up = ((g * shape.units + a // shape.unit) * shape.rails + k) * shape.uplinks
    leaf_down = ((g * shape.units + b // shape.unit) * shape.rails + k) * shape.uplinks
    each = np.tile(uplinks.ravel(), groups)
    capacity = np.concatenate([each, each])
    links = np.stack([leaf_up[:, None] + up, leaf_down[:, None] + down + groups * per_round], axis=-1)
    part = np.repeat(demand / qps, qps)
    rate = max_min_rates(part, links.reshape(len(part), 2), capacity).reshape(-1, qps)
    return rate.min(axis=1) * qps


def hot_spot_depths(shape: Shape, regime: Regime, rng: np.random.Generator, groups: int) -> np.ndarray:
    """``[round, unit, rail]``: the factor each leaf's cross-unit flows run at in each round (1: not hot)."""
    size = (groups, shape.units, shape.rails)
    hot = rng.random(size) < regime.hot_spots
    return np.where(hot, rng.uniform(*regime.hot_spot_depth, size), 1.0)


def hot_spot_factor(
    shape: Shape, depths: np.ndarray, group: np.ndarray, rail: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Each sample's hot-spot factor: a cross-unit flow runs at its hotter leaf's depth in its own round."""
    ua, ub = a // shape.unit, b // shape.unit
    factor = np.minimum(depths[group, ua, rail], depths[group, ub, rail])
    return np.where(ua != ub, factor, 1.0)
