"""What the fabric can carry in each round (bench.rails.plan.capacity), and how the judge uses it.

Tiny fabrics with textbook answers: max-min fair shares by progressive filling (Bertsekas and Gallager, "Data
Networks", 2nd ed., 6.5.2), a 2:1 taper that a round fills, destination routing's collisions, and the routing a
run's own rates show (bench.rails.diagnosis.expected).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.fabric.cabling import Cable, Cabling, HostPort, SwitchPort, normalised
from bench.fabric.cabling_plan import shape
from bench.rails.diagnosis.expected import Expected, judged_rates
from bench.rails.diagnosis.localise import PairMatrix, diagnose
from bench.rails.plan import capacity
from bench.rails.plan.capacity import Routes, fair_shares
from bench.rails.plan.fabric_map import Topology, place
from bench.rails.plan.schedule import schedule
from tests.support.models.fabric_model import Shape


def _shares(pairs: list[tuple[int, int]], caps: list[float], group: list[int] | None = None) -> list[float]:
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    g = np.zeros(len(pairs), dtype=np.int64) if group is None else np.array(group)
    return [round(float(x), 6) for x in fair_shares(a, b, g, np.array(caps, dtype=float))]


def test_one_uplink_shared_by_two_pairs_gives_each_half_and_rounds_never_share() -> None:
    # Leaves 0 and 1, one uplink each (capacity 1 node link): two pairs crossing in one round share it.
    assert _shares([(0, 1)], [1, 1]) == [1.0]
    assert _shares([(0, 1), (0, 1)], [1, 1]) == [0.5, 0.5]
    assert _shares([(0, 1), (0, 1)], [1, 1], group=[0, 1]) == [1.0, 1.0]
    # Non-blocking: as many uplinks as pairs crossing.
    assert _shares([(0, 1), (0, 1)], [2, 2]) == [1.0, 1.0]
    # Within one leaf, or unplaced: no uplink crossed.
    assert _shares([(0, 0), (-1, 1)], [0.1, 0.1]) == [1.0, 1.0]


def test_max_min_gives_what_a_bottleneck_elsewhere_leaves_to_the_others() -> None:
    # Leaf 0 (1.5 node links up and down) carries three pairs; the one to leaf 2 (a quarter of a link) is held
    # at 0.25 there, and the two to leaf 1 share what it leaves on leaf 0: (1.5 - 0.25) / 2 = 0.625 each.
    assert _shares([(0, 1), (0, 1), (0, 2)], [1.5, 10, 0.25]) == [0.625, 0.625, 0.25]
    # Without the narrow leaf, an equal split.
    assert _shares([(0, 1), (0, 1), (0, 2)], [1.5, 10, 10]) == [0.5, 0.5, 0.5]


def test_a_rounds_two_halves_fill_the_uplinks_each_on_its_own() -> None:
    """A round runs every pair's flow from its lower node, then the other (``bench.rails.measurement.exchanges``).
    Leaves 0, 1 and 2, one uplink each: a pair from leaf 0 to leaf 1 and one from leaf 1 to leaf 2, each with its
    lower node first. Both ways at once, leaf 1's uplink carries one flow of each pair each way, and each gets half;
    in halves, leaf 1 sends one flow up and takes one down in each, and each pair runs at its links' rate."""
    leaf_a, leaf_b, group, caps = np.array([0, 1]), np.array([1, 2]), np.zeros(2, np.int64), np.array([1.0] * 3)
    assert fair_shares(leaf_a, leaf_b, group, caps).tolist() == [0.5, 0.5]
    assert fair_shares(leaf_a, leaf_b, group, caps, a_first=np.array([True, True])).tolist() == [1.0, 1.0]
    # The second pair's lower node on leaf 2: both its flows and the first pair's leave and enter leaf 1 in step.
    assert fair_shares(leaf_a, leaf_b, group, caps, a_first=np.array([True, False])).tolist() == [0.5, 0.5]


def test_destination_routing_collides_where_spreading_does_not() -> None:
    # Two leaves of 2 uplinks each, two pairs crossing: spread over the pool, each gets a whole link; routed by
    # the destination's port rank modulo the uplinks, ranks 0 and 2 collide on uplink 0 and share it.
    a, b, g, caps = np.array([0, 0]), np.array([1, 1]), np.zeros(2, np.int64), np.array([2.0, 2.0])
    count = np.array([2, 2])
    assert fair_shares(a, b, g, caps).tolist() == [1.0, 1.0]
    colliding = Routes(np.array([1, 3]), np.array([0, 2]), count)
    assert fair_shares(a, b, g, caps, colliding).tolist() == [0.5, 0.5]
    apart = Routes(np.array([1, 0]), np.array([0, 1]), count)
    assert fair_shares(a, b, g, caps, apart).tolist() == [1.0, 1.0]


def _cabling(host_link: str | None, uplink: str | None, uplinks: int) -> Cabling:
    cables = [Cable(HostPort(f"n{i}", "mlx5_1"), SwitchPort(f"leaf{i // 2}", i % 2 + 1), host_link) for i in range(4)]
    for leaf in range(2):
        for j in range(uplinks):
            cables.append(Cable(SwitchPort(f"leaf{leaf}", 3 + j), SwitchPort("spine", leaf * uplinks + j + 1), uplink))
    return Cabling(normalised(cables, "test"), "test", ("mlx5_1",))


