"""A switch is named from evidence that persists over independent rounds (bench.rails.diagnosis.persistence).

16 nodes in 2 units of 8, 4 rails, a non-blocking tree (8 uplinks per leaf), one repeat of the round-robin
matrix (15 rounds) and two re-measurements. A hot spot that slows one leaf's cross-unit cells in one round,
and happens to be there again when that round is re-measured, is one round's evidence: it names nothing (the
count of cells alone named an uplink; and its cells, each slow in every sample, are not eight lone pairs either:
they all ran in that one round). A degraded uplink slows the same cells in every round they run: named. An
uplink's reproduced suspects are weighed against what noise gives between units, where congestion lives, and a
lone pair slow in a round that slowed its rail's other cross cells as much is that round's evidence.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.rails.diagnosis.expected import Expected
from bench.rails.diagnosis.localise import PairMatrix, diagnose
from bench.rails.diagnosis.persistence import one_rounds
from bench.rails.plan import capacity
from bench.rails.plan.fabric_map import FabricMap, Topology, place
from bench.rails.plan.schedule import schedule
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import TAPERED_AR

NODES, RAILS, UNIT = 16, 4, 8
RAIL = 1


def _fabric() -> FabricMap:
    model = Shape(NODES, RAILS, UNIT)
    cabling = model.cabling()
    nodes = [model.node_name(a) for a in range(NODES)]
    return place(Topology(cabling, cabling.rails), nodes, RAILS, lambda node, rail: None)


def _run(slow: np.ndarray, seed: int = 0) -> PairMatrix:
    """A healthy matrix at 48 Gb/s with 1% noise; the cells in ``slow`` (``[rail, a, b]``) at 30, in the matrix
    and in both re-measurements (the only cells re-measured)."""
    rng = np.random.default_rng(seed)
    busbw = 48.0 * np.exp(0.01 * rng.standard_normal((1, RAILS, NODES, NODES)))
    busbw = np.minimum(busbw, np.swapaxes(busbw, -1, -2))
    busbw[:, :, np.arange(NODES), np.arange(NODES)] = np.nan
    busbw[0][slow] = 30.0
    confirm = np.full((2, RAILS, NODES, NODES), np.nan)
    confirm[:, slow] = 30.0
    nodes = tuple(Shape(NODES).node_name(a) for a in range(NODES))
    return PairMatrix(nodes, tuple(range(RAILS)), busbw, confirm=confirm)


def _named(matrix: PairMatrix, with_rounds: bool) -> list[tuple[str, tuple[str, ...]]]:
    fabric = _fabric()
    load = None
    if with_rounds:
        plane = fabric.plane()
        found = capacity.matrix_load(plane, schedule(NODES, 1, 0), 1)
        load = Expected(found.round_of, {}, {}, capacity.taper(plane))
    found_parts = diagnose(matrix, None, fabric=fabric, load=load).defects
    return [(d.kind, d.switches) for d in found_parts]


def _cross(rail: int) -> np.ndarray:
    unit = np.arange(NODES) // UNIT
    out = np.zeros((RAILS, NODES, NODES), dtype=bool)
    out[rail] = unit[:, None] != unit[None, :]
    return out


def test_one_rounds_hot_spot_repeated_by_its_re_measurement_names_nothing() -> None:
    rounds = schedule(NODES, 1, 0)
    # The round with the most pairs between the units: every one of them slowed on one rail, in the matrix
    # and again when the round is re-measured.
    busiest = max(rounds, key=lambda r: sum((a // UNIT) != (b // UNIT) for a, b in r.pairs))
    hot = np.zeros((RAILS, NODES, NODES), dtype=bool)
    for a, b in busiest.pairs:
        if a // UNIT != b // UNIT:
            hot[RAIL, a, b] = hot[RAIL, b, a] = True
    assert hot.sum() // 2 == 8
    matrix = _run(hot)
    # Counted cell by cell (no rounds known), eight reproduced suspects convict the rail's uplinks.
    assert _named(matrix, with_rounds=False) == [("uplink", ("leaf-su1-r1", "leaf-su2-r1"))]
    # Counted by rounds, they are one round's: nothing is named, they are transients.
    assert _named(matrix, with_rounds=True) == []


def test_a_persistent_uplink_fault_across_rounds_is_named() -> None:
    # A degraded uplink slows every cross-unit cell of the rail (two units: either leaf's uplinks carry each of
    # them), in every round those cells ran: 64 cells over the rounds that cross.
    matrix = _run(_cross(RAIL))
    assert _named(matrix, with_rounds=True) == [("uplink", ("leaf-su1-r1", "leaf-su2-r1"))]


def _round_cells(rounds: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One repeat of ``rounds`` rounds between two units of ``cells`` nodes each, on one rail: round r pairs node i
    of the first unit with node ``(i + r) mod cells`` of the second. Returns ``round_of`` (``[repeat, a, b]``),
    ``between`` (``[rail, a, b]``) and every cross cell's ``[rail, a, b]`` mask per round (``[round, rail, a, b]``)."""
    n = 2 * cells
    round_of = np.full((1, n, n), -1, dtype=np.int64)
    by_round = np.zeros((rounds, 1, n, n), dtype=bool)
    for r in range(rounds):
        for i in range(cells):
            a, b = i, cells + (i + r) % cells
            round_of[0, a, b] = round_of[0, b, a] = r
            by_round[r, 0, a, b] = by_round[r, 0, b, a] = True
    unit = np.arange(n) // cells
    between = (unit[:, None] != unit[None, :])[None]
    return round_of, between, by_round


