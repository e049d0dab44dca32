"""Parts above the node, named from the pair matrix when the fabric's cabling is known: leaf, uplink, spine.

In a rail-optimised fat tree a pair on rail k crosses its nodes' cables and their rail-k leaf; when the two
nodes sit on different leaves (different units), it also crosses an uplink of each leaf and a spine, one per
flow: adaptive routing spreads a pair's flows over the spines afresh for every transfer. So each part slows
its own pattern of cells ``[rail, a, b]``:

* a **leaf** (all its ports): every cell with an end on it, within its unit and across units, every sample
  (named by ``bench.rails.diagnosis.leaves``);
* an **uplink** of leaf L: the cells that cross from L to another leaf of its rail, in the samples where a flow
  took that uplink (some, or all when L has one uplink), and no cell within L's unit;
* a **spine**: the cells that cross between units on every rail whose leaves it joins, in some samples, and
  none within a unit.

From bandwidth alone one uplink of a leaf cannot be told from another (the flows that cross them are the
same), nor, between two units only, an uplink of one unit's leaf from the matching uplink of the other's: the
parts named are the smallest set the measurements can tell apart, each with its cables to check.

The evidence for a part is its count of suspects that reproduced, and of those slow in every re-measurement,
each against what noise alone gives over that many cells (``noise.poisson_sf`` with the fabric's own rate of
slow samples, family-wise over the parts tried and the two counts): a part slow in every sample stands out by
the second where a noisy run's transients make the first common. And its shape: spread over the leaf's nodes
(one node's cable is not an uplink) and absent within the unit (an uplink carries no traffic inside it).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bench.rails.diagnosis import alone, company, leaves, noise
from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.leaves import SwitchFault
from bench.rails.diagnosis.persistence import Rounds
from bench.rails.plan.fabric_map import FabricMap


def _spread(reproduces: np.ndarray) -> bool:
    """The reproducing suspects ``[a, b]`` are at least two, and no node is in more than half of them: one
    node's cable (seen from either end) is not a switch's fault."""
    a, b = np.nonzero(np.triu(reproduces, k=1))
    if len(a) < 2:
        return False
    counts = np.bincount(np.concatenate([a, b]))
    return 2 * int(counts.max()) <= len(a)


def _hubs(reproduces: np.ndarray, mine: np.ndarray) -> list[int]:
    """Nodes slow with most of their cells in ``mine`` (``[a, b]``): under static routing (OpenSM's ftree or
    updn) a pair's flows always take the uplink its destination's port fixes, so a degraded uplink slows one
    node's every flow into its leaf from other units, and every flow out of the leaf to the nodes on that port
    of the other units: it shows as a few nodes slow with (nearly) all of their partners across units."""
    count = mine.sum(axis=1)
    return [int(x) for x in np.flatnonzero((2 * reproduces.sum(axis=1) > count) & (count >= 2))]


def _routed(reproduces: np.ndarray, mine: np.ndarray, hubs: list[int]) -> bool:
    """The reproducing suspects in ``mine`` are a static route's: hubs (:func:`_hubs`, none of them slow inside
    its own unit, which a cable would be) and at least half of the suspects at a hub. A hub is spread over
    every partner it has across units, which no single cable is without also slowing its own unit."""
    if not hubs:
        return False
    a, b = np.nonzero(np.triu(reproduces & mine, k=1))
    at_hub = np.isin(a, hubs) | np.isin(b, hubs)
    return len(a) >= 2 and 2 * int(at_hub.sum()) >= len(a)


@dataclass(frozen=True)
class _Null:
    """What noise alone gives: reproducing suspects per cell, suspects slow in every re-measurement per cell
    (None without re-measurements), and the number of parts tried."""

    per_cell: float
    tries: int
    always_per_cell: float | None = None

    def significant(self, count: int, cells: int, always: int = 0) -> bool:
        return self.significant_at(count, cells, noise.NAME_FALSE_ALARMS, always)

    def significant_at(self, count: int, cells: int, alpha: float, always: int = 0) -> bool:
        """``count`` reproducing suspects, ``always`` of them slow in every pass, over ``cells`` cells: beyond
        noise on either count, the two tests sharing ``alpha`` (Bonferroni). A part slow in every sample says
        so in the second where a noisy run's transients make the first common."""
        tail = noise.poisson_sf(count, cells * self.per_cell)
        tests = 1
        if self.always_per_cell is not None:
            tail, tests = min(tail, noise.poisson_sf(always, cells * self.always_per_cell)), 2
        return tail * tests * max(1, self.tries) <= alpha


