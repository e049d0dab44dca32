"""Flows between units measured alone, and the ones held low there (docs/design.md, "Localisation").

The quiet pass (``bench.rails.plan.remeasure``) measures a few suspects between units at each leaf with no other
flow on the leaf's uplinks, so each runs at its own path's rate. Under ECMP a degraded uplink carries only the
flows whose queue pairs its hash picked, about one in eight of its leaf's, at 0.5-0.8 of line; the healthy ones
alone run as flows within a unit do, with the same heavy tail (on the fabric model about one sample in a hundred
at 0.7 of line). One low sample a leaf cannot tell the two apart, however deep.

What can: measuring the low ones again, alone. A healthy path reads low again only by the same chance, afresh each
time; a flow whose queue pairs the uplink carries reads low every time (a queue pair keeps its path for its life).
So a quiet sample under the mark is measured :data:`~bench.rails.plan.remeasure.QUIET_REPEATS` more times, and a
cell low in every sample is *held low*. The mark is the rail's own flows within units, their lower
:data:`LOW_QUANTILE`: what a healthy flow alone reads that low, measured on this run's fabric, not a constant of one
cluster. A healthy cell is held low at a chance of that quantile to the power of its samples.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from bench.rails.diagnosis import noise
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.plan.remeasure import QUIET_REPEATS

LOW_QUANTILE = 0.02
"""The share of a rail's samples within units that read under its mark. Deep enough that a healthy flow alone seldom
does (the heavy tail of noise), shallow enough that a flow an uplink at 0.8 of a link carries (about 0.78 of line
alone) does."""


def low_marks(busbw: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``[rail]``: the :data:`LOW_QUANTILE` of each rail's matrix samples within units (``busbw[repeat, rail, a,
    b]``, ``inside[rail, a, b]``), in their units; -inf on a rail with none (nothing reads under it)."""
    marks = np.full(busbw.shape[1], -np.inf)
    for k in range(busbw.shape[1]):
        values = busbw[:, k][:, inside[k]]
        values = values[~np.isnan(values)]
        if len(values):
            marks[k] = float(np.quantile(values, LOW_QUANTILE))
    return marks


def _below(matrix: PairMatrix, inside: np.ndarray, *values: np.ndarray) -> np.ndarray:
    """Per cell of ``matrix.alone``: under its rail's mark in every one of ``values`` (per-cell arrays; NaN: never
    under). Each against the mark in the values' own precision: a float32 best or worst is compared as float32, as
    against a Python float."""
    assert matrix.alone is not None
    marks = low_marks(matrix.busbw, inside)[matrix.alone.rail]
    return np.logical_and.reduce([v < marks.astype(v.dtype) for v in values])


def _under(matrix: PairMatrix, inside: np.ndarray) -> np.ndarray:
    """Per cell of ``matrix.alone``: its best sample alone is under the rail's mark."""
    assert matrix.alone is not None
    return _below(matrix, inside, matrix.alone.best)


MOST_SAMPLES = 1 + 2 * QUIET_REPEATS
"""The most samples alone a cell gets: the quiet pass's, then two rounds of repeats (:func:`low_quiet_cells`)."""


def low_quiet_cells(matrix: PairMatrix, inside: np.ndarray) -> list[tuple[int, int, int]]:
    """Rank 0, after the quiet pass and again after its repeats: the quiet cells under the mark in every sample so
    far and measured alone fewer than :data:`MOST_SAMPLES` times, as ``(rail, a, b)`` (a < b, the matrix's node
    order), each to be measured alone ``QUIET_REPEATS`` more times (``bench.rails.plan.remeasure
    .quiet_repeat_rounds``). After the quiet pass these are the ones that read low once; after the first repeats,
    the ones held low: a second pair of samples is what lets one such cell stand on its own (:func:`chance_held`:
    eight in a million healthy cells are held low in three samples, one run in a thousand with 128 of them (64 x
    8), one in 60 with 2,048 (1024 x 8); in five, three in a billion)."""
    if matrix.alone is None:
        return []
    cells = matrix.alone
    more = _under(matrix, inside) & (cells.count < MOST_SAMPLES)
    return list(zip(cells.rail[more].tolist(), cells.low[more].tolist(), cells.high[more].tolist(), strict=True))