def test_a_lone_pair_whose_round_slowed_its_whole_leaf_is_that_rounds_evidence() -> None:
    # A hot round: all 16 cross cells slow in the matrix and in both re-measurements (each slow in most of its
    # samples, ``Cells.pair_slow``); the slowest of them alone ranks beyond noise and is the one lone pair. The
    # other fifteen are the same round's evidence: the pair stays a transient (clean run 409 of tapered-ar).
    round_of, between, by_round = _round_cells(rounds=4, cells=16)
    slow = by_round[2][None]
    lone = np.zeros_like(between)
    lone[0, 4, 16 + 6] = lone[0, 16 + 6, 4] = True
    assert round_of[0, 4, 22] == 2
    assert one_rounds(slow, round_of, lone, between, beside=slow[0]).sum() == 2  # both directions of the pair
    # Counted against the lone pairs alone, the pair was its own evidence.
    assert not one_rounds(slow, round_of, lone, between).any()


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_one_rounds_marks_exactly_the_lone_pairs_with_another_slow_cell_in_their_round(data: st.DataObject) -> None:
    rounds, cells = data.draw(st.integers(2, 5)), data.draw(st.integers(2, 6))
    round_of, between, _ = _round_cells(rounds, cells)
    cross = np.argwhere(np.triu(between[0], k=1))
    chosen = data.draw(
        st.lists(st.sampled_from([tuple(c) for c in cross]), min_size=1, max_size=len(cross), unique=True)
    )
    beside = np.zeros_like(between)
    for a, b in chosen:
        beside[0, a, b] = beside[0, b, a] = True
    lone_at = data.draw(st.lists(st.sampled_from(chosen), min_size=1, unique=True))
    lone = np.zeros_like(between)
    for a, b in lone_at:
        lone[0, a, b] = lone[0, b, a] = True
    out = one_rounds(beside[None], round_of, lone, between, beside=beside)
    for a, b in lone_at:
        others = beside[0] & (round_of[0] == round_of[0, a, b])
        company = int(np.triu(others, k=1).sum()) >= 2
        assert out[0, a, b] == out[0, b, a] == company
    assert not (out & ~lone).any()


def _congested(reproduced_on: int, count: int) -> PairMatrix:
    """Congestion between units: on every rail ``count`` cross-unit cells slow in the matrix (at 25) and normal in
    both re-measurements, transients; on rail ``reproduced_on``, ``count`` more, each in a round of its own and at
    nodes of their own as far as they go, slow in the matrix and in one of the two re-measurements (at 30)."""
    rng = np.random.default_rng(1)
    busbw = 48.0 * np.exp(0.01 * rng.standard_normal((1, RAILS, NODES, NODES)))
    busbw = np.minimum(busbw, np.swapaxes(busbw, -1, -2))
    busbw[:, :, np.arange(NODES), np.arange(NODES)] = np.nan
    confirm = np.full((2, RAILS, NODES, NODES), np.nan)
    cross = [[(a, b) for a, b in r.pairs if a // UNIT != b // UNIT] for r in schedule(NODES, 1, 0)]
    used: set[int] = set()
    again = []
    for pairs in [c for c in cross if c][:count]:  # one per round, at the least used nodes
        a, b = min(pairs, key=lambda p: (p[0] in used) + (p[1] in used))
        used |= {a, b}
        again.append((a, b))
    for k in range(RAILS):
        taken = again if k == reproduced_on else []
        slow = [p for pairs in cross for p in pairs if p not in taken][1::3][:count]
        for (a, b), value, second in [*((p, 25.0, 48.0) for p in slow), *((p, 30.0, 30.0) for p in taken)]:
            busbw[0, k, a, b] = busbw[0, k, b, a] = value
            confirm[:, k, a, b] = confirm[:, k, b, a] = (48.0, second)
    nodes = tuple(Shape(NODES).node_name(a) for a in range(NODES))
    return PairMatrix(nodes, tuple(range(RAILS)), busbw, confirm=confirm)


def test_an_uplink_is_judged_against_the_noise_between_units_not_the_fabric_wide_rate() -> None:
    # Twelve reproduced suspects on rail 1's cross cells, each reproduced once, in twelve rounds: beside twelve
    # transients between units on every rail, that is what congestion re-measured gives (about 4 expected), not
    # an uplink. Against the fabric-wide rate (no transient within the units: about 1 expected) it was one.
    assert _named(_congested(RAIL, 12), with_rounds=True) == []
    # The same congestion beside a degraded uplink, every cross cell of rail 1 slow in every sample: named.
    congested = _congested(RAIL, 12)
    busbw, confirm = congested.busbw.copy(), congested.again.dense()
    busbw[0][_cross(RAIL)] = confirm[:, _cross(RAIL)] = 30.0
    matrix = PairMatrix(congested.nodes, congested.rails, busbw, confirm=confirm)
    assert _named(matrix, with_rounds=True) == [("uplink", ("leaf-su1-r1", "leaf-su2-r1"))]


def test_a_healthy_leaf_is_judged_against_its_own_rails_rate_of_hot_rounds_where_that_runs_high() -> None:
    """``ci/diagnosis_sim.py --regime tapered-ar --sizes 200x8``, scenario 1031053 (an HCA, node137 on rail 1): on
    rail 2 the hot spots that adaptive routing moves between rounds visited its other leaves' cells in 15% of their
    rounds, against a median over the rails of 8%, and leaf-su2-r2 was slow in 12 of its 24 (its 16 flows alone in
    the quiet pass all ran clear): named as its uplinks beside the cable. Its binomial tail, over the 64 parts
    tried, is 7e-6 against the 8% (under the 1e-5 that names a part) and 4e-3 against its rail's 15%."""
    regime = TAPERED_AR
    result = diagnosis_sim().run_one("200x8", Shape(200, 8, 32, regime.oversubscription), "hca", 1031053, regime)
    assert result.named == result.expected == {("cable", "node137", 1)}