@dataclass(frozen=True)
class _Paths:
    """The cells between units and within units, rail by rail, that the spines and uplinks are judged on."""

    leaf: np.ndarray
    """``[rail, node]``: the leaf each node's link is on, -1 where the cabling does not place it."""
    cross: np.ndarray
    """``[rail, a, b]``: measured cells between two placed nodes on different leaves."""
    inside: np.ndarray
    """``[rail, a, b]``: measured cells between two placed nodes on one leaf."""
    reproduces: np.ndarray
    """``[rail, a, b]``: measured suspects that reproduced."""
    always: np.ndarray
    """``[rail, a, b]``: measured suspects slow in every re-measurement."""
    upper: np.ndarray
    """``[a, b]``: each pair once."""
    leaves_on: list[list[int]]
    """Each rail's leaves, in index order."""
    null: _Null
    between_noise: tuple[float, float | None]
    """What noise gives a cell between units (``Cells.reproduced_by_noise_in`` and
    ``reproduced_always_by_noise_in`` over those cells), the floor of an uplink's cell counts, on three rails with
    leaves or more; on fewer, the fabric-wide two, as before: there the run's rate is pooled, not a median over the
    rails, and a degraded uplink's own transients would be half the noise between units it is judged against."""
    rounds: Rounds | None = None
    """Each slow sample's round, where the schedule is known: a switch must persist over independent rounds."""
    quiet: np.ndarray | None = None
    """``[rail, a, b]``: the cells between units the quiet pass re-measured, one flow per leaf (None: no pass)."""
    slow_quiet: np.ndarray | None = None
    """``[rail, a, b]``: those slow there."""
    held_quiet: np.ndarray | None = None
    """``[rail, a, b]``: those measured alone again and low every time (``bench.rails.diagnosis.alone``)."""
    quiet_noise: float = 0.0
    """The chance that noise slows one sample on its own links: the fabric's rate within its leaves, where no flow
    ever shares an uplink (``Cells.noise_rate_in``)."""

    @classmethod
    def of(
        cls,
        cells: Cells,
        fabric: FabricMap,
        per_cell: float,
        always_per_cell: float | None,
        between_noise: tuple[float, float | None] | None = None,
    ) -> _Paths:
        leaf = leaves.by_position(fabric, cells)
        rails = len(cells.matrix.rails)
        placed = leaf >= 0
        cross = (leaf[:, :, None] != leaf[:, None, :]) & placed[:, :, None] & placed[:, None, :] & cells.measured
        inside = (leaf[:, :, None] == leaf[:, None, :]) & placed[:, :, None] & cells.measured
        upper = np.triu(np.ones(cells.measured.shape[1:], dtype=bool), k=1)
        leaves_on = [sorted(set(leaf[k][placed[k]].tolist())) for k in range(rails)]
        null = _Null(per_cell, rails + sum(len(x) for x in leaves_on), always_per_cell)
        median = sum(len(x) >= 2 for x in leaves_on) >= 3
        crossing = between_noise if between_noise is not None and median else (per_cell, always_per_cell)
        reproduces, always = cells.reproduces & cells.measured, cells.reproduces_always & cells.measured
        rounds = None
        if cells.round_of is not None and cells.round_of.shape[0] >= cells.slow_sample.shape[0]:
            # One leaf's cells at a time, as Rounds.of reads them: held all at once they were 268 MB at 1024 x 8.
            slots = (
                (k, cross[k] & (near[:, None] | near[None, :]))
                for k in range(rails)
                if len(leaves_on[k]) >= 2
                for near in (leaf[k] == index for index in leaves_on[k])
            )
            ran = ~np.isnan(cells.matrix.busbw) & cells.measured[None]
            slow = cells.slow_sample & cells.measured[None]
            # The floor of the rate of slow rounds stays the fabric-wide rate: the rate between units is hot spots'
            # and congestion's, which come a round at a time, and ``Rounds.of`` spreads a per-cell rate over a
            # round's cells as if each were independent (on ``hotspots`` at 64 x 8 a floor from the noise between
            # units put a healthy leaf's rate of slow rounds at about a half and hid degraded uplinks: 963/1000).
            rounds = Rounds.of(slow, ran, cells.round_of, reproduces, slots, per_cell, null.tries)
        quiet = None if cells.quiet is None else cells.quiet & cross
        slow_quiet = None if cells.slow_quiet is None or quiet is None else cells.slow_quiet & quiet
        held_quiet = None if cells.held_quiet is None or quiet is None else cells.held_quiet & quiet
        quiet_noise = cells.noise_rate_in(inside)
        return cls(
            leaf,
            cross,
            inside,
            reproduces,
            always,
            upper,
            leaves_on,
            null,
            crossing,
            rounds,
            quiet,
            slow_quiet,
            held_quiet,
            quiet_noise,
        )

    def quiet_holds(self, ks: list[int], tries: int) -> bool:
        """The cells between units of rails ``ks`` that the quiet pass re-measured hold more slow samples than
        noise gives that many, family-wise over ``tries`` parts (``NAME_FALSE_ALARMS``), on most of those rails;
        True where the pass measured none of them (or did not run): it can only take a verdict away.

        A flow there shares no uplink with another, however the switches hash or route: ECMP's collisions,
        which slow most flows between units when the matrix fills the uplinks and again when their round is
        re-measured, are gone, and a spine that slows the flows it carries slows them still."""
        if self.quiet is None or self.slow_quiet is None:
            return True
        mask = self.quiet[ks] & self.upper[None]
        cells = int(mask.sum())
        if not cells:
            return True
        slow = self.slow_quiet[ks] & mask
        # A spine slows its flows on every rail it joins, as it did in the matrix; an uplink, or a cable the
        # links' rules left, slows one rail's.
        on_most = 2 * int(slow.any(axis=(1, 2)).sum()) > len(ks)
        return (
            on_most
            and noise.poisson_sf(int(slow.sum()), cells * self.quiet_noise) * max(1, tries) <= noise.NAME_FALSE_ALARMS
        )

    def elevated(self, k: int, mask: np.ndarray, against: _Null | None = None) -> bool:
        """Rail k's cells in ``mask`` (``[a, b]``) hold more reproduced suspects than noise gives."""
        null = self.null if against is None else against
        cells = mask & self.upper
        return null.significant(
            int((self.reproduces[k] & cells).sum()), int(cells.sum()), int((self.always[k] & cells).sum())
        )

    def convicts(self, k: int, mask: np.ndarray, against: _Null | None = None, *, rate: bool = True) -> bool:
        """:meth:`elevated`, and where the rounds are known, persistent over independent rounds
        (``bench.rails.diagnosis.persistence``; ``rate``: against the run's rate of slow rounds): one round's
        cells repeated by its re-measurement are one piece of evidence, not many."""
        if not self.elevated(k, mask, against):
            return False
        if self.rounds is None:
            return True
        null = self.null if against is None else against
        cells = mask & self.upper
        by_cells = null.significant(0, int(cells.sum()), int((self.always[k] & cells).sum()))
        leaves = None
        if not rate:  # a spine: judged leaf by leaf (persistence.Rounds.persists), each leaf's cells made as read
            near = (self.leaf[k] == index for index in self.leaves_on[k])
            leaves = (n[:, None] | n[None, :] for n in near)
        return self.rounds.persists(k, self.reproduces[k], self.always[k], cells, by_cells, leaves)

    def switch_inside(self, k: int, mask: np.ndarray) -> bool:
        """Rail k's cells within units (``mask``) are slow the way a switch slows them: more reproduced suspects
        than noise gives, spread over several nodes (one flaky cable inside a unit is that cable's, judged
        later, and does not hide a spine or an uplink)."""
        return self.elevated(k, mask) and _spread(self.reproduces[k] & mask)


