"""Quiet cells that read low are measured alone again, and an uplink is named from the ones held low
(``bench.rails.diagnosis.alone``, ``bench.rails.plan.remeasure.quiet_repeat_rounds``): under ECMP a degraded uplink
carries about one flow in eight of its leaf's, and one low sample alone is as deep as noise's heavy tail goes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.rails.diagnosis import alone, link_faults
from bench.rails.diagnosis.matrix import PairMatrix, PairTime, pair_matrix
from bench.rails.plan.remeasure import QUIET_REPEATS, quiet_repeat_rounds
from bench.rails.plan.schedule import Units
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import ADAPTIVE, ECMP, KIND, TAPERED_AR, TAPERED_ECMP

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


def test_a_cell_measured_alone_again_keeps_its_first_sample_its_best_and_its_count() -> None:
    matrix = _matrix([{(0, 2): 70.0, (1, 3): 99.0}, {(0, 2): 96.0}, {(0, 2): 71.0}], stopped_at=1)
    held = matrix.alone
    assert held is not None
    # Held at the cells measured alone, each pair once (a < b): 0-2 and 1-3.
    assert list(zip(held.rail.tolist(), held.low.tolist(), held.high.tolist(), strict=True)) == [(0, 0, 2), (0, 1, 3)]
    # The switch verdicts read the quiet pass's own sample (a spine under adaptive routing slows a flow only in
    # the samples that crossed it); the held-low test reads the best.
    assert held.first.tolist() == [70.0, 99.0] and held.plane(0)[0, 2] == held.plane(0)[2, 0] == 70.0
    assert held.best.tolist() == [96.0, 99.0] and held.count.tolist() == [3, 1]
    assert np.isnan(held.plane(0)[0, 3]) and held.worst_again[0] == 71.0 and np.isnan(held.worst_again[1])
    assert held.spread(held.count, np.uint8)[0, 2, 0] == 3 and held.spread(held.count, np.uint8)[0, 0, 3] == 0
    assert matrix.again.passes == 1


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
    assert alone.chance_held(3) == pytest.approx(alone.LOW_QUANTILE**3)


def test_low_again_is_low_in_the_quiet_pass_and_in_one_of_its_repeats_at_least() -> None:
    """A spine under adaptive routing slows a flow only when a sample crosses it: low in the quiet pass and in one
    of its repeats is low again, though not held low; low only in a repeat is not (the quiet pass chose it for
    reading low)."""
    first = {(0, 2): 70.0, (1, 3): 72.0, (0, 3): 99.5}
    repeats = [{(0, 2): 99.0, (1, 3): 99.2, (0, 3): 70.0}, {(0, 2): 71.0, (1, 3): 99.1, (0, 3): 99.0}]
    matrix = _matrix([first, *repeats])
    assert matrix.alone is not None and matrix.alone.worst_again.tolist()[:2] == [71.0, 70.0]  # 0-2, 0-3
    again, tried = alone.low_again(matrix, INSIDE), alone.repeated(matrix)
    assert again[0, 0, 2] and again[0, 2, 0] and not again[0, 1, 3] and not again[0, 0, 3]
    assert tried[0, 0, 2] and tried[0, 1, 3] and not tried[0, 1, 2]
    assert not alone.held_low(matrix, INSIDE).any()
    assert not alone.low_again(_matrix([first]), INSIDE).any()  # nothing measured again yet
    assert alone.chance_low_again() == pytest.approx(1 - (1 - alone.LOW_QUANTILE) ** QUIET_REPEATS)


def test_a_cell_held_low_is_measured_alone_once_more_and_no_further() -> None:
    """The second stage: a cell held low in its first three samples gets two more, so that it can stand alone;
    after five it is done, and one that read normal again is never repeated."""
    first = {(0, 2): 70.0, (1, 3): 72.0}
    again = [{(0, 2): 71.0, (1, 3): 99.0}] * QUIET_REPEATS
    assert alone.low_quiet_cells(_matrix([first, *again]), INSIDE) == [(0, 0, 2)]
    done = _matrix([first, *again, *[{(0, 2): 69.0}] * QUIET_REPEATS])
    assert alone.MOST_SAMPLES == 1 + 2 * QUIET_REPEATS
    assert alone.low_quiet_cells(done, INSIDE) == []
    assert alone.held_low(done, INSIDE)[0, 0, 2] == alone.MOST_SAMPLES


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


@pytest.mark.parametrize("seed", [1000097, 1000526])
def test_one_flow_held_low_in_five_samples_names_its_uplink(seed: int) -> None:
    """The same model's uplink scenarios 1000097 and 1000526: one of the uplink's flows among the leaf's
    quiet cells, at 0.78 of the mark in each of its five samples alone, both its ends clean within their units.
    Three samples leave it at 8e-6 a cell (one run in two thousand holds one); five, at 3e-9."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 32, ECMP.oversubscription), "uplink", seed, ECMP)
    assert result.named == result.expected