@pytest.mark.parametrize(
    ("host_link", "uplink", "uplinks", "expected"),
    [
        (None, None, 1, 1.0),  # no speeds: one uplink is one node link
        ("4xNDR", "4xNDR", 2, 2.0),
        ("2xNDR", "4xNDR", 1, 2.0),  # an NDR uplink carries two NDR200 node links
        ("4xNDR", None, 1, 1.0),  # a speed missing: counted
    ],
)
def test_leaf_capacity_in_node_links(host_link: str | None, uplink: str | None, uplinks: int, expected: float) -> None:
    cabling = _cabling(host_link, uplink, uplinks)
    leaves = tuple(shape(cabling, ("mlx5_1",)).leaves.values())
    assert capacity.leaf_capacity(cabling, leaves).tolist() == [expected, expected]


def _model_plane(oversubscription: int) -> capacity.Plane:
    model = Shape(64, 8, 32, oversubscription)
    cabling = model.cabling()
    nodes = [model.node_name(a) for a in range(64)]
    return place(Topology(cabling, cabling.rails), nodes, 8, lambda node, rail: None).plane()


def test_a_2_to_1_tree_halves_a_round_that_crosses_whole_and_a_non_blocking_one_never_loads() -> None:
    tapered, full = _model_plane(2), _model_plane(1)
    assert capacity.taper(tapered) == 2.0 and capacity.taper(full) == 1.0
    rounds = schedule(64, 1, 0)
    assert not capacity.matrix_load(full, rounds, 1).loaded
    load = capacity.matrix_load(tapered, rounds, 1)
    # Round 0 of the circle method: node 63 meets node 0, and node i node 63 - i: every pair crosses between the
    # units, two leaves whose 16 uplinks carry 32 flows each way (under either routing: the destinations' ranks
    # cover every uplink twice).
    pairs = np.array(rounds[0].pairs)
    cross = (pairs[:, 0] // 32) != (pairs[:, 1] // 32)
    assert cross.sum() == 32
    for routing in capacity.ROUTINGS:
        got = load.fraction[routing][0, :, pairs[:, 0], pairs[:, 1]]  # [pair, rail]
        assert np.allclose(got, 0.5)
    assert (load.round_of[0][pairs[:, 0], pairs[:, 1]] == 0).all()


def _rates(fraction: np.ndarray, rng: np.random.Generator, carried: bool) -> np.ndarray:
    """Log rates of a run on that load: the taper binds (``carried``: the uplinks carry it all)."""
    x = 0.02 * rng.standard_normal(fraction.shape)
    return x if carried else x + np.log(fraction)


def _no_again() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """No re-measurements: no pass, at no cell."""
    none = np.zeros(0, dtype=np.int64)
    return np.zeros((0, 0)), (none, none, none)


def test_the_run_says_whether_the_taper_binds_and_under_which_routing() -> None:
    plane = _model_plane(2)
    load = capacity.matrix_load(plane, schedule(64, 1, 0), 1)
    expected = Expected(load.round_of, load.fraction, {}, capacity.taper(plane))
    rng = np.random.default_rng(0)
    for routing in capacity.ROUTINGS:
        x = _rates(load.fraction[routing], rng, carried=False)
        routed = expected.routed(x)
        assert routed is not None and routed.routing == routing
        adjusted, _, said = judged_rates(expected, x, *_no_again())
        assert said is not None and said.said().startswith(
            "the fabric's uplinks are tapered, 2:1 between units: cross-unit pairs expected at 50%"
        )
        assert abs(float(np.median(adjusted))) < 0.01  # every pair judged as one at its links' rate
    # The namespace testbed's veth "uplinks" carry every flow whatever the cabling counts: nothing is adjusted.
    x = _rates(load.fraction["spread"], rng, carried=True)
    assert expected.routed(x) is None
    same, _, said = judged_rates(expected, x, *_no_again())
    assert said is None and same is x


def _matrix(slow_between: bool, slow_node: int | None = None) -> PairMatrix:
    """10 nodes in groups of 7 and 3, 3 rails, one repeat and two re-measurements: 48 Gb/s with 1% noise; pairs
    between the groups at half (``slow_between``), or every pair of ``slow_node`` at half. (Most pairs are within
    a group, so the healthy level is theirs, as in a matrix whose light rounds leave many pairs at full rate.)"""
    rng = np.random.default_rng(1)
    n, rails = 10, 3
    busbw = 48.0 * np.exp(0.01 * rng.standard_normal((1, rails, n, n)))
    busbw = np.minimum(busbw, np.swapaxes(busbw, -1, -2))
    group = np.arange(n) // 7
    slow = np.zeros((rails, n, n), dtype=bool)
    if slow_between:
        slow[:] = group[:, None] != group[None, :]
    if slow_node is not None:
        slow[:, slow_node, :] = slow[:, :, slow_node] = True
    busbw[0][slow] *= 0.5
    busbw[:, :, np.arange(n), np.arange(n)] = np.nan
    confirm = np.where(slow[None], np.concatenate([busbw, busbw]), np.nan)
    return PairMatrix(tuple(f"node{i + 1:02d}" for i in range(n)), (0, 1, 2), busbw, confirm=confirm)


def test_without_the_cabling_a_slowdown_between_groups_on_every_rail_is_an_observation() -> None:
    found = diagnose(_matrix(slow_between=True), None)
    assert found.defects == ()
    assert found.capacity is not None
    assert found.capacity.startswith("pairs between node01-node07 (7 nodes) and node08-node10 (3 nodes) ran at 50%")
    assert "--topology" in found.capacity
    # One slow node is slow with every partner, not a group's: named as the node, as before.
    one = diagnose(_matrix(slow_between=False, slow_node=2), None)
    assert [(d.kind, d.node) for d in one.defects] == [("node", "node03")] and one.capacity is None