@dataclass(frozen=True)
class PathVerdict:
    """What the cells between units say of the switches: the faults named, and the cells set aside as the
    fabric's load (:func:`_spine_faults`), with the sentence that says so (None: none set aside)."""

    faults: list[SwitchFault]
    crowded: np.ndarray | None = None
    said: str | None = None


def path_faults(
    cells: Cells,
    fabric: FabricMap,
    rail_fault: np.ndarray,
    per_cell: float,
    always_per_cell: float | None,
    between_noise: tuple[float, float | None] | None = None,
) -> PathVerdict:
    """Spines, then uplinks, from the reproducing suspects between units that no cable or leaf explains;
    ``per_cell`` and ``always_per_cell``: what noise gives a cell (``Cells.reproduced_by_noise``,
    ``Cells.reproduced_always_by_noise``); ``between_noise``: the same over the cells between units alone
    (``Cells.reproduced_by_noise_in``; default: the fabric-wide two), the floor an uplink is judged against."""
    paths = _Paths.of(cells, fabric, per_cell, always_per_cell, between_noise)
    # A rail whose cells between units a leaf already explains (a slow leaf of one of two units) has nothing
    # left to say either way.
    open_rails = [k for k in range(len(cells.matrix.rails)) if not rail_fault[k] and len(paths.leaves_on[k]) >= 2]
    out, taken, crowded = _spine_faults(paths, fabric, open_rails)
    uplinks = _Uplinks.of(paths, cells, [k for k in open_rails if k not in taken])
    for k in open_rails:
        if k not in taken:
            found, load = _uplink_faults(paths, uplinks, fabric, k, cells)
            out += found
            if load.any():
                crowded = load if crowded is None else crowded | load
    if crowded is None:
        return PathVerdict(out)
    return PathVerdict(out, crowded, _crowded_said(cells, paths, crowded))


