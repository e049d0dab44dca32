"""Quiet cells that read low are measured alone again, and an uplink is named from the ones held low
(``bench.rails.diagnosis.alone``, ``bench.rails.plan.remeasure.quiet_repeat_rounds``): under ECMP a degraded uplink
carries about one flow in eight of its leaf's, and one low sample alone is as deep as noise's heavy tail goes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.rails.diagnosis import alone
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.plan.remeasure import QUIET_REPEATS, quiet_repeat_rounds
from bench.rails.plan.schedule import Units
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import ECMP

NODES = ("n0", "n1", "n2", "n3")


def _matrix(alone_samples: list[dict[tuple[int, int], float]], stopped_at: int | None = None) -> PairMatrix:
    """Four nodes on one rail, units {0, 1} and {2, 3}: every pair in the matrix at 100 Gb/s but 0-1 at 98, and
    the quiet samples given per pass (a cell once each way), after one confirmation pass."""
    busbw = np.full((1, 1, 4, 4), 100.0)
    busbw[0, 0, 0, 1] = busbw[0, 0, 1, 0] = 98.0
    np.fill_diagonal(busbw[0, 0], np.nan)
    confirm = np.full((1 + len(alone_samples), 1, 4, 4), np.nan)
    for i, samples in enumerate(alone_samples, start=1):
        for (a, b), value in samples.items():
            confirm[i, 0, a, b] = confirm[i, 0, b, a] = value
    stopped = np.zeros(confirm.shape, dtype=bool)
    if stopped_at is not None:
        stopped[stopped_at, 0, 0, 2] = stopped[stopped_at, 0, 2, 0] = True
    return PairMatrix(NODES, (0,), busbw, confirm=confirm, confirm_stopped=stopped).with_quiet_pass(1)


INSIDE = np.zeros((1, 4, 4), dtype=bool)
INSIDE[0, 0, 1] = INSIDE[0, 1, 0] = INSIDE[0, 2, 3] = INSIDE[0, 3, 2] = True


def test_a_cell_measured_alone_again_keeps_its_best_sample_and_its_count() -> None:
    matrix = _matrix([{(0, 2): 70.0, (1, 3): 99.0}, {(0, 2): 96.0}, {(0, 2): 71.0}], stopped_at=3)
    assert matrix.quiet is not None and matrix.quiet_count is not None and matrix.quiet_stopped is not None
    assert matrix.quiet[0, 0, 2] == matrix.quiet[0, 2, 0] == 96.0
    assert matrix.quiet[0, 1, 3] == 99.0 and np.isnan(matrix.quiet[0, 0, 3])
    assert matrix.quiet_count[0, 0, 2] == 3 and matrix.quiet_count[0, 1, 3] == 1 and matrix.quiet_count[0, 0, 3] == 0
    # The best sample (96, pass 2) ran to its end; the stopped one (pass 3) is not the one kept.
    assert not matrix.quiet_stopped[0, 0, 2]
    assert matrix.confirm_values.shape[0] == 1


def test_the_mark_is_the_rails_own_flows_within_units() -> None:
    matrix = _matrix([{(0, 2): 99.0}])
    mark = alone.low_marks(matrix.busbw, INSIDE)[0]
    assert 98.0 <= mark <= 100.0
    assert alone.low_marks(matrix.busbw, np.zeros_like(INSIDE))[0] == -np.inf


def test_low_once_is_measured_again_and_held_low_only_when_low_every_time() -> None:
    first = {(0, 2): 70.0, (1, 3): 72.0, (0, 3): 99.5}
    matrix = _matrix([first])
    assert alone.low_quiet_cells(matrix, INSIDE) == [(0, 0, 2), (0, 1, 3)]
    assert not alone.held_low(matrix, INSIDE).any()  # one sample: not yet held
    again = [{(0, 2): 71.0, (1, 3): 99.0}] * QUIET_REPEATS
    held = alone.held_low(_matrix([first, *again]), INSIDE)
    assert held[0, 0, 2] and held[0, 2, 0] and not held[0, 1, 3] and not held[0, 0, 3]
    assert alone.chance_held() == pytest.approx(alone.LOW_QUANTILE ** (1 + QUIET_REPEATS))


def test_the_repeats_run_each_low_cell_alone_on_its_leaves() -> None:
    units = Units((0,) * 4 + (1,) * 4 + (2,) * 4)
    low = [(0, 0, 4), (0, 5, 1), (1, 0, 4), (0, 2, 9), (3, 6, 10)]
    rounds = quiet_repeat_rounds(low, 5, units)
    assert {r.confirm for r in rounds} == set(range(5, 5 + QUIET_REPEATS))
    runs = Counter(cell for r in rounds for cell in r.cells or ())
    assert runs == {cell: QUIET_REPEATS for cell in [(0, 0, 4), (0, 1, 5), (1, 0, 4), (0, 2, 9), (3, 6, 10)]}
    for r in rounds:
        cells = r.cells or frozenset()
        nodes = [x for pair in r.pairs for x in pair]
        assert len(nodes) == len(set(nodes)), r  # a pair's rails run together, each node in one pair
        leaves = [(units.of[x], k) for k, a, b in cells for x in (a, b)]
        assert len(leaves) == len(set(leaves)), r  # one flow between units per leaf
    assert quiet_repeat_rounds([], 5, units) == ()
    assert quiet_repeat_rounds(low, 5, None) == ()


@pytest.mark.parametrize("seed", [1000000, 1000011, 1000024])
def test_an_uplink_under_ecmp_is_named_from_its_flows_held_low(seed: int) -> None:
    """``ci/diagnosis_sim.py --regime ecmp`` at 64 x 8, uplink scenarios that named nothing when a low quiet
    sample was judged once, against the fabric's spread (0.64-0.78 of line alone, among healthy flows at
    0.90-0.97): measured alone twice more, two to seven of them stay low and the uplink is named."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 32, ECMP.oversubscription), "uplink", seed, ECMP)
    assert result.named == result.expected and any(kind == "uplink" for kind, _ in result.expected)


@pytest.mark.parametrize("seed", [3, 11])
def test_clean_ecmp_runs_name_nothing_from_flows_alone(seed: int) -> None:
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 32, ECMP.oversubscription), "clean", seed, ECMP)
    assert result.named == set()
