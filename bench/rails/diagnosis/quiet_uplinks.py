"""Uplinks named from the quiet pass (``bench.rails.plan.remeasure``), in cells between units that the switch
verdicts set aside as the fabric's load (``bench.rails.diagnosis.switches``): under ECMP every flow between units
reproduces beside the others, so only flows measured one per leaf tell a degraded uplink's from the collided
ones, and only the ones held low when measured alone again tell a degraded path from noise
(``bench.rails.diagnosis.alone``).
"""

from __future__ import annotations

import numpy as np

from bench.rails.diagnosis import alone, noise
from bench.rails.diagnosis.leaves import SwitchFault
from bench.rails.diagnosis.switch_paths import Paths, far_leaves, hub_nodes, is_routed, is_spread, uplink
from bench.rails.plan.fabric_map import FabricMap


def quiet_uplinks(
    paths: Paths,
    fabric: FabricMap,
    ks: list[int],
    tries: int,
    judged: list[int] | None = None,
    *,
    routed_only: bool = False,
    own: bool = False,
) -> list[SwitchFault]:
    """In cells set aside as load, the uplinks whose flows the quiet pass held low alone (:func:`_held_uplink`): on
    one rail of the group (a spine slows most of them), at one leaf. Under ECMP every flow between units reproduces
    beside the others (collisions), so only one flow per leaf tells a degraded uplink's flows, the slowest
    suspects, from the ones a collision slowed, and only doing it again tells them from noise's heavy tail.

    One sample a cell, slower than noise gives that many on its own rail, named a healthy uplink in 1 of 1000 clean
    ``ecmp`` runs at 64 x 8 with sixteen quiet cells a leaf; the cells held low named every uplink it had named
    in 200 fault scenarios of each of ``ecmp``, ``tapered-ecmp``, ``hotspots`` and ``noisy``, so it is the only
    rule (docs/rails.md, "The fabric's cabling", its "Flows held low alone"). ``judged``: the rails of the group to
    judge (default: every one); ``routed_only``: only a static route's shape (:func:`_held_uplink`); ``own``: the
    cells held low against their own ends, at the run's own rate (``alone.OwnEnds``), not the rail's mark."""
    if paths.quiet is None:
        return []
    held = paths.held_quiet
    rate = alone.LOW_QUANTILE
    if own:
        held, rate = (None, rate) if paths.own is None else (paths.own.held, paths.own.rate)
    out = []
    for k in ks if judged is None else judged:
        fault = _held_uplink(paths, fabric, k, ks, tries, held, rate, routed_only)
        if fault is not None:
            out.append(fault)
    return out


def _held_uplink(
    paths: Paths,
    fabric: FabricMap,
    k: int,
    ks: list[int],
    tries: int,
    held_quiet: np.ndarray | None,
    rate: float,
    routed_only: bool = False,
) -> SwitchFault | None:
    """Rail k's uplink from its quiet cells held low (``bench.rails.diagnosis.alone``): more of them at one leaf
    than healthy paths hold low in that many samples, family-wise over every leaf of the group's rails and the
    groups tried, on few of the group's rails (most is a spine's shape, which :meth:`Paths.quiet_holds` judges).
    Two or more must spread over the leaf's nodes; one alone (measured twice more, so it can stand) must have
    both ends clean within their units, or it is an end's cable, for the links' rules."""
    if held_quiet is None:
        return None
    on = [bool(((held_quiet[j] > 0) & paths.upper).any()) for j in ks]
    if 2 * sum(on) > len(ks):
        return None
    samples = held_quiet[k]
    held = samples > 0
    near = _quiet_leaf(paths, k, held)
    if near is None:
        return None
    assert paths.quiet is not None  # quiet_uplinks runs only where the pass did
    mine = paths.quiet[k] & (near[:, None] | near[None, :])
    at_leaf = mine & paths.upper
    count = int((held & paths.upper).sum())
    leaves = sum(len(paths.leaves_on[j]) for j in ks) * max(1, tries)
    chance = noise.poisson_sf(count, int(at_leaf.sum()) * alone.chance_held(int(samples[held].min()), rate))
    if chance * leaves > noise.NAME_FALSE_ALARMS:
        return None
    if routed_only and count >= 2:
        # A static route's: every flow into a node from other units takes the uplink its port fixes, so a degraded
        # uplink holds that node low with all its partners alone, while its cable would slow its own unit too
        # (``switch_paths.is_routed``). Only where asked: where the spine's rule set the cells between units aside,
        # the matrix's own rule names a hub's uplink at its leaf, and this one would add the far leaf.
        hubs = [x for x in hub_nodes(held, mine) if not (paths.reproduces[k][x] & paths.inside[k][x]).any()]
        shaped = is_routed(held, mine, hubs)
    elif count >= 2:
        shaped = is_spread(held)  # one node's flows are its cable's
    elif routed_only:
        return None
    else:
        ends = np.flatnonzero(held.any(axis=0))
        shaped = not (paths.reproduces[k][ends] & paths.inside[k][ends]).any()
    return _uplink_at(paths, fabric, k, near, held) if shaped else None


def _uplink_at(paths: Paths, fabric: FabricMap, k: int, near: np.ndarray, held: np.ndarray) -> SwitchFault | None:
    """Rail k's uplink at the leaf of nodes ``near``, from its cells ``held`` low (``[a, b]``), where nothing like it
    slows the leaf's cells within its unit (a leaf, for the leaves' rule)."""
    mine = paths.cross[k] & (near[:, None] | near[None, :])
    within = paths.inside[k] & near[:, None] & near[None, :]
    if paths.switch_inside(k, within):
        return None
    return uplink(paths, fabric, k, int(paths.leaf[k][near][0]), mine, far_leaves(held, near, paths.leaf[k]))


def _quiet_leaf(paths: Paths, k: int, slow: np.ndarray) -> np.ndarray | None:
    """``[node]``: the nodes of rail k's leaf at an end of every slow quiet cell (``slow``, ``[a, b]``); None where
    no one leaf is."""
    a, b = np.nonzero(slow)
    if not len(a):
        return None
    for index in paths.leaves_on[k]:
        near = paths.leaf[k] == index
        if bool((near[a] | near[b]).all()):
            return near
    return None