def _crowded_said(cells: Cells, paths: _Paths, crowded: np.ndarray) -> str:
    """The sentence for cells between units set aside as load: how fast they ran in the matrix, beside other flows
    between units, and alone, each against the pairs within units (in Gb/s where there are none)."""
    ks = np.flatnonzero(crowded.any(axis=(1, 2)))
    upper = paths.upper[None]
    quiet = cells.matrix.quiet if cells.matrix.quiet is not None else np.full(crowded.shape, np.nan)
    alone_cells = (paths.quiet if paths.quiet is not None else np.zeros(crowded.shape, bool))[ks] & upper
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no cell of a kind: NaN
        within = float(np.nanmedian(cells.matrix.busbw[:, ks][:, paths.inside[ks] & upper]))
        together = float(np.nanmedian(cells.matrix.busbw[:, crowded & upper]))
        alone = float(np.nanmedian(quiet[ks][alone_cells]))

    def rate(value: float) -> str:
        return f"{100 * value / within:.0f}% of the pairs within units" if within > 0 else f"{value:.0f} Gb/s"

    return (
        f"pairs between units ran at {rate(together)} in the pair matrix, beside other flows between units, and "
        f"at {rate(alone)} one flow per leaf (the quiet pass): the fabric's load between units (ECMP's hash "
        "collisions, or a taper the cabling does not show), not judged as a defect of any part"
    )


