"""The absolute line judges a link by its level, read again with its re-measurements
(``bench.rails.diagnosis.line``): a healthy link at the line's edge is not held under it by its first seven samples,
and a cable under the line stays under it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.rails.diagnosis.line import low_cells
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import TAPERED_ECMP

MARK = math.log(0.9)


def _leaf_of_eight(link_rates: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """One rail of 8 nodes on one leaf, every pair at 0.96 of line but node 0's, at ``link_rates`` (share of line)."""
    cells = np.full((1, 8, 8), math.log(0.96))
    for b, rate in enumerate(link_rates, start=1):
        cells[0, 0, b] = cells[0, b, 0] = math.log(rate)
    measured = ~np.eye(8, dtype=bool)[None]
    return cells, measured


def _again(rates: dict[int, tuple[float, float]]) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Node 0's re-measured cells on rail 0, two passes each, as the judge holds them (log rates ``[pass, i]``)."""
    partners = np.array(sorted(rates), dtype=np.int64)
    values = np.log(np.array([rates[int(b)] for b in partners])).T
    zeros = np.zeros(len(partners), dtype=np.int64)
    return (zeros, zeros.copy(), partners), values


# Node 0's seven partners on its leaf at the first pass: five of them just under the 90% line, the upper quartile
# at 0.8995 (what a link at the model's floor reads now and then).
FIRST = [0.8975, 0.885, 0.919, 0.9, 0.544, 0.8875, 0.898]


def test_a_link_whose_first_samples_sit_just_under_the_line_is_low_without_its_re_measurements() -> None:
    cells, measured = _leaf_of_eight(FIRST)
    assert low_cells(cells, measured, None, MARK)[0, 0, 1:].all()


def test_its_re_measurements_at_the_line_clear_it() -> None:
    """The re-measurements of its five suspects scatter around the line, as a healthy link's do (seed 41031's)."""
    cells, measured = _leaf_of_eight(FIRST)
    again = _again({1: (0.911, 0.748), 2: (0.921, 0.898), 5: (0.889, 0.919), 6: (0.932, 0.917), 7: (0.883, 0.903)})
    assert not low_cells(cells, measured, None, MARK, again)[0, 0].any()


def test_a_cable_whose_re_measurements_stay_under_the_line_stays_low() -> None:
    """A cable at 87% of line: every first sample and every re-measurement under the line."""
    cells, measured = _leaf_of_eight([0.87, 0.86, 0.875, 0.88, 0.866, 0.872, 0.869])
    again = _again({b: (0.868, 0.879) for b in range(1, 8)})
    assert low_cells(cells, measured, None, MARK, again)[0, 0, 1:].all()


def test_only_the_low_links_rows_are_read_again() -> None:
    """A re-measurement of a healthy link's cell (node 3 with node 4) changes nothing for either."""
    cells, measured = _leaf_of_eight(FIRST)
    again = ((np.array([0]), np.array([3]), np.array([4])), np.log(np.array([[0.5], [0.5]])))
    low = low_cells(cells, measured, None, MARK, again)
    assert low[0, 0, 1:].all() and not low[0, 3, 4]


@pytest.mark.parametrize("seed", [41031, 41083])
def test_a_healthy_link_at_the_regimes_floor_on_a_leaf_of_eight_is_no_cable(seed: int) -> None:
    """``ci/diagnosis_sim.py --regime tapered-ecmp --unit 8`` clean runs 41031 and 41083: node060's rail-5 link and
    node025's rail-0 link sat at the regime's floor (92% of line, 89-91% as a pair reads it). Their seven partners on
    their leaf put the upper quartile at 359.7 and 357.0 Gb/s against a line of 360, and each was named a cable."""
    shape = Shape(64, 8, 8, TAPERED_ECMP.oversubscription)
    result = diagnosis_sim().run_one("64x8", shape, "clean", seed, TAPERED_ECMP)
    assert result.named == set()