def held_low(matrix: PairMatrix, inside: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: how many times each quiet cell was measured alone where that was 1 + ``QUIET_REPEATS`` times
    or more and it read under the mark in every one (its best sample did); 0 elsewhere."""
    return held_low_and_clear(matrix, inside)[0]


def held_low_and_clear(matrix: PairMatrix, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`held_low`, and the quiet cells whose best sample alone is at or above the rail's mark (``[rail, a,
    b]``): with no other flow between units on their leaves, they ran as the rail's flows within units do. One
    reading of the marks serves both."""
    if matrix.alone is None:
        return np.zeros(inside.shape, dtype=np.uint8), np.zeros(inside.shape, dtype=bool)
    cells = matrix.alone
    under = _under(matrix, inside)
    held = under & (cells.count >= 1 + QUIET_REPEATS)
    clear = ~np.isnan(cells.best) & ~under
    return cells.spread(np.where(held, cells.count, 0), np.uint8), cells.spread(clear)


def low_again(matrix: PairMatrix, inside: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: the quiet cells under the mark in the quiet pass that read under it again in at least one of
    their later samples alone (``Alone.worst_again``). Under adaptive routing a degraded spine slows a flow only when
    the flow crosses it, and each sample alone routes it afresh: held low in every sample it seldom is, low again in
    one of two it often is (about as often as it crossed the spine the first time)."""
    if matrix.alone is None:
        return np.zeros(inside.shape, dtype=bool)
    return matrix.alone.spread(_below(matrix, inside, matrix.alone.first, matrix.alone.worst_again))


def repeated(matrix: PairMatrix) -> np.ndarray:
    """``[rail, a, b]``: the quiet cells measured alone again (``QUIET_REPEATS`` more times, for reading low in the
    quiet pass)."""
    if matrix.alone is None:
        return np.zeros((len(matrix.rails), len(matrix.nodes), len(matrix.nodes)), dtype=bool)
    return matrix.alone.spread(matrix.alone.count >= 1 + QUIET_REPEATS)


def chance_low_again() -> float:
    """The chance that a healthy quiet cell measured alone again (:func:`repeated`) reads under the mark in at least
    one of those ``QUIET_REPEATS`` samples, each afresh. Later repeats are only for cells low in all of them, so they
    add nothing to whether a cell was low again."""
    return float(1.0 - (1.0 - LOW_QUANTILE) ** QUIET_REPEATS)


def chance_held(samples: int, rate: float = LOW_QUANTILE) -> float:
    """The chance that a healthy cell of the quiet pass is held low in ``samples`` samples alone: under the mark in
    each, afresh, at ``rate`` a sample (default: the mark's own quantile; :class:`OwnEnds` gives the run's own)."""
    return float(rate**samples)


RATE_RAILS = 3
"""The fewest rails whose quiet cells :func:`OwnEnds` takes the median rate over: fewer are one rail's own rate,
which its own degraded uplink raises."""


@dataclass(frozen=True)
class OwnEnds:
    """Each quiet cell judged against its own ends, not the rail's mark: what a flow alone between a leaf with
    nothing to tell and the rest of the fabric reads, where the quiet pass measures every leaf's flows whatever the
    suspects (``bench.rails.diagnosis.quiet_fill``).

    A healthy flow alone runs at its slower end's link, less its noise. The rail's mark (:func:`low_marks`, the
    2% quantile within units) holds a flow between two ends at the healthy floor under it much of the time, and
    every time: its ends are slow in every sample, not afresh (``tapered`` at 64 x 8 with leaves of 8, clean run
    85010: two such flows at one leaf named its uplinks). So each cell's mark is its slower end's level within its
    unit (the upper quartile over its partners there, as the absolute line reads a link's level), times the rail's
    :data:`LOW_QUANTILE` of its samples within units each over its own slower end's level.

    And the chance a sample reads under it is the run's own: the median over the rails of the share of their quiet
    cells whose quiet-pass sample did, never under :data:`LOW_QUANTILE`. Hot spots that move between rounds
    (adaptive routing beside other traffic) put a healthy flow alone under it more often than noise does, afresh
    each round; judged at the quantile, two such at one leaf named an uplink (``hotspots``, ``tapered-ar``). A
    degraded uplink raises its own rail's share, not the median."""

    held: np.ndarray
    """``[rail, a, b]``: as :func:`held_low`, under the cell's own mark in every sample."""
    rate: float

    @classmethod
    def of(cls, matrix: PairMatrix, inside: np.ndarray) -> OwnEnds:
        shape = (len(matrix.rails), len(matrix.nodes), len(matrix.nodes))
        if matrix.alone is None:
            return cls(np.zeros(shape, dtype=np.uint8), LOW_QUANTILE)
        cells = matrix.alone
        quantile = np.full(shape[0], np.nan)
        level = np.full(shape[:2], np.nan)  # [rail, node]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell or link with no sample: NaN, never under
            # Rail by rail, at the cells within units only: a median over the repeats of the whole dense matrix
            # was 9 s of a 1024 x 8 judgement (a warning per cell never measured).
            for k in np.flatnonzero(inside.any(axis=(1, 2))):
                samples = matrix.busbw[:, k][:, inside[k]]  # [repeat, cell]
                plane = np.full(shape[1:], np.nan)
                plane[inside[k]] = samples[0] if len(samples) == 1 else np.nanmedian(samples, axis=0)
                level[k] = noise.upper_quartile(plane, within=inside[k])
                ends = np.fmin(level[k][:, None], level[k][None, :])[inside[k]]
                quantile[k] = np.nanquantile(samples / ends, LOW_QUANTILE)
        ends = np.fmin(level[cells.rail, cells.low], level[cells.rail, cells.high])
        marks = (quantile[cells.rail] * ends).astype(cells.best.dtype)
        under = cells.best < marks  # NaN marks: never under
        held = under & (cells.count >= 1 + QUIET_REPEATS)
        ran = ~np.isnan(cells.first)
        first = ran & (cells.first < marks)
        shares = [
            float(first[on].sum()) / int(on.sum()) for k in range(shape[0]) if (on := ran & (cells.rail == k)).any()
        ]
        rate = max(LOW_QUANTILE, float(np.median(shares))) if len(shares) >= RATE_RAILS else LOW_QUANTILE
        return cls(cells.spread(np.where(held, cells.count, 0), np.uint8), rate)