def _spine_faults(
    paths: _Paths, fabric: FabricMap, open_rails: list[int]
) -> tuple[list[SwitchFault], set[int], np.ndarray | None]:
    """Spines: every rail they join, between units, and nothing within a unit, holding in the quiet pass. Returns
    them, the rails they take (no uplink is judged there), and the cells between units set aside as load: those of
    a spine whose slowdown held in the matrix and its re-measurements but not one flow per leaf
    (``_Paths.quiet_holds``), a slowdown that needs company (None: no such)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for k in open_rails:
        if paths.cross[k].any():
            groups.setdefault(fabric.spines_of(paths.leaves_on[k]), []).append(k)
    out: list[SwitchFault] = []
    taken: set[int] = set()
    crowded = None
    for spines, ks in groups.items():
        if len(ks) < 2 or not spines:
            continue
        rail_ok = [
            paths.convicts(k, paths.cross[k], rate=False) and not paths.switch_inside(k, paths.inside[k]) for k in ks
        ]
        spread = [_spread(paths.reproduces[k] & paths.cross[k]) for k in ks]
        if all(rail_ok) and all(spread):
            mask = np.zeros_like(paths.cross)
            mask[ks] = paths.cross[ks]
            if paths.quiet_holds(ks, len(groups)):
                out.append(SwitchFault("spine", mask, None, spines, spines))
            else:
                for fault in _quiet_uplinks(paths, fabric, ks, len(groups)):
                    out.append(fault)
                    mask &= ~fault.mask
                crowded = mask if crowded is None else crowded | mask
            taken |= set(ks)
    return out, taken, crowded


def _quiet_uplinks(paths: _Paths, fabric: FabricMap, ks: list[int], tries: int) -> list[SwitchFault]:
    """In cells set aside as load, the uplinks the quiet pass still finds slow: on one rail of the group (a spine
    slows most of them), at one leaf, spread over its nodes. Under ECMP every flow between units reproduces beside
    the others (collisions), so only one flow per leaf tells a degraded uplink's flows, the slowest suspects, from
    the ones a collision slowed: rail k's quiet samples slower than noise gives that many, family-wise over the
    rails of every group tried, or its quiet cells held low when measured alone again (:func:`_held_uplink`)."""
    if paths.quiet is None or paths.slow_quiet is None:
        return []
    out = []
    for k in ks:
        fault = _slow_alone_uplink(paths, fabric, k, ks, tries) or _held_uplink(paths, fabric, k, ks, tries)
        if fault is not None:
            out.append(fault)
    return out


def _slow_alone_uplink(paths: _Paths, fabric: FabricMap, k: int, ks: list[int], tries: int) -> SwitchFault | None:
    """Rail k's uplink whose quiet samples are slow beyond noise on their own, judged as every sample is."""
    assert paths.slow_quiet is not None
    if not paths.quiet_holds([k], tries * len(ks)):
        return None
    slow = paths.slow_quiet[k]  # [a, b], both ways
    return _alone_at_leaf(paths, fabric, k, slow)


def _held_uplink(paths: _Paths, fabric: FabricMap, k: int, ks: list[int], tries: int) -> SwitchFault | None:
    """Rail k's uplink from its quiet cells held low (``bench.rails.diagnosis.alone``): more of them at one leaf
    than healthy paths hold low, family-wise over every leaf of the group's rails and the groups tried, on few of
    the group's rails (most is a spine's shape, which :meth:`_Paths.quiet_holds` judges)."""
    if paths.held_quiet is None or paths.quiet is None:
        return None
    on = [bool((paths.held_quiet[j] & paths.upper).any()) for j in ks]
    if 2 * sum(on) > len(ks):
        return None
    held = paths.held_quiet[k]
    near = _quiet_leaf(paths, k, held)
    if near is None:
        return None
    at_leaf = paths.quiet[k] & (near[:, None] | near[None, :]) & paths.upper
    leaves = sum(len(paths.leaves_on[j]) for j in ks) * max(1, tries)
    chance = noise.poisson_sf(int((held & paths.upper).sum()), int(at_leaf.sum()) * alone.chance_held())
    if chance * leaves > noise.NAME_FALSE_ALARMS:
        return None
    return _alone_at_leaf(paths, fabric, k, held)


