"""The noise of a class of cells (``Cells.noise_rate_in``) counts each rail's transients inside that rail's own part
of the region: a region differs by rail where a rail's cells went unmeasured (a dead link's pairs) or where the
cabling differs by rail, and rail 0's part of it once stood for every rail's."""

from __future__ import annotations

import numpy as np

from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.diagnosis.noise import FALSE_ALARMS


def _cells() -> Cells:
    """Two rails of three nodes, one repeat and one re-measurement pass: every upper cell measured at line rate,
    rail 1's cell (0, 2) slow in the matrix and normal when re-measured (a transient)."""
    busbw = np.full((1, 2, 3, 3), 100.0)
    slow = np.zeros(busbw.shape, dtype=bool)
    slow[0, 1, 0, 2] = True
    busbw[slow] = 50.0
    confirm = np.full((1, 2, 3, 3), np.nan)
    confirm[0, 1, 0, 2] = 100.0
    matrix = PairMatrix(("a", "b", "c"), (0, 1), busbw, confirm=confirm)
    measured = np.ones((2, 3, 3), dtype=bool)
    return Cells(
        matrix=matrix,
        measured=measured,
        slow_sample=slow,
        slow_again=np.zeros((1, 2, 3, 3), dtype=bool),
        beyond_noise=slow.copy(),
        cell_median=np.log(busbw[0]),
        slow_rail=np.zeros(2, dtype=bool),
        expected=np.array([100.0, 100.0]),
        basis="line rate",
        too_noisy=None,
    )


def test_a_rails_transient_counts_in_its_own_rails_part_of_the_region() -> None:
    cells = _cells()
    region = np.zeros((2, 3, 3), dtype=bool)
    region[0, 0, 1] = True  # rail 0: the cell (0, 1) alone
    region[1, 0, 2] = True  # rail 1: the cell (0, 2) alone, the transient's
    samples = 2  # one matrix sample in each rail's part
    assert cells.noise_rate_in(region) == (1 + FALSE_ALARMS) / samples
    rail0_only = region.copy()
    rail0_only[1] = False
    assert cells.noise_rate_in(rail0_only) == FALSE_ALARMS / 1  # the transient is not in this region
