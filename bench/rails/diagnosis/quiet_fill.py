"""The flows between units the quiet pass measures alone beside the suspects: every leaf's, whatever the suspects.

The quiet pass (``bench.rails.plan.remeasure.quiet_rounds``) measures flows between units one per leaf a round,
so no two share an uplink. It took only suspects, and a suspect is a cell slow against the whole matrix's level.
Where most of a rail's cells cross between units (leaves of 8 or 16 nodes under ECMP), ECMP's collisions set that
level: every flow between units runs at about half of line in the matrix, a degraded uplink's at about as much,
none is a suspect, and the quiet pass measured nothing. A degraded uplink at 0.6 of a link, or a spine carrying
one path in eight, then went unnamed (``ecmp`` at 64 x 8 with leaves of 8: 49 of 65 exact;
docs/rails.md, "The fabric's cabling", its "Flows alone at every leaf").

So each leaf's quiet cells are filled up to ``QUIET_PER_LEAF`` from its other cells between units, the slowest
in the matrix first: under ECMP a degraded path's flows are slow beside the collided ones in every round, so they
are among the slowest. A healthy fabric's pass then costs about ``QUIET_PER_LEAF`` rounds, one flow per leaf.

Read from the pair times as columns, the cells measured only (no dense plane): rank 0, before the broadcast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.rails.diagnosis.matrix import PairColumns
from bench.rails.plan.remeasure import QuietCell, leaf_capped, quiet_units, suspect_cells
from bench.rails.plan.schedule import Cell, Units


def quiet_fill(cols: PairColumns, units: Units | None, suspects: Sequence[Cell]) -> list[QuietCell]:
    """The cells between units (``(rail, a, b)``) that the quiet pass takes after the suspects: every one measured
    in the matrix and not a suspect, the slowest sample first (a stopped one slowest), each cell once, only as many
    as the pass takes beside the suspects (``remeasure.leaf_capped``: up to ``QUIET_PER_LEAF`` a leaf); empty
    without two units. Every rank builds the same rounds from rank 0's list."""
    if not quiet_units(units) or not len(cols):
        return []
    assert units is not None  # quiet_units is 0 without them
    of = np.asarray(units.of, dtype=np.int64)
    matrix = cols.confirm == 0
    low = np.minimum(cols.node, cols.peer)[matrix]
    high = np.maximum(cols.node, cols.peer)[matrix]
    rail = cols.rail[matrix]
    cross = (low >= 0) & (high < len(of))  # a node outside the run's list is no cell of it
    cross[cross] = of[low[cross]] != of[high[cross]]
    low, high, rail = low[cross], high[cross], rail[cross]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = cols.nbytes[matrix][cross] / cols.time_us[matrix][cross]
    rate = np.where(cols.stopped[matrix][cross] | ~np.isfinite(rate), -np.inf, rate)
    key = (rail * len(of) + low) * len(of) + high
    order = np.argsort(rate, kind="stable")
    _, first = np.unique(key[order], return_index=True)
    picks = order[np.sort(first)]  # each cell at its slowest sample, the slowest cell first
    suspected = suspect_cells(suspects)
    taken = set(suspected)
    others = zip(rail[picks].tolist(), low[picks].tolist(), high[picks].tolist(), strict=True)
    # Only what the pass will take: the list goes to every rank.
    return [cell for cell in leaf_capped([*suspected, *others], of) if cell not in taken]