@pytest.mark.parametrize("seed", [3, 11])
def test_clean_ecmp_runs_name_nothing_from_flows_alone(seed: int) -> None:
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 32, ECMP.oversubscription), "clean", seed, ECMP)
    assert result.named == set()


def test_the_passes_alone_fold_into_one_plane_as_they_are_read() -> None:
    """Rank 0 builds the matrix with the quiet pass and its repeats folded into one plane (``pair_matrix``'s
    ``alone_from``: at 1024 x 8 a plane a pass is 67 MB); it reads as the plane a pass, split afterwards."""
    rng = np.random.default_rng(7)
    times = []
    for confirm in range(6):  # the matrix, 2 confirmation passes, the quiet pass and 2 repeats
        cells = [
            (k, a, b) for k in range(2) for a in range(6) for b in range(a + 1, 6) if confirm == 0 or rng.random() < 0.4
        ]
        for k, a, b in cells:
            for x, y in ((a, b), (b, a)):
                stopped = bool(rng.random() < 0.1)
                times.append(PairTime(x, y, k, 0, 0, 1 << 20, float(rng.uniform(80, 120)), stopped, confirm))
    split = pair_matrix(times, [f"n{i}" for i in range(6)], 2).with_quiet_pass(2)
    folded = pair_matrix(times, [f"n{i}" for i in range(6)], 2, alone_from=3)
    assert folded.with_quiet_pass(2) is folded
    np.testing.assert_array_equal(folded.busbw, split.busbw)
    for name in ("rail", "low", "high", "values", "stopped"):
        np.testing.assert_array_equal(getattr(folded.again, name), getattr(split.again, name), err_msg=name)
    assert folded.alone is not None and split.alone is not None
    for name in ("rail", "low", "high", "first", "best", "count", "worst_again"):
        np.testing.assert_array_equal(getattr(folded.alone, name), getattr(split.alone, name), err_msg=name)
    assert folded.alone.count.max() == 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [548, 552])
def test_healthy_flows_between_units_slow_once_alone_name_no_spine(seed: int) -> None:
    """``ci/diagnosis_sim.py --regime tapered-ecmp --sizes 1024x8``, clean runs 548 and 552: seven of the thousand
    quiet cells read slow, more than the noise within leaves gives, on five of the eight rails, and the spine layer
    was named. Measured alone again, one of 23 (and of 29) read low again, as healthy flows do (about one in 25)."""
    result = diagnosis_sim().run_one(
        "1024x8", Shape(1024, 8, 32, TAPERED_ECMP.oversubscription), "clean", seed, TAPERED_ECMP
    )
    assert result.named == set()


@pytest.mark.parametrize("seed", [1000000, 1000002])
def test_a_spine_under_adaptive_routing_is_named_from_flows_low_again(seed: int) -> None:
    """``--regime adaptive --sizes 256x8 --kinds spine``: the spine slows a fifth of the quiet cells, and each
    sample alone is routed afresh, so held low in every sample only two of 52 are; low again in one of two repeats,
    21 to 28 of about 55 (a healthy flow: one in 25)."""
    result = diagnosis_sim().run_one("256x8", Shape(256, 8, 32, ADAPTIVE.oversubscription), "spine", seed, ADAPTIVE)
    assert result.named == result.expected == {("spine",)}


