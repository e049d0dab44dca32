"""The quiet pass measures every leaf's flows between units, whatever the suspects (``bench.rails.diagnosis
.quiet_fill``), and judges them against their own ends (``bench.rails.diagnosis.alone.OwnEnds``).

Under ECMP with leaves of 8 or 16 nodes, most of a rail's cells cross between units and every one of them collides
in the matrix: none is a suspect, the quiet pass measured nothing, and degraded uplinks and spines went unnamed
(``ci/diagnosis_sim.py --regime ecmp --unit 8``: 49 of 65 exact at 64 x 8;
docs/rails.md, "The fabric's cabling", its "Flows alone at every leaf")."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rails.diagnosis import alone
from bench.rails.diagnosis.matrix import PairColumns, PairMatrix
from bench.rails.diagnosis.quiet_fill import quiet_fill
from bench.rails.plan.remeasure import QUIET_PER_LEAF, remeasurement_rounds
from bench.rails.plan.schedule import Units, schedule
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import ECMP, TAPERED, Regime

SIM = diagnosis_sim()
UNIT = 6
UNITS = Units((0,) * UNIT + (1,) * UNIT)


def _columns(rate: dict[tuple[int, int, int], float], nbytes: int = 1 << 20) -> PairColumns:
    """One matrix sample a direction of every cell in ``rate`` (``(rail, a, b)``: Gb/s), both directions alike."""
    rows = [(a, b, k) for (k, a, b) in rate] + [(b, a, k) for (k, a, b) in rate]
    node, peer, rail = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    gbps = np.array([rate[(k, min(a, b), max(a, b))] for a, b, k in rows])
    zeros = np.zeros(len(rows), dtype=np.int64)
    time_us = nbytes * 8 / (gbps * 1e3)
    full = np.full(len(rows), nbytes, dtype=np.int64)
    return PairColumns(node, peer, rail, zeros, zeros, full, time_us, np.zeros(len(rows), bool), zeros)


def _every_cell(rails: int) -> dict[tuple[int, int, int], float]:
    """Every pair of the 12 nodes on ``rails`` rails, each at its own rate: 100 Gb/s less a little per cell."""
    n = 2 * UNIT
    cells = [(k, a, b) for k in range(rails) for a in range(n) for b in range(a + 1, n)]
    return {c: 100.0 - 0.01 * i for i, c in enumerate(cells)}


def test_every_leaf_is_filled_with_its_slowest_flows_between_units_beside_the_suspects() -> None:
    rate = _every_cell(2)
    suspect = (0, 0, 1, 0, UNIT)  # a suspect between units on rail 1: the pass takes it first, not again
    fill = quiet_fill(_columns(rate), UNITS, [suspect])
    assert all((a < UNIT) != (b < UNIT) and a < b for _, a, b in fill)  # between units only, each pair once
    assert (1, 0, UNIT) not in fill
    for k in range(2):
        mine = [c for c in fill if c[0] == k]
        # Two leaves a rail (one per unit), each with 36 cells between units: QUIET_PER_LEAF of them a leaf, the
        # suspect counted, the slowest first.
        assert len(mine) == QUIET_PER_LEAF - (k == 1)
        between = sorted((c for c in rate if c[0] == k and (c[1] < UNIT) != (c[2] < UNIT)), key=rate.__getitem__)
        assert mine == [c for c in between if c != (1, 0, UNIT)][: len(mine)]
    # Nothing to fill within one unit, or without the cabling.
    assert quiet_fill(_columns(rate), Units((0,) * (2 * UNIT)), []) == []
    assert quiet_fill(_columns(rate), None, []) == []


def test_a_fabric_with_no_suspect_still_gets_its_quiet_pass_one_flow_per_leaf_a_round() -> None:
    rate = _every_cell(2)
    rounds = schedule(2 * UNIT, 1, 0, UNITS, 2)
    fill = quiet_fill(_columns(rate), UNITS, [])
    again = remeasurement_rounds(rounds, [], 2, UNITS, fill)
    assert again and all(r.confirm == 3 and r.cells is not None for r in again)
    measured = sorted(c for r in again for c in r.cells or ())
    assert measured == sorted(fill)
    for r in again:
        leaves = [(k, x < UNIT) for k, a, b in r.cells or () for x in (a, b)]
        assert len(leaves) == len(set(leaves))  # one flow per leaf in a round
    assert len(again) == QUIET_PER_LEAF
    # --confirm 0 re-measures nothing, quiet pass included.
    assert remeasurement_rounds(rounds, [], 0, UNITS, fill) == ()


def _own_matrix(quiet: list[dict[tuple[int, int], float]]) -> PairMatrix:
    """Eight nodes on three rails, units {0..3} and {4..7}: every pair within a unit at its slower end's level less
    a little noise (node 0 at the healthy floor, 92 Gb/s, the rest at 100), pairs between units at half of line in
    the matrix (collided), and the quiet pass's samples given per pass on every rail."""
    rng = np.random.default_rng(5)
    level = np.array([92.0] + [100.0] * 7)
    n = len(level)
    busbw = np.full((1, 3, n, n), 50.0)
    ends = np.minimum(level[:, None], level[None, :])
    for k in range(3):
        noisy = ends * (1 - np.abs(rng.normal(0, 0.004, (n, n))))
        busbw[0, k] = np.where(np.arange(n)[:, None] // 4 == np.arange(n)[None, :] // 4, noisy, 50.0)
        busbw[0, k] = np.minimum(busbw[0, k], busbw[0, k].T)
        np.fill_diagonal(busbw[0, k], np.nan)
    confirm = np.full((1 + len(quiet), 3, n, n), np.nan)
    for i, samples in enumerate(quiet, start=1):
        for (a, b), value in samples.items():
            confirm[i, :, a, b] = confirm[i, :, b, a] = value
    nodes = tuple(f"n{i}" for i in range(n))
    stopped = np.zeros(confirm.shape, dtype=bool)
    return PairMatrix(nodes, (0, 1, 2), busbw, confirm=confirm, confirm_stopped=stopped).with_quiet_pass(1)


def test_a_flow_alone_is_held_low_against_its_own_ends_at_the_runs_own_rate() -> None:
    # 0-4: node 0 sits at the healthy floor, and its flow alone runs at it every time. 1-5: both ends at 100, the
    # flow at 96 every time, a path its ends cannot explain. 2-6 and 3-7: healthy, once each.
    first = {(0, 4): 91.7, (1, 5): 96.0, (2, 6): 99.7, (3, 7): 99.8}
    again = {(0, 4): 91.8, (1, 5): 96.1}
    matrix = _own_matrix([first, again, again])
    inside = np.zeros((3, 8, 8), dtype=bool)
    inside[:, :4, :4] = inside[:, 4:, 4:] = True
    for k in range(3):
        np.fill_diagonal(inside[k], False)
    own = alone.OwnEnds.of(matrix, inside)
    assert own.held[:, 1, 5].tolist() == [3, 3, 3] and own.held[:, 5, 1].tolist() == [3, 3, 3]
    assert not own.held[:, 0, 4].any() and not own.held[:, 2, 6].any()
    # The rail's mark (its 2% quantile within units, node 0's cells) holds neither: 96 is above it.
    assert not alone.held_low(matrix, inside)[:, 1, 5].any()
    # One quiet cell in four read under its own mark on every rail: the run's rate, not the 2% of the mark.
    assert own.rate == pytest.approx(0.25)
    assert alone.chance_held(3, own.rate) == pytest.approx(0.25**3)


# Fault scenarios as ci/diagnosis_sim.py numbers them (--seed 81000 and 85000, 64 x 8; the spine at 1081000 with
# --kinds spine): each went unnamed before
# the quiet pass measured every leaf.
@pytest.mark.parametrize(
    ("unit", "kind", "seed"),
    [(8, "uplink", 1081006), (8, "spine", 1081000), (16, "uplink", 1085019), (16, "spine", 1085020)],
)
def test_under_ecmp_with_small_leaves_uplinks_and_spines_are_named_from_their_flows_alone(
    unit: int, kind: str, seed: int
) -> None:
    result = SIM.run_one("64x8", Shape(64, 8, unit, ECMP.oversubscription), kind, seed, ECMP)
    assert result.named == result.expected and result.actions_ok, (result.expected, result.named)


@pytest.mark.parametrize(("regime", "seed"), [(ECMP, 81000), (TAPERED, 85010)])
def test_a_clean_fabric_with_leaves_of_8_names_nothing_from_its_flows_alone(regime: Regime, seed: int) -> None:
    """Clean run 85010 of ``tapered`` named an uplink when the flows alone were judged against the rail's mark: two
    flows of a leaf whose ends sit at the healthy floor, under it in every sample."""
    result = SIM.run_one("64x8", Shape(64, 8, 8, regime.oversubscription), "clean", seed, regime)
    assert result.named == set() and result.below_target == 0
