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

from bench.rails.diagnosis import company, noise, sparse
from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.leaves import SwitchFault
from bench.rails.diagnosis.persistence import leaf_ends
from bench.rails.diagnosis.quiet_uplinks import quiet_uplinks
from bench.rails.diagnosis.switch_paths import Null, Paths, far_leaves, hub_nodes, is_routed, is_spread, uplink
from bench.rails.plan.fabric_map import FabricMap


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
    paths = Paths.of(cells, fabric, per_cell, always_per_cell, between_noise)
    # A rail whose cells between units a leaf already explains (a slow leaf of one of two units) has nothing
    # left to say either way.
    open_rails = [k for k in range(len(cells.matrix.rails)) if not rail_fault[k] and len(paths.leaves_on[k]) >= 2]
    out, taken, crowded = _spine_faults(paths, fabric, open_rails)
    uplinks = _Uplinks.of(paths, cells, [k for k in open_rails if k not in taken])
    for k in open_rails:
        if k not in taken:
            found, load = _uplink_faults(paths, uplinks, fabric, k, cells)
            if not found and not load.any():
                found = _held_alone(paths, fabric, open_rails, taken, k)
            out += found
            if load.any():
                crowded = load if crowded is None else crowded | load
    if crowded is None:
        return PathVerdict(out)
    return PathVerdict(out, crowded, _crowded_said(cells, paths, crowded))


def _crowded_said(cells: Cells, paths: Paths, crowded: np.ndarray) -> str:
    """The sentence for cells between units set aside as load: how fast they ran in the matrix, beside other flows
    between units, and alone, each against the pairs within units (in Gb/s where there are none)."""
    ks = np.flatnonzero(crowded.any(axis=(1, 2)))
    upper = paths.upper[None]
    measured = cells.matrix.alone
    quiet = np.zeros(0)
    if measured is not None and paths.quiet is not None:  # the quiet pass's samples at the cells still judged
        on = np.isin(measured.rail, ks) & paths.quiet[measured.rail, measured.low, measured.high]
        quiet = measured.first[on]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no cell of a kind: NaN
        within = float(np.nanmedian(cells.matrix.busbw[:, ks][:, paths.inside[ks] & upper]))
        together = float(np.nanmedian(cells.matrix.busbw[:, crowded & upper]))
        alone = float(np.nanmedian(quiet))

    def rate(value: float) -> str:
        return f"{100 * value / within:.0f}% of the pairs within units" if within > 0 else f"{value:.0f} Gb/s"

    return (
        f"pairs between units ran at {rate(together)} in the pair matrix, beside other flows between units, and "
        f"at {rate(alone)} one flow per leaf (the quiet pass): the fabric's load between units (ECMP's hash "
        "collisions, or a taper the cabling does not show), not judged as a defect of any part"
    )


def _held_alone(paths: Paths, fabric: FabricMap, open_rails: list[int], taken: set[int], k: int) -> list[SwitchFault]:
    """Rail k's uplink from its flows held low alone (``quiet_uplinks``) in a static route's shape, where the matrix's
    own evidence named none: on a partial unit (48 x 8, a leaf of 16 nodes under static routing, scenario 1031006
    of ``noisy``) the degraded uplink's hub had 16 partners across units, too few rounds to persist among the
    matrix's noise, while the quiet pass held all 16 low in five samples each. Family-wise over the leaves of the
    rails judged with it (those reaching the same spines) and the groups of them.

    A hub's shape only: held cells spread over a leaf's nodes are also what a hot spot makes, one that visits the
    same leaf in each round of its flows alone (the quiet pass runs one flow per leaf a round, so a hot leaf holds
    all of that round's), and read here they named a healthy uplink in 3 of 400 ``hotspots`` and ``tapered-ar`` runs
    at 64 x 8. Where the cells between units are set aside as load (``_spine_faults``) the spread shape is read, as
    no hot spot sets them aside."""
    groups = _spine_groups(paths, fabric, [j for j in open_rails if j not in taken])
    ks = groups[fabric.spines_of(paths.leaves_on[k])]
    routed = quiet_uplinks(paths, fabric, ks, len(groups), [k], routed_only=True)
    return routed or quiet_uplinks(paths, fabric, ks, len(groups), [k], own=True)