def test_flows_low_again_on_one_rail_beside_a_cable_are_an_uplink_not_a_spine() -> None:
    """``--regime tapered-ecmp --sizes 256x8 --kinds uplink``, scenario 1000032, sixteen quiet cells a leaf: the
    uplink's flows read low again on its rail (9), noise's on two others (1 each); with two rails enough, the spine
    layer was named. A spine slows every rail it joins: it needs them on most."""
    shape = Shape(256, 8, 32, TAPERED_ECMP.oversubscription)
    result = diagnosis_sim().run_one("256x8", shape, "uplink", 1000032, TAPERED_ECMP)
    assert result.named == result.expected and [kind for kind, *_ in result.expected] == ["uplink"]


@pytest.mark.slow
def test_a_spine_under_ecmp_is_named_from_flows_low_again_not_slow_ones() -> None:
    """``--regime ecmp --sizes 1024x8 --seed 2000``, scenario 1002072: a spine whose quiet flows were not slow by the
    rule every sample is judged by (1 of 2,018: under ECMP that rule's spread is the collisions'), while 280 of the
    321 measured alone again read low again, on all eight rails. Counting slow quiet samples missed it."""
    result = diagnosis_sim().run_one("1024x8", Shape(1024, 8, 32, ECMP.oversubscription), "spine", 1002072, ECMP)
    assert result.named == result.expected == {("spine",)}


@pytest.mark.slow
def test_a_spine_under_ecmp_persistent_on_few_rails_is_named_from_flows_low_again() -> None:
    """``--regime ecmp --sizes 1024x8 --seed 2000 --kinds spine``, scenario 1002003: every rail's cells between
    units are slow, 1,602 to 1,748 reproduced suspects a rail, the collisions' as many as the spine's, and as they
    move with the rounds the slowdown held persistent leaf by leaf on 3 rails of 8 only. The spine needed all eight
    and was never judged by its flows alone, which read low again on most rails."""
    result = diagnosis_sim().run_one("1024x8", Shape(1024, 8, 32, ECMP.oversubscription), "spine", 1002003, ECMP)
    assert result.named == result.expected == {("spine",)}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7001, 7007])
def test_moving_hot_spots_on_every_rail_name_no_spine_from_flows_low_again_now_and_then(seed: int) -> None:
    """``--regime tapered-ar --sizes 256x8 --seed 7000``, clean runs: adaptive routing's hot spots left every rail's
    cells between units elevated, persistent on none, and some quiet flows low again in one of two samples alone;
    the spine's rule without persistence read that as a spine in 23 of 100 runs. It now needs flows held low in
    every sample alone (``Paths.quiet_held``), as ECMP's path-keeping gives a degraded spine's."""
    result = diagnosis_sim().run_one("256x8", Shape(256, 8, 32, TAPERED_AR.oversubscription), "clean", seed, TAPERED_AR)
    assert result.named == set()


def test_a_link_slow_only_across_units_is_cleared_by_a_flow_alone_only_beside_a_quiet_leaf() -> None:
    """``link_faults.only_beyond_its_leaf`` on one link's row: 31 partners on its leaf, 31 across units, 4 of those
    slow (none on its leaf: a chance of 0.014 were it the link, short of 1 in 1000 on its own)."""
    across = np.arange(62) >= 31
    measured = np.ones(62, dtype=bool)
    slow = np.zeros(62, dtype=bool)
    slow[[31, 40, 50, 60]] = True
    none = np.zeros(62, dtype=bool)
    clear, low = none.copy(), none.copy()
    clear[40] = True
    assert not link_faults.only_beyond_its_leaf(measured, slow, slow, across)
    assert not link_faults.only_beyond_its_leaf(measured, slow, slow, across, (none, none))
    assert link_faults.only_beyond_its_leaf(measured, slow, slow, across, (clear, none))
    low[50] = True  # another of its slow flows read low alone: that one stays the link's to explain
    assert not link_faults.only_beyond_its_leaf(measured, slow, slow, across, (clear, low))
    on_leaf = slow.copy()
    on_leaf[3] = True  # slow on its own leaf too: a cable's fault
    assert not link_faults.only_beyond_its_leaf(measured, on_leaf, on_leaf, across, (clear, none))
    # Fewer partners on its leaf (4: a chance of 0.57) say nothing, and a flow alone does not clear it by itself.
    few = measured & (across | (np.arange(62) < 4))
    assert not link_faults.only_beyond_its_leaf(few, slow, slow, across, (clear, none))


