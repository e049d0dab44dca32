"""What each sample is judged against on a fabric whose uplinks the round fills: the pair's expected fraction.

``bench.rails.plan.capacity`` gives every pair, in the round it ran, the share of its links' rate the fabric can
carry (its max-min fair share of the uplinks its round's flows cross). A sample is judged as its rate over that
share: on a 2:1 tapered tree a pair between units in a round that fills the uplinks runs at half of line and is
judged as a pair at full rate would be, so the taper never makes a suspect, let alone a spine or an uplink. It
is the fabric's property, said once (:attr:`Expected.said`), never a defect.

The share is a ceiling the cabling sets: the uplinks may carry more than their count says (the namespace
testbed's veth "uplinks" have no rate of their own; an uplink faster than the node links where the file gives no
speeds). So the run says whether the taper binds: on most rails that have both (every one of one or two), the
pairs expected below their links' rate run slower than the pairs expected at it by more than half of what the
taper predicts (halfway, in log rate, between "the uplinks carry it all" and "the taper binds": a fault slows one
rail or some flows, a taper every rail's loaded pairs alike). Where it does not bind, nothing is adjusted and
the run is judged as before.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bench.rails.diagnosis.last_answer import LastAnswer, fingerprint
from bench.rails.diagnosis.remeasured import CellIndex, both_ways, cell_keys, find


@dataclass(frozen=True, eq=False)
class Cellwise:
    """Fractions that are 1 but at a few cells: ``share`` at cells ``(rail, low, high)`` (each once, low < high,
    mirrored to ``[high, low]``) in every pass of ``shape`` (``[pass, rail, a, b]``). The re-measurements' own:
    only the suspects ran again, and at 1024 nodes a dense array of them is 134 MB of ones."""

    shape: tuple[int, ...]
    rail: np.ndarray
    low: np.ndarray
    high: np.ndarray
    share: np.ndarray

    def passes(self, count: int) -> Cellwise:
        return dataclasses.replace(self, shape=(min(count, self.shape[0]), *self.shape[1:]))

    def dense(self) -> np.ndarray:
        out = np.ones(self.shape)
        if self.shape[0] and len(self.rail):
            both_ways(out, (self.rail, self.low, self.high), self.share)
        return out

    def at(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``dense()[:, k, a, b]``, read from the cells themselves."""
        n = self.shape[-1]
        keys = cell_keys(self.rail, self.low, self.high, n)
        order = np.argsort(keys)
        pos = find(keys[order], cell_keys(k, a, b, n))
        values = np.ones(len(pos))
        hit = pos >= 0
        values[hit] = self.share[order][pos[hit]]
        return np.broadcast_to(values, (self.shape[0], len(pos)))