def _alone_at_leaf(paths: _Paths, fabric: FabricMap, k: int, slow: np.ndarray) -> SwitchFault | None:
    """Rail k's uplink at the leaf of every cell ``slow`` alone (``[a, b]``), where they spread over its nodes (one
    node's are its cable's) and nothing like it slows the leaf's cells within its unit."""
    near = _quiet_leaf(paths, k, slow)
    if near is None or not _spread(slow):
        return None
    mine = paths.cross[k] & (near[:, None] | near[None, :])
    within = paths.inside[k] & near[:, None] & near[None, :]
    if paths.switch_inside(k, within):
        return None
    return _uplink(paths, fabric, k, int(paths.leaf[k][near][0]), mine, _far_leaves(slow, near, paths.leaf[k]))


def _quiet_leaf(paths: _Paths, k: int, slow: np.ndarray) -> np.ndarray | None:
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


@dataclass(frozen=True)
class _Uplinks:
    """The yardsticks an uplink is judged against: between units, and within a unit."""

    between: _Null
    inside: _Null

    @classmethod
    def of(cls, paths: _Paths, cells: Cells, rails: list[int]) -> _Uplinks:
        """Congestion where flows share uplinks reproduces between units more often than within them, on every
        rail alike; an uplink slows one rail's. So the yardstick between units is the run's own: the median
        over ``rails`` of the share of cross cells that reproduced (robust to the rail the uplink is on), when
        that is above what noise gives a cell between units (``paths.between_noise``); the same for the share
        slow in every pass.

        The floor is noise between units, not the fabric-wide rate: where congestion's reproductions are rare
        (well under one per rail, so the median over the rails is 0), the fabric-wide rate, two thirds of it
        cells within units where congestion never is, put a third as many reproductions on a rail's cross cells
        as its congestion gives, and a chance cluster on one rail was named (``tapered`` at 64 x 8, clean run 526:
        six reproduced suspects on rail 3, each reproduced in one of two passes, in six rounds, at 60-78% of
        line, against 0.2 expected fabric-wide and 1.4 from the transients between units)."""
        cross = {k: c for k in rails if (c := paths.cross[k] & paths.upper).any()}

        def run_share(found: np.ndarray, floor: float, fabric_wide: float) -> float:
            shares = [float((found[k] & c).sum()) / float(c.sum()) for k, c in cross.items()]
            return max(floor, float(np.median(shares))) if len(shares) >= 3 else fabric_wide

        (per_cell, always), null = paths.between_noise, paths.null
        between = _Null(
            run_share(paths.reproduces, per_cell, null.per_cell),
            null.tries,
            None
            if always is None or null.always_per_cell is None
            else run_share(paths.always, always, null.always_per_cell),
        )
        inside = _Null(
            cells.reproduced_by_noise_in(paths.inside),
            len(cells.matrix.nodes),
            cells.reproduced_always_by_noise_in(paths.inside),
        )
        return cls(between, inside)

    def elevated_inside(self, paths: _Paths, k: int, node: int) -> bool:
        """Node's cells within its own leaf hold more reproduced suspects than the noise within units gives, at
        the screen's family-wise level over the nodes (a cable's fault, flaky or slow, shows inside too)."""
        row = paths.inside[k, node]
        count = int((paths.reproduces[k, node] & row).sum())
        always = int((paths.always[k, node] & row).sum())
        return count >= 2 and self.inside.significant_at(count, int(row.sum()), noise.FALSE_ALARMS, always)

    def stands(self, paths: _Paths, k: int, mine: np.ndarray, within: np.ndarray) -> bool:
        """An uplink's cross cells ``mine`` (``[a, b]``) reproduce beyond what congestion gives between units,
        in an uplink's shape (spread over the leaf's nodes, or in the hubs a static route makes), and nothing
        like it within the unit. When the node with the most of them is slow inside its own unit too, a cable
        of that node may be all there is: the uplink must stand without it."""
        slow = paths.reproduces[k] & mine
        busiest = int(np.argmax(slow.sum(axis=1)))
        if self.elevated_inside(paths, k, busiest):
            mine = mine.copy()
            mine[busiest, :] = mine[:, busiest] = False
            slow = paths.reproduces[k] & mine
        hubs = [x for x in _hubs(slow, mine) if not self.elevated_inside(paths, k, x)]
        shaped = _spread(slow) or _routed(slow, mine, hubs)
        return paths.convicts(k, mine, self.between) and shaped and not paths.switch_inside(k, within)


