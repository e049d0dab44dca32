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

import numpy as np

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


def _under(matrix: PairMatrix, inside: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: the quiet cells whose best sample (``PairMatrix.quiet``) is under the rail's mark."""
    assert matrix.quiet is not None
    marks = low_marks(matrix.busbw, inside)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN where no quiet sample ran: never under
        return np.asarray(matrix.quiet < marks[:, None, None])


def low_quiet_cells(matrix: PairMatrix, inside: np.ndarray) -> list[tuple[int, int, int]]:
    """Rank 0, after the quiet pass: its cells that read under the mark, as ``(rail, a, b)`` (a < b, the matrix's
    node order), to be measured alone again (``bench.rails.plan.remeasure.quiet_repeat_rounds``)."""
    if matrix.quiet is None:
        return []
    k, a, b = np.nonzero(np.triu(_under(matrix, inside), k=1))
    return list(zip(k.tolist(), a.tolist(), b.tolist(), strict=True))


def held_low(matrix: PairMatrix, inside: np.ndarray) -> np.ndarray:
    """``[rail, a, b]``: the quiet cells measured alone 1 + ``QUIET_REPEATS`` times or more and under the mark in
    every one (their best sample is)."""
    if matrix.quiet is None or matrix.quiet_count is None:
        return np.zeros(inside.shape, dtype=bool)
    return _under(matrix, inside) & (matrix.quiet_count >= 1 + QUIET_REPEATS)


def chance_held() -> float:
    """The chance that a healthy cell of the quiet pass is held low: under the mark in each of its samples."""
    return float(LOW_QUANTILE ** (1 + QUIET_REPEATS))
