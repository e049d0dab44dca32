"""What the switch verdicts read from one judgement (``bench.rails.diagnosis.switches``): each rail's leaves, its
cells between units and within them, the suspects that reproduced, what noise gives a part, the rounds, and what
the quiet pass measured alone (:class:`Paths`); and the shapes a switch's slow cells take (:func:`is_spread`,
:func:`hub_nodes`, :func:`is_routed`), and an uplink named from its cells (:func:`uplink`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.rails.diagnosis import alone, leaves, noise, sparse
from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.leaves import SwitchFault
from bench.rails.diagnosis.persistence import RATE_OVER, Rounds, leaf_ends
from bench.rails.plan.fabric_map import FabricMap


def is_spread(reproduces: np.ndarray) -> bool:
    """The reproducing suspects ``[a, b]`` are at least two, and no node is in more than half of them: one
    node's cable (seen from either end) is not a switch's fault."""
    a, b = np.nonzero(np.triu(reproduces, k=1))
    if len(a) < 2:
        return False
    counts = np.bincount(np.concatenate([a, b]))
    return 2 * int(counts.max()) <= len(a)


def hub_nodes(reproduces: np.ndarray, mine: np.ndarray) -> list[int]:
    """Nodes slow with most of their cells in ``mine`` (``[a, b]``): under static routing (OpenSM's ftree or
    updn) a pair's flows always take the uplink its destination's port fixes, so a degraded uplink slows one
    node's every flow into its leaf from other units, and every flow out of the leaf to the nodes on that port
    of the other units: it shows as a few nodes slow with (nearly) all of their partners across units."""
    count = mine.sum(axis=1)
    return [int(x) for x in np.flatnonzero((2 * reproduces.sum(axis=1) > count) & (count >= 2))]


def is_routed(reproduces: np.ndarray, mine: np.ndarray, hubs: list[int]) -> bool:
    """The reproducing suspects in ``mine`` are a static route's: hubs (:func:`hub_nodes`, none of them slow inside
    its own unit, which a cable would be) and at least half of the suspects at a hub. A hub is spread over
    every partner it has across units, which no single cable is without also slowing its own unit."""
    if not hubs:
        return False
    a, b = np.nonzero(np.triu(reproduces & mine, k=1))
    at_hub = np.isin(a, hubs) | np.isin(b, hubs)
    return len(a) >= 2 and 2 * int(at_hub.sum()) >= len(a)


@dataclass(frozen=True)
class Null:
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
class Paths:
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
    null: Null
    inside_null: Null
    """What noise gives a cell within units (``Cells.reproduced_by_noise_in`` over those cells), the yardstick of
    :meth:`switch_inside`."""
    between_noise: tuple[float, float | None]
    """What noise gives a cell between units (``Cells.reproduced_by_noise_in`` and
    ``reproduced_always_by_noise_in`` over those cells), the floor of an uplink's cell counts, on three rails with
    leaves or more; on fewer, the fabric-wide two, as before: there the run's rate is pooled, not a median over the
    rails, and a degraded uplink's own transients would be half the noise between units it is judged against."""
    rounds: Rounds | None = None
    """Each slow sample's round, where the schedule is known: a switch must persist over independent rounds."""
    quiet: np.ndarray | None = None
    """``[rail, a, b]``: the cells between units the quiet pass re-measured, one flow per leaf (None: no pass)."""
    held_quiet: np.ndarray | None = None
    """``[rail, a, b]``: of those, the samples alone of each one low in every one of them, 0 elsewhere
    (``bench.rails.diagnosis.alone.held_low``)."""
    repeated_quiet: np.ndarray | None = None
    """``[rail, a, b]``: the quiet cells measured alone again (``bench.rails.diagnosis.alone.repeated``)."""
    again_quiet: np.ndarray | None = None
    """``[rail, a, b]``: of those, the ones low again in one of those samples (``alone.low_again``)."""
    own: alone.OwnEnds | None = None
    """The quiet cells held low against their own ends, at the run's own rate (``alone.OwnEnds``)."""
    sunk: np.ndarray | None = None
    """``[rail]``: most of the rail's cells between units sit under its floor within units (:func:`_sunk`)."""

    @classmethod
    def of(
        cls,
        cells: Cells,
        fabric: FabricMap,
        per_cell: float,
        always_per_cell: float | None,
        between_noise: tuple[float, float | None] | None = None,
    ) -> Paths:
        leaf = leaves.by_position(fabric, cells)
        rails = len(cells.matrix.rails)
        placed = leaf >= 0
        cross = (leaf[:, :, None] != leaf[:, None, :]) & placed[:, :, None] & placed[:, None, :] & cells.measured
        inside = (leaf[:, :, None] == leaf[:, None, :]) & placed[:, :, None] & cells.measured
        upper = np.triu(np.ones(cells.measured.shape[1:], dtype=bool), k=1)
        leaves_on = [sorted(set(leaf[k][placed[k]].tolist())) for k in range(rails)]
        null = Null(per_cell, rails + sum(len(x) for x in leaves_on), always_per_cell)
        median = sum(len(x) >= 2 for x in leaves_on) >= 3
        crossing = between_noise if between_noise is not None and median else (per_cell, always_per_cell)
        reproduces, always = cells.reproduces & cells.measured, cells.reproduces_always & cells.measured
        rounds = None
        if cells.round_of is not None and cells.round_of.shape[0] >= cells.slow_sample.shape[0]:
            ran = ~np.isnan(cells.matrix.busbw) & cells.measured[None]
            slow = cells.slow_sample & cells.measured[None]
            # The floor of the rate of slow rounds stays the fabric-wide rate: the rate between units is hot spots'
            # and congestion's, which come a round at a time, and ``Rounds.of`` spreads a per-cell rate over a
            # round's cells as if each were independent (on ``hotspots`` at 64 x 8 a floor from the noise between
            # units put a healthy leaf's rate of slow rounds at about a half and hid degraded uplinks: 963/1000).
            rounds = Rounds.of(slow, ran, cells.round_of, reproduces, cross, leaf, per_cell, null.tries)
        quiet = None if cells.quiet is None else cells.quiet & cross
        held_quiet = None if cells.held_quiet is None or quiet is None else np.where(quiet, cells.held_quiet, 0)
        repeated_quiet = again_quiet = None
        own = None
        if quiet is not None:
            repeated_quiet = alone.repeated(cells.matrix) & quiet
            again_quiet = alone.low_again(cells.matrix, inside) & repeated_quiet
            own = alone.OwnEnds.of(cells.matrix, inside)
            own = alone.OwnEnds(np.where(quiet, own.held, 0), own.rate)
        sunk = _sunk(cells.cell_median, cross, inside)
        return cls(
            leaf,
            cross,
            inside,
            reproduces,
            always,
            upper,
            leaves_on,
            null,
            Null(cells.reproduced_by_noise_in(inside), null.tries, cells.reproduced_always_by_noise_in(inside)),
            crossing,
            rounds,
            quiet,
            held_quiet,
            repeated_quiet,
            again_quiet,
            own,
            sunk,
        )

    def quiet_holds(self, ks: list[int], tries: int) -> bool:
        """Some of the flows between units of rails ``ks`` that the quiet pass measured read under the rail's mark
        there and again when measured alone again (``bench.rails.diagnosis.alone.low_again``): on most of those
        rails, each rail more of them than its healthy flows give in as many tries (one in 25: under the mark in one
        of two repeats), at the level that many rails reach together by chance at ``NAME_FALSE_ALARMS`` over
        ``tries`` parts (``noise.most_beyond``); True where the pass measured none of them (or did not run): it can
        only take a verdict away.

        Rail by rail, not pooled: pooled over the rails, one degraded uplink's rail carried the rest. Under ECMP at
        1024 x 8 (``ecmp``, leaves of 32, an uplink at scenario 1099001) every rail's cells between units were slow
        and persistent from the collisions; the uplink's flows alone were low again in 15 of 20, each other rail's in
        0-1 of 3-12, and the spine layer was named in the uplink's place.

        A flow there shares no uplink with another, however the switches hash or route: ECMP's collisions, which
        slow most flows between units when the matrix fills the uplinks and again when their round is re-measured,
        are gone, and a spine slows the flows it carries every time it carries them: under ECMP, whose hash keeps a
        flow's path, every time; under adaptive routing, which routes each sample afresh, as often as the flow
        crosses it again (held low in every sample seldom, low again in one of two often: a third of them on the
        model at 256 x 8). On most rails, as a spine slows them all: an uplink slows one rail's (on two rails they
        were an uplink and a cable on another, at 256 x 8).

        Slow quiet samples counted against the noise within leaves were the rule before (stop 61). Flows between
        units alone spread wider than that (more hops), and at 1024 x 8 seven healthy ones in a thousand named the
        spine layer in 2 of 60 clean tapered-ECMP runs; under ECMP every sample is judged against the collisions'
        spread, and a degraded spine's quiet flows were not slow by it (1 of 2,018 at 1024 x 8, where 280 read low
        again)."""
        if self.quiet is None or self.again_quiet is None or self.repeated_quiet is None:
            return True
        mask = self.quiet[ks] & self.upper[None]
        if not mask.any():
            return True
        tails = _low_again_tails(self.repeated_quiet[ks] & mask, self.again_quiet[ks] & mask)
        return noise.most_beyond(tails, noise.NAME_FALSE_ALARMS / max(1, tries))

    def quiet_held(self, ks: list[int], tries: int) -> bool:
        """Some of the flows between units of rails ``ks`` that the quiet pass measured were held low alone, under
        the rail's mark in every sample (``bench.rails.diagnosis.alone.held_low``), on most of those rails, more of
        them than healthy flows are in as many tries (:func:`alone.chance_held`), family-wise over ``tries`` parts.

        The stronger reading of the pass, for a spine judged without persistence over rounds: ECMP keeps a flow's
        path, so a degraded spine holds its flows low in every sample alone, while a hot spot that moves between
        rounds (adaptive routing) slows a flow alone now and then, as it slows the matrix's, and :meth:`quiet_holds`'s
        "low again in one of two" is what it gives (23 of 100 clean ``tapered-ar`` runs at 256 x 8 named the spine
        layer on that reading)."""
        if self.quiet is None or self.held_quiet is None:
            return False
        mask = self.quiet[ks] & self.upper[None]
        held = (self.held_quiet[ks] > 0) & mask
        if not held.any():
            return False
        expected = int(mask.sum()) * alone.chance_held(int(self.held_quiet[ks][held].min()))
        return _most_rails_beyond(held, expected, tries)

    def own_held(self, ks: list[int], tries: int) -> bool:
        """A spine from the quiet pass alone: on most of rails ``ks``, flows between units held low against their
        own ends (``alone.OwnEnds``), spread over each rail's nodes (one node's are its own), more of them than the
        run's own rate gives in as many samples, family-wise over ``tries`` parts; and nothing like a switch within
        a unit (a leaf, or a node's every link, slows its unit too).

        For where the matrix shows nothing between units (``_spine_faults``' shape): ECMP keeps a flow's path, so a
        degraded spine holds the flows it carries low in every sample alone, while a hot spot, or a spine under
        adaptive routing, slows a flow alone afresh each sample, at the run's own rate; that rate, not the mark's
        quantile, is the yardstick here, so a spine under adaptive routing is left to the matrix's rules."""
        if self.own is None or self.quiet is None:
            return False
        if any(self.switch_inside(k, self.inside[k]) for k in ks):
            return False
        held = (self.own.held[ks] > 0) & self.upper[None]
        if not all(is_spread(rail) for rail in held if rail.any()) or not held.any():
            return False
        mask = self.quiet[ks] & self.upper[None]
        expected = int(mask.sum()) * alone.chance_held(int(self.own.held[ks][held].min()), self.own.rate)
        return _most_rails_beyond(held, expected, tries)

    def sunk_held(self, ks: list[int], tries: int) -> bool:
        """A spine where the matrix's own level is the slow one: on most of rails ``ks`` most cells between units sit
        under the rail's floor within units (:func:`_sunk`), and their flows alone read low again, beyond noise on
        each of those rails (the reading of :meth:`quiet_holds`, rail by rail; none measured: not beyond).

        The matrix's rules judge a cell against the level and spread of the matrix's healthy cells, and where a fault
        slows most of the matrix the median is the slow level and the spread spans both: with leaves of 8, 82% of the
        cells cross units, and a spine that adaptive routing puts on one of a transfer's 8 flows slows two thirds of
        their samples, so 54% of the matrix ran at a third of line, the level sat there (-1.14 in log, its spread
        0.53), no sample between units was slow, and the spine went unnamed in every run (``hotspots``, 256 x 8).
        A spine cannot touch a flow within a unit, so the rail's floor there stays the healthy one. Where the taper
        binds the cells are read over what the round could carry (``Cells.cell_median``), so a taper sinks nothing;
        ECMP's collisions sink the cells between units too, but not their flows alone. Each rail's flows alone are
        judged on their own, family-wise over the rails and ``tries`` parts: a spine slows them on every rail it
        joins, where one degraded uplink among ECMP's collisions slowed its own rail's beyond noise and left a
        healthy few on most others, which pooled over the rails named the spine layer (``ecmp`` with leaves of 8,
        scenario 1096006)."""
        if self.sunk is None or self.quiet is None or self.again_quiet is None or self.repeated_quiet is None:
            return False
        if 2 * int(self.sunk[ks].sum()) <= len(ks):
            return False
        mask = self.quiet[ks] & self.upper[None]
        tails = _low_again_tails(self.repeated_quiet[ks] & mask, self.again_quiet[ks] & mask)
        beyond = [tail * max(1, tries) * len(ks) <= noise.NAME_FALSE_ALARMS for tail in tails]
        return 2 * sum(beyond) > len(ks)

    def elevated(self, k: int, mask: np.ndarray, against: Null | None = None) -> bool:
        """Rail k's cells in ``mask`` (``[a, b]``) hold more reproduced suspects than noise gives."""
        null = self.null if against is None else against
        cells = mask & self.upper
        return null.significant(
            int((self.reproduces[k] & cells).sum()), int(cells.sum()), int((self.always[k] & cells).sum())
        )

    def convicts(self, k: int, mask: np.ndarray, against: Null | None = None, *, rate: bool = True) -> bool:
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
        leaf = None if rate else self.leaf[k]  # a spine: judged leaf by leaf (persistence.Rounds.persists)
        beside = self._beside(k, cells) if rate else None
        return self.rounds.persists(k, self.reproduces[k], self.always[k], cells, by_cells, leaf, beside)

    def _beside(self, k: int, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Rail k's cells between units (``[a, b]``, each pair once) with no end on the part's own leaves (the
        leaves at an end of every one of its ``cells``: an uplink's leaf, both leaves where its cells lie between
        two), and each node's leaf; None where fewer than :data:`RATE_OVER` other leaves are left.

        Fewer leaves make a rate of one or two pairs of leaves, which one hot round moves by a third: on a rail of
        three leaves (``hotspots`` at 96 x 8, scenario 1031006) the two healthy ones were slow together in 5 of
        their 11 rounds, and the degraded uplink's leaf, slow in 17 of its 22, went unnamed against that."""
        leaf = self.leaf[k]
        a, b = sparse.nonzero(cells)
        ends = leaf_ends(leaf, a, b)
        counts = np.bincount(ends, minlength=int(leaf.max()) + 1) if len(ends) else np.zeros(0, dtype=np.int64)
        own = np.isin(leaf, np.flatnonzero(counts == len(a))) if len(a) else np.zeros(len(leaf), dtype=bool)
        if len(set(leaf[~own & (leaf >= 0)].tolist())) < RATE_OVER:
            return None
        return self.cross[k] & self.upper & ~own[:, None] & ~own[None, :], leaf

    def switch_inside(self, k: int, mask: np.ndarray) -> bool:
        """Rail k's cells within units (``mask``) are slow the way a switch slows them: more reproduced suspects
        than noise within units gives, spread over several nodes (one flaky cable inside a unit is that cable's,
        judged later, and does not hide a spine or an uplink). Against the noise of their own class, as every
        part is: judged against their own tighter yardstick (``noise.within_units``), the cells within units
        keep more of their noise's suspects than before, and the fabric-wide rate, set where the cross cells'
        yardstick is wide, had a spine under ECMP at 64 x 8 (seed 1009000) read 5 reproduced suspects of 992 on
        one rail's leaves as a switch within them."""
        return self.elevated(k, mask, self.inside_null) and is_spread(self.reproduces[k] & mask)


def _sunk(cell_median: np.ndarray, cross: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``[rail]``: the median of the rail's cells between units under the :data:`alone.LOW_QUANTILE` quantile of its
    cells within units (their log rates, as judged): more than half of the flows between units slower than all but
    the slowest flows within units."""
    out = np.zeros(len(cell_median), dtype=bool)
    for k in range(len(cell_median)):
        between, within = cell_median[k][cross[k]], cell_median[k][inside[k]]
        between, within = between[np.isfinite(between)], within[np.isfinite(within)]
        if between.size and within.size:
            out[k] = float(np.median(between)) < float(np.quantile(within, alone.LOW_QUANTILE))
    return out


def _low_again_tails(repeated: np.ndarray, again: np.ndarray) -> list[float]:
    """Each rail's chance under noise alone (``[rail, a, b]``: its quiet flows measured alone again, and those low
    again) of as many low again as it had, at ``alone.chance_low_again`` a flow."""
    tried, found = repeated.sum(axis=(1, 2)), again.sum(axis=(1, 2))
    chance = alone.chance_low_again()
    return [noise.poisson_sf(int(n), int(t) * chance) for n, t in zip(found, tried, strict=True)]


def _most_rails_beyond(found: np.ndarray, expected: float, tries: int) -> bool:
    """The quiet cells ``found`` (``[rail of the group, a, b]``) are on most of the group's rails, and more than the
    ``expected`` count healthy flows give, family-wise over ``tries`` parts (``NAME_FALSE_ALARMS``): on half the
    rails or fewer they are an uplink's, a cable's, or both."""
    if 2 * int(found.any(axis=(1, 2)).sum()) <= found.shape[0]:
        return False
    return noise.poisson_sf(int(found.sum()), expected) * max(1, tries) <= noise.NAME_FALSE_ALARMS


def uplink(paths: Paths, fabric: FabricMap, k: int, index: int, mine: np.ndarray, far: list[int]) -> SwitchFault:
    """Rail k's uplink of leaf ``index``, convicted by its cells between units ``mine`` (``[a, b]``) whose slow ones
    lead to the leaves ``far``. Where they lead to one far leaf, either leaf's uplinks carry every one of them, and
    both are named, unless the two leaves' flows to the other leaves tell them apart (:func:`told_apart`): then the
    one whose flows there are slow."""
    told = told_apart(paths, k, index, far[0]) if len(far) == 1 else None
    if told is not None and told != index:
        near = paths.leaf[k] == told
        index, mine = told, paths.cross[k] & (near[:, None] | near[None, :])
    if told is not None:
        far = []
    chosen = [index, *far] if len(far) == 1 else [index]
    if len(far) == 1:  # between two leaves only: either one's uplinks carry every slow flow
        other = paths.leaf[k] == far[0]
        mine = mine & (other[:, None] | other[None, :])
    mask = np.zeros_like(paths.cross)
    mask[k] = mine
    names = tuple(fabric.leaves[i].name for i in chosen)
    ports = tuple(str(c) for i in chosen for c in fabric.leaves[i].uplinks)
    return SwitchFault("uplink", mask, k, names, ports, _unit(fabric, chosen[0]) if len(chosen) == 1 else None)


def told_apart(paths: Paths, k: int, one: int, other: int) -> int | None:
    """Of two leaves on rail k whose slow flows between units all run between them, the one whose flows to the
    other leaves reproduce where the other's do not; None where they do not tell (fewer than three leaves, or no
    such difference).

    A degraded uplink slows the flows it carries to every far leaf, as the fabric's load and the rounds' hot spots
    slow any leaf's: so the leaf whose flows to the third leaves reproduce as rarely as a healthy leaf's is not the
    one. Its count is held against the other's share, one flow more clear than seen (binomial, at
    ``noise.NAME_FALSE_ALARMS`` over the parts tried): on a 2:1 tree under adaptive routing (``tapered-ar`` at 64 x 4
    in leaves of 16, scenario 1690024) the degraded uplink's leaf had 75 of its 112 flows to the other two leaves
    reproduce and the far leaf 5 of 112, and the quiet pass, which held two flows low alone, both between the two,
    could not tell them: the healthy leaf's uplinks were named beside the degraded ones."""
    leaf = paths.leaf[k]
    third = (leaf >= 0) & (leaf != one) & (leaf != other)
    if not third.any():
        return None
    cells = paths.cross[k] & paths.upper

    def flows_out(index: int) -> tuple[int, int]:
        """The leaf's flows to the third leaves that reproduced, and all of them."""
        near = leaf == index
        flows = cells & ((near[:, None] & third[None, :]) | (third[:, None] & near[None, :]))
        return int((paths.reproduces[k] & flows).sum()), int(flows.sum())

    def rules_out(mine: tuple[int, int], rival: tuple[int, int]) -> bool:
        """As few of the rival's flows slow as seen, were its uplink the one: P(X <= rival's) at this leaf's share
        (one flow more clear than seen)."""
        (slow, flows), (rival_slow, rival_flows) = mine, rival
        chance = 1.0 - noise.binom_sf(rival_slow + 1, rival_flows, slow / (flows + 1))
        return chance * max(1, paths.null.tries) <= noise.NAME_FALSE_ALARMS

    first, second = flows_out(one), flows_out(other)
    if not first[1] or not second[1]:
        return None
    if rules_out(first, second):
        return one
    return other if rules_out(second, first) else None


def far_leaves(reproduces: np.ndarray, near: np.ndarray, leaf: np.ndarray) -> list[int]:
    """The leaves at the far end of the reproducing suspects (``[a, b]``, one end in ``near``)."""
    a, b = np.nonzero(np.triu(reproduces, k=1))
    far = np.where(near[a], b, a)
    return sorted(set(leaf[far].tolist()) - {-1})


def _unit(fabric: FabricMap, index: int) -> str | None:
    unit = fabric.leaves[index].unit
    return fabric.unit_names[unit] if 0 <= unit < len(fabric.unit_names) else None