def _most_convicted_leaf(paths: _Paths, k: int, left: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Rail k's leaf whose cross cells still ``left`` hold the most reproduced suspects: its index, that count,
    those cells and its nodes; None on a rail without leaves."""
    best = None
    for index in paths.leaves_on[k]:
        near = paths.leaf[k] == index
        mine = left & (near[:, None] | near[None, :])
        count = int((paths.reproduces[k] & mine & paths.upper).sum())
        if best is None or count > best[1]:
            best = (index, count, mine, near)
    return best


def _uplink_faults(
    paths: _Paths, uplinks: _Uplinks, fabric: FabricMap, k: int, cells: Cells
) -> tuple[list[SwitchFault], np.ndarray]:
    """Rail k's uplinks: the cross cells of one leaf, the most convicted first, while significant. And the cells
    (``[rail, a, b]``) of a leaf whose convicting flows ran as healthy ones alone (``company.needs_company``): set
    aside as the fabric's load, and the next leaf tried."""
    out: list[SwitchFault] = []
    left = paths.cross[k].copy()
    load = np.zeros_like(paths.cross)
    while True:
        best = _most_convicted_leaf(paths, k, left)
        if best is None or best[1] < 2:
            return out, load
        index, _, mine, near = best
        within = paths.inside[k] & near[:, None] & near[None, :]
        if not uplinks.stands(paths, k, mine, within):
            return out, load
        if _alone_as_healthy(paths, cells, k, mine):
            load[k] |= mine
            left &= ~mine
            continue
        fault = _uplink(paths, fabric, k, index, mine, _far_leaves(paths.reproduces[k] & mine, near, paths.leaf[k]))
        out.append(fault)
        left &= ~fault.mask[k]


def _alone_as_healthy(paths: _Paths, cells: Cells, k: int, mine: np.ndarray) -> bool:
    """Rail k's leaf cells ``mine`` (``[a, b]``): :func:`company.needs_company` of its reproduced suspects."""
    if paths.quiet is None or cells.matrix.quiet is None:
        return False
    convicting = paths.reproduces[k] & mine & paths.upper
    return company.needs_company(
        convicting, paths.always[k], paths.quiet[k], cells.matrix.quiet[k], float(cells.expected[k])
    )


def _uplink(paths: _Paths, fabric: FabricMap, k: int, index: int, mine: np.ndarray, far: list[int]) -> SwitchFault:
    """Rail k's uplink of leaf ``index``, convicted by its cells between units ``mine`` (``[a, b]``) whose slow ones
    lead to the leaves ``far``."""
    chosen = [index, *far] if len(far) == 1 else [index]
    if len(far) == 1:  # between two leaves only: either one's uplinks carry every slow flow
        other = paths.leaf[k] == far[0]
        mine = mine & (other[:, None] | other[None, :])
    mask = np.zeros_like(paths.cross)
    mask[k] = mine
    names = tuple(fabric.leaves[i].name for i in chosen)
    ports = tuple(str(c) for i in chosen for c in fabric.leaves[i].uplinks)
    return SwitchFault("uplink", mask, k, names, ports, _unit(fabric, chosen[0]) if len(chosen) == 1 else None)


def _far_leaves(reproduces: np.ndarray, near: np.ndarray, leaf: np.ndarray) -> list[int]:
    """The leaves at the far end of the reproducing suspects (``[a, b]``, one end in ``near``)."""
    a, b = np.nonzero(np.triu(reproduces, k=1))
    far = np.where(near[a], b, a)
    return sorted(set(leaf[far].tolist()) - {-1})


def _unit(fabric: FabricMap, index: int) -> str | None:
    unit = fabric.leaves[index].unit
    return fabric.unit_names[unit] if 0 <= unit < len(fabric.unit_names) else None