def _spine_groups(paths: Paths, fabric: FabricMap, rails: list[int]) -> dict[tuple[str, ...], list[int]]:
    """``rails`` by the spines their leaves reach: the rails one spine's fault would slow together."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for k in rails:
        groups.setdefault(fabric.spines_of(paths.leaves_on[k]), []).append(k)
    return groups


def _spine_faults(
    paths: Paths, fabric: FabricMap, open_rails: list[int]
) -> tuple[list[SwitchFault], set[int], np.ndarray | None]:
    """Spines: every rail they join, between units, and nothing within a unit, holding in the quiet pass. Returns
    them, the rails they take (no uplink is judged there), and the cells between units set aside as load: those of
    a spine whose slowdown held in the matrix and its re-measurements but not one flow per leaf
    (``Paths.quiet_holds``), a slowdown that needs company (None: no such)."""
    groups = _spine_groups(paths, fabric, [k for k in open_rails if paths.cross[k].any()])
    out: list[SwitchFault] = []
    taken: set[int] = set()
    crowded = None
    for spines, ks in groups.items():
        if len(ks) < 2 or not spines:
            continue
        shaped = all(
            is_spread(paths.reproduces[k] & paths.cross[k]) and not paths.switch_inside(k, paths.inside[k]) for k in ks
        )
        mask = np.zeros_like(paths.cross)
        mask[ks] = paths.cross[ks]
        if not shaped:
            # Nothing between units stands out in the matrix: under ECMP with leaves of 8 or 16 every flow between
            # units collides there, a degraded spine's as much as any. Its flows alone, held low against their own
            # ends on most rails, are the only evidence there is (Paths.own_held). Nor where a spine slows most of
            # the matrix: its level is the slow one; the cells between units sunk under the floor within units, and
            # their flows alone low again rail by rail, are the spine's (Paths.sunk_held).
            if paths.own_held(ks, len(groups)) or paths.sunk_held(ks, len(groups)):
                out.append(SwitchFault("spine", mask, None, spines, spines))
                taken |= set(ks)
            continue
        persistent = [k for k in ks if paths.convicts(k, paths.cross[k], rate=False)]
        if len(persistent) < len(ks):
            # Slow between units on every rail, persistent over rounds on some only: under ECMP at 1024 x 8 the
            # collisions are as many as the spine's slow flows there and move with the rounds, and a degraded
            # spine held persistent on 3 rails of 8 (scenario 1002003). Its flows measured alone decide, held low
            # in every sample there (Paths.quiet_held): the collisions are gone, and the spine's slow flows stay
            # slow, while a hot spot that moves under adaptive routing slows a flow alone only now and then.
            # Or the spine slowed most of the matrix between units, sinking the level the matrix is judged against so
            # that few rails even stand elevated, and its flows alone say so rail by rail (Paths.sunk_held): with
            # leaves of 8 under adaptive routing and a 2:1 taper, 223-236 of 224-238 quiet flows a rail low again,
            # elevated on 1-2 rails of 8 (``tapered-ar`` at 256 x 8, scenarios 1096007 and 1096033 of 32 rounds).
            quiet = all(paths.elevated(k, paths.cross[k]) for k in ks) and paths.quiet_held(ks, len(groups))
            if quiet or paths.sunk_held(ks, len(groups)):
                out.append(SwitchFault("spine", mask, None, spines, spines))
                taken |= set(ks)
                continue
            # No spine: a rail persistent where the others are not may be one leaf's degraded uplink among ECMP's
            # collisions, which hide it from the matrix's own evidence (the most collided leaf of the rail is
            # tried first there, and fails). Its flows measured alone tell it, as where no rail is persistent:
            # at 1024 x 8 the uplink of scenario 1002038 held rail 5 persistent, and went unnamed.
            for fault in quiet_uplinks(paths, fabric, ks, len(groups), persistent):
                out.append(fault)
                if fault.rail_pos is not None:
                    taken.add(fault.rail_pos)
            continue
        if paths.quiet_holds(ks, len(groups)):
            out.append(SwitchFault("spine", mask, None, spines, spines))
        else:
            for fault in quiet_uplinks(paths, fabric, ks, len(groups)):
                out.append(fault)
                mask &= ~fault.mask
            crowded = mask if crowded is None else crowded | mask
        taken |= set(ks)
    return out, taken, crowded


@dataclass(frozen=True)
class _Uplinks:
    """The yardsticks an uplink is judged against: between units, and within a unit."""

    between: Null
    inside: Null

    @classmethod
    def of(cls, paths: Paths, cells: Cells, rails: list[int]) -> _Uplinks:
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
        between = Null(
            run_share(paths.reproduces, per_cell, null.per_cell),
            null.tries,
            None
            if always is None or null.always_per_cell is None
            else run_share(paths.always, always, null.always_per_cell),
        )
        # The noise within units the paths read (Paths.inside_null), tried over the nodes rather than the parts.
        inside = paths.inside_null
        return cls(between, Null(inside.per_cell, len(cells.matrix.nodes), inside.always_per_cell))

    def elevated_inside(self, paths: Paths, k: int, node: int) -> bool:
        """Node's cells within its own leaf hold more reproduced suspects than the noise within units gives, at
        the screen's family-wise level over the nodes (a cable's fault, flaky or slow, shows inside too)."""
        row = paths.inside[k, node]
        count = int((paths.reproduces[k, node] & row).sum())
        always = int((paths.always[k, node] & row).sum())
        return count >= 2 and self.inside.significant_at(count, int(row.sum()), noise.FALSE_ALARMS, always)

    def stands(self, paths: Paths, k: int, mine: np.ndarray, within: np.ndarray) -> bool:
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
        hubs = [x for x in hub_nodes(slow, mine) if not self.elevated_inside(paths, k, x)]
        # A static route's uplink slows flows both ways: into its leaf at the node its port serves, and out of the
        # leaf, from every node of it, to the nodes it serves in other units. Suspects that all meet at one node are
        # that node's link at the edge of the line, slow only where the flows between units add their spread
        # (``tapered-ecmp`` with leaves of 8 at 64 x 8, clean run 31196: node051's link on rail 2, at the regime's
        # floor, slow with 10 of its 14 partners across units and clean within its unit of 8, named as its uplink).
        shaped = is_spread(slow) or (is_routed(slow, mine, hubs) and not self._one_node_and_noise(paths, k, mine))
        return paths.convicts(k, mine, self.between) and shaped and not paths.switch_inside(k, within)

    def _one_node_and_noise(self, paths: Paths, k: int, mine: np.ndarray) -> bool:
        """The reproducing suspects in ``mine`` meet at one node but for what noise between units gives: the node
        holds most of them and the rest would not convict an uplink on their own (where all meet at it, none is
        left). A static route's uplink also slows the flows out of its leaf to the nodes its port serves in other
        units; one node's flaky link slows its own flows and nothing else, and a noisy run's stray suspect beside
        them is no second half (``noisy`` at 144 x 8 in leaves of 8, scenario 1530008: node107's flaky cable on
        rail 5, slow with 18 partners across units and 1 within its unit, beside one stray suspect of node105's,
        was named as its leaf's uplink)."""
        slow = paths.reproduces[k] & mine
        counts = slow.sum(axis=1)
        busiest = int(np.argmax(counts))
        rest = mine.copy()
        rest[busiest, :] = rest[:, busiest] = False
        return 2 * int(counts[busiest]) > int(slow.sum()) // 2 and not paths.convicts(k, rest, self.between)


def _most_convicted_leaf(paths: Paths, k: int, left: np.ndarray) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """Rail k's leaf whose cross cells still ``left`` hold reproduced suspects in the most independent rounds
    (the most suspects among equals; every suspect where the rounds are not known): its index, its count of
    suspects, those cells and its nodes; None on a rail without leaves.

    Rounds first, as the verdict counts them (``persistence``): one hot round gives a healthy leaf many cells and
    one piece of evidence. By cells, a rail of three leaves had a hot round's 32 cells between two healthy leaves
    put one of them first (66 cells in 14 rounds), above the degraded uplink's leaf (48 in 17), and its failing
    ended the search (``hotspots`` at 96 x 8, scenario 1031006)."""
    if not paths.leaves_on[k]:
        return None
    # Counted from the reproduced suspects' ends, each cell once per leaf it touches: a mask per leaf was a
    # matrix-sized pass per leaf (at 2048 x 8, 64 leaves of a 2048 x 2048 plane, on every rail).
    leaf = paths.leaf[k]
    a, b = np.nonzero(paths.reproduces[k] & left & paths.upper)
    span = max(paths.leaves_on[k]) + 1
    counts = np.bincount(leaf_ends(leaf, a, b), minlength=span)
    rounds = counts if paths.rounds is None else paths.rounds.leaf_rounds(paths.rounds.slow, k, a, b, leaf, span)
    index = max(paths.leaves_on[k], key=lambda i: (int(rounds[i]), int(counts[i])))  # the first of the most
    near = leaf == index
    return index, int(counts[index]), left & (near[:, None] | near[None, :]), near


def _uplink_faults(
    paths: Paths, uplinks: _Uplinks, fabric: FabricMap, k: int, cells: Cells
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
        fault = uplink(paths, fabric, k, index, mine, far_leaves(paths.reproduces[k] & mine, near, paths.leaf[k]))
        out.append(fault)
        left &= ~fault.mask[k]


def _alone_as_healthy(paths: Paths, cells: Cells, k: int, mine: np.ndarray) -> bool:
    """Rail k's leaf cells ``mine`` (``[a, b]``): :func:`company.needs_company` of its reproduced suspects."""
    if paths.quiet is None or cells.matrix.alone is None:
        return False
    convicting = paths.reproduces[k] & mine & paths.upper
    a, b = sparse.nonzero(convicting)
    every = np.zeros_like(convicting)
    every[a, b] = cells.slow_every_time(k, a, b)
    return company.needs_company(
        convicting, every, paths.quiet[k], cells.matrix.alone.plane(k), float(cells.expected[k])
    )