@dataclass(frozen=True, eq=False)
class Expected:
    """Where each pair ran and what it could get there: ``round_of[repeat, a, b]`` (the round of the matrix
    sample, -1 where none ran); per routing (``bench.rails.plan.capacity.ROUTINGS``) the expected fraction of
    every sample, ``matrix[routing][repeat, rail, a, b]`` and ``again[routing][pass, rail, a, b]`` (dense, or
    :class:`Cellwise` at the suspects that ran again; 1 at its
    links' rate or unmeasured; empty where every pair is expected at its links' rate); ``taper``: the fabric's
    worst ratio of a leaf's nodes to its uplinks (``bench.rails.plan.capacity.taper``); ``routing``: the one
    the run showed (:meth:`routed`), None before it is chosen."""

    round_of: np.ndarray
    matrix: Mapping[str, np.ndarray] = field(default_factory=dict)
    again: Mapping[str, np.ndarray | Cellwise] = field(default_factory=dict)
    taper: float = 1.0
    routing: str | None = None

    def routed(self, x: np.ndarray, between: np.ndarray | None = None) -> Expected | None:
        """The routing the run's samples (``x``: log rates ``[repeat, rail, a, b]``) agree with, where the taper
        binds under it; None where it does not bind (or nothing is loaded). ``between`` (``[rail, a, b]``, where
        known): the cells whose flows cross units, the class a loaded cell is read against.

        The cabling does not say how the switches route: the run does. Over the samples either routing expects
        below their links' rate, each routing's adjusted log rates (rate over expected fraction) are as alike
        as the fabric's noise where it is the fabric's routing, and carry the other's collisions or pooling as
        spread where it is not: the routing whose adjusted rates spread least (median absolute deviation about
        the level of the cells between units that neither routing loads) is the run's."""
        fractions = {r: f[: x.shape[0]] for r, f in self.matrix.items() if f.shape[0] >= x.shape[0]}
        if not fractions or self.taper <= 1.0:
            return None
        # Rank 0 asks twice of the same samples and fractions (to pick the suspects, then to judge): the samples by
        # their content, the fractions (the same read-only arrays, ``round_load.matrix_expected``) by identity.
        named = tuple((r, id(self.matrix[r]), f.shape) for r, f in fractions.items())
        key = (fingerprint(x), None if between is None else fingerprint(between), self.taper, *named)
        routing = _last_routing.answer(
            key, lambda: _routing(x, fractions, between), holding=tuple(self.matrix.values())
        )
        if routing is None:
            return None
        again = {routing: self.again[routing]} if routing in self.again else {}
        return Expected(self.round_of, {routing: fractions[routing]}, again, self.taper, routing)

    def adjusted(self, x: np.ndarray, x_again: np.ndarray, cells: CellIndex) -> tuple[np.ndarray, np.ndarray]:
        """The log rates over their expected fractions (the chosen routing's): matrix samples, then
        re-measurements (``x_again``, ``[pass, i]`` at the cells ``(rail, a, b)`` that ran again,
        ``bench.rails.diagnosis.remeasured``), which are given up: adjusted in place."""
        share, _ = self.fractions(x.shape[0], 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # unmeasured NaN cells stay NaN
            # x - log(share), computed into the log's own array: one matrix-sized array each, not two.
            adjusted = np.log(share)
            np.subtract(x, adjusted, out=adjusted)
            if not x_again.shape[0]:
                return adjusted, x_again
            again = np.log(self.again_at(x_again.shape[0], *cells))
            return adjusted, np.subtract(x_again, again, out=x_again)

    def fractions(self, repeats: int, passes: int) -> tuple[np.ndarray, np.ndarray]:
        """The chosen routing's fractions of ``repeats`` matrix samples and ``passes`` re-measurements (1 for
        re-measurements not yet scheduled: rank 0 picking its suspects has none)."""
        assert self.routing is not None  # routed() chose it
        matrix = self.matrix[self.routing]
        again = self.again.get(self.routing)
        if isinstance(again, Cellwise):
            again = again.passes(passes).dense()
        return matrix[:repeats], again[:passes] if again is not None else np.ones((passes, *matrix.shape[1:]))

    def again_at(self, passes: int, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``fractions(0, passes)[1][:, k, a, b]``: the re-measurements' fractions at these cells alone."""
        assert self.routing is not None  # routed() chose it
        again = self.again.get(self.routing)
        if isinstance(again, Cellwise):
            # One share a cell, the same in every pass.
            share = again.at(k, a, b)[0] if again.shape[0] else np.ones(len(k))
            return np.broadcast_to(share, (passes, len(k)))
        return self.fractions(0, passes)[1][:, k, a, b]

    def said(self) -> str:
        """The certificate's sentence: ``the fabric's uplinks are tapered, 2:1 between units: cross-unit pairs
        expected at 50% in rounds that fill the uplinks``."""
        return (
            f"the fabric's uplinks are tapered, {self.taper:.3g}:1 between units: cross-unit pairs expected at "
            f"{100 / self.taper:.0f}% in rounds that fill the uplinks (a property of the fabric, judged as such)"
        )


_last_routing = LastAnswer[str | None]()
"""The last routing chosen (``last_answer``), holding the fraction arrays its key names by their ids."""


def _routing(x: np.ndarray, fractions: Mapping[str, np.ndarray], between: np.ndarray | None) -> str | None:
    """:meth:`Expected.routed`'s choice: the routing whose adjusted rates spread least, where the taper binds
    under it; None where it does not bind or nothing is loaded."""
    measured = np.isfinite(x)
    loaded = measured & np.logical_or.reduce([f < 1.0 for f in fractions.values()])
    if not loaded.any():
        return None
    # The adjusted rates spread about the level of the cells between units that no routing loads, on their own
    # rail: a pair its round holds to half reads there once adjusted by the right half. About their own median, a
    # routing that loads every one of those cells alike and one that loads none of them spread the same, and the
    # tie went to the first: on 48 x 8 with a 2:1 taper under static routing, pooling expects nothing of the 960
    # cells that destination routing puts on shared uplinks (each at half of line, as the fabric ran them), and
    # the pairs of the unit's last node were named, on every rail. Between units, not within them: under ECMP
    # the cells destination routing loads run as the other cells between units do (the hash collides flows
    # alike, wherever their destinations' ports are), so they read as pooling's, not at the within-unit level.
    # Where no cell between units runs free (three units of 16 on a 2:1 tree: the full matrix's every round
    # crosses with 16 flows or more), the rail's free cells within units: about their own median the two routings
    # tied again, and the last node's pairs, which destination routing puts three to an uplink, were named in 28 of
    # 40 clean runs at 48 x 4.
    rail = np.nonzero(loaded)[1]
    level = np.full(x.shape[1], np.nan)
    for k in range(x.shape[1]):
        free = measured[:, k] & ~loaded[:, k]
        if between is not None and (free & between[k][None]).any():
            free &= between[k][None]
        if free.any():
            level[k] = np.median(x[:, k][free])
    centre = level[rail]

    # The mean absolute deviation, not the median: a routing's collisions fall on a minority of the loaded cells (a
    # leaf's node whose port three flows' destinations share), which a median passes over; at 48 x 8 in leaves of
    # 16 pooling's median deviation tied destination routing's, its mean did not, and the last node's pairs,
    # held to a third, were named in 37 of 40 clean runs. Cells that moved nothing are not in it (not finite).
    def spread(f: np.ndarray) -> float:
        adjusted = x[loaded] - np.log(f[loaded])
        about = np.where(np.isnan(centre), np.median(adjusted), centre)
        return float(np.mean(np.abs(adjusted - about)))

    routing = min(fractions, key=lambda r: spread(fractions[r]))
    return routing if _binds(x, fractions[routing]) else None


def _binds(x: np.ndarray, fraction: np.ndarray) -> bool:
    """Whether the run's own samples show the taper: on most rails with pairs of both kinds (every one of one or
    two), the loaded pairs' median log rate is below the unloaded pairs' by more than half the median log fraction
    predicted for them.

    Most, not every: each rail's leaves are tapered alike, so the taper shows on every rail, while a fault shows on
    its own rail only and may hide it there (a slow leaf drags its rail's unloaded pairs, those within its unit,
    down to the loaded ones' rate). One rail's fault must not switch the expectation off on every other rail."""
    measured = np.isfinite(x)
    shows: list[bool] = []
    for k in range(x.shape[1]):
        loaded = measured[:, k] & (fraction[:, k] < 1.0)
        unloaded = measured[:, k] & (fraction[:, k] >= 1.0)
        if not loaded.any() or not unloaded.any():
            continue
        gap = float(np.median(x[:, k][loaded]) - np.median(x[:, k][unloaded]))
        shows.append(gap < float(np.median(np.log(fraction[:, k][loaded]))) / 2)
    return 2 * sum(shows) > len(shows)


def showing(measured: np.ndarray, values: np.ndarray, routed: Expected | None) -> np.ndarray:
    """``[rail, a, b]``: the measured cells that can show their links' own level: where the taper binds, those
    with a sample that ran where the fabric could carry its links' full rate. A link at 85% in a round whose
    uplinks give every flow 50% runs at 50%, as its healthy peers do: the round's share holds it, not its own
    link, so such a cell says nothing of its ends' level (a link is low when its level is low among the cells
    that could show it)."""
    if routed is None:
        return measured
    share, _ = routed.fractions(values.shape[0], 0)
    best = np.where(np.isnan(values), 0.0, share).max(axis=0)
    return measured & (best >= 1.0)


def judged_rates(
    expected: Expected | None,
    x: np.ndarray,
    x_again: np.ndarray,
    cells: CellIndex,
    between: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, Expected | None]:
    """The log rates the judge compares (adjusted where the taper binds) and the expectation that did it;
    ``x_again`` (``[pass, i]`` at ``cells``) is given up (:meth:`Expected.adjusted`); ``between``: as
    :meth:`Expected.routed` reads it."""
    routed = None if expected is None else expected.routed(x, between)
    if routed is None:
        return x, x_again, None
    adjusted, again = routed.adjusted(x, x_again, cells)
    return adjusted, again, routed