def test_a_link_singled_out_among_its_leaf_mates_is_its_own_though_slow_only_across_units() -> None:
    """``link_faults.Mates``: the link of the test above, but slow with 20 of its 31 partners across units (a chance
    of 1e-14 of none on its leaf). Beside leaf-mates slow with as large a share of theirs (a leaf's collisions) it
    stays beyond its leaf; beside leaf-mates slow with 1 of their 930 it is its own, where its slow flows ran clear
    alone, and not where one read low alone (a static route's degraded uplink) or none was measured alone."""
    across = np.arange(62) >= 31
    measured = np.ones(62, dtype=bool)
    slow = across & (np.arange(62) < 51)
    none = np.zeros(62, dtype=bool)
    clear, low = none.copy(), none.copy()
    clear[[31, 40]] = True
    low[45] = True
    crowded = link_faults.Mates(slow=600, across=930, links=8192)
    quiet = link_faults.Mates(slow=1, across=930, links=8192)
    assert link_faults.only_beyond_its_leaf(measured, slow, slow, across, (clear, none), crowded)
    assert not link_faults.only_beyond_its_leaf(measured, slow, slow, across, (clear, none), quiet)
    assert link_faults.only_beyond_its_leaf(measured, slow, slow, across, (clear, low), quiet)
    assert link_faults.only_beyond_its_leaf(measured, slow, slow, across, (none, none), quiet)
    assert link_faults.only_beyond_its_leaf(measured, slow, slow, across, None, quiet)
    # Family-wise: 4 of 31 beside leaf-mates at 5% is a chance of 0.06, nothing at 8,192 links.
    assert not link_faults.Mates(slow=47, across=930, links=8192).single_out(4, 31)
    assert not link_faults.Mates(slow=0, across=0, links=1).single_out(20, 31)  # no leaf-mate across units


def test_a_flaky_link_slow_in_the_rounds_across_units_is_named_as_its_cable() -> None:
    """``--regime kind --sizes 144x8 --unit 8 --seed 530000``, fault scenario 27 (seed 1530027, flaky): node001's
    rail-3 link slow in a spell that fell in the rounds across units (20 of its 34 partners there, at a fifth of line
    in every sample; none of its 7 on its leaf), its leaf-mates slow with 1 of their 238, and 16 of its slow flows
    clear alone in the quiet pass, once the spell had passed. Ruled beyond its leaf, it was named as 10 pairs."""
    result = diagnosis_sim().run_one("144x8", Shape(144, 8, 8, KIND.oversubscription), "flaky", 1530027, KIND)
    assert result.named == result.expected == {("cable", "node001", 3)}, result.named


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "seed", "was"),
    [
        ("two", 1002024, "a leaf and a node, and three healthy cables beside them"),
        ("node", 1002041, "a node, and a healthy cable beside it"),
    ],
)
def test_a_links_partners_slow_across_units_that_ran_clear_alone_name_no_cable(kind: str, seed: int, was: str) -> None:
    """``--regime ecmp --sizes 1024x8 --seed 2000``: each healthy cable named had 4 to 6 of its 31 partners across
    units at a quarter of line in every sample (a collision each, replayed by the re-measurement beside the same
    suspects) and none slow on its own leaf; one or two of those partners, measured alone, ran at line rate."""
    result = diagnosis_sim().run_one("1024x8", Shape(1024, 8, 32, ECMP.oversubscription), kind, seed, ECMP)
    assert result.named == result.expected, (was, result.expected, result.named)
