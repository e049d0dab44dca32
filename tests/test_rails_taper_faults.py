"""A fault on a tapered fabric is judged against what the fabric carries, and never switches that off.

Issue 45's tapered regimes (docs/rails.md: a 2:1 tree whose uplinks each round's own flows fill, every pair its
max-min fair share, Bertsekas and Gallager, "Data Networks", 2nd ed., 6.5.2). Two rules, each on a constructed
run:

* the taper is what most rails show: each rail's leaves are tapered alike, while a slow leaf slows its own rail's
  pairs within its unit (the pairs the taper leaves at full rate) and so hides the taper on that rail alone;
* a slow node or leaf is slow with the partners that could show its rate: a pair held at its round's share of
  the uplinks runs as its healthy peers do, whatever its ends' links carry (a node at 80% in a round that gives
  every crossing flow 50% runs at 50%).
"""

from __future__ import annotations

import numpy as np

from bench.rails.diagnosis.expected import Expected
from bench.rails.diagnosis.localise import PairMatrix, diagnose
from bench.rails.plan import capacity
from bench.rails.plan.fabric_map import FabricMap, Topology, place
from bench.rails.plan.schedule import schedule
from tests.support.models.fabric_model import Shape

LINE = 48.0


def _fabric(nodes: int, rails: int, unit: int) -> FabricMap:
    model = Shape(nodes, rails, unit, oversubscription=2)
    cabling = model.cabling()
    names = [model.node_name(a) for a in range(nodes)]
    return place(Topology(cabling, cabling.rails), names, rails, lambda node, rail: None)


def _spread_load(fabric: FabricMap, nodes: int) -> tuple[Expected, np.ndarray]:
    """The matrix's rounds and, under spread routing, each sample's expected fraction ``[1, rail, a, b]``."""
    plane = fabric.plane()
    load = capacity.matrix_load(plane, schedule(nodes, 1, 0), 1)
    fraction = load.fraction["spread"]
    return Expected(load.round_of, {"spread": fraction}, {}, capacity.taper(plane)), fraction


def test_a_slow_leaf_hides_the_taper_on_its_own_rail_only() -> None:
    nodes, rails, unit = 64, 8, 32
    expected, fraction = _spread_load(_fabric(nodes, rails, unit), nodes)
    rng = np.random.default_rng(0)
    x = np.log(fraction) + 0.02 * rng.standard_normal(fraction.shape)
    # Leaf (unit 2, rail 3) at 45%: its pairs within the unit run there, and its crossing pairs no faster.
    members = np.arange(nodes) // unit == 1
    touches = members[:, None] | members[None, :]
    x[:, 3][:, touches] = np.minimum(x[:, 3][:, touches], np.log(0.45))
    on_its_rail = Expected(expected.round_of, {"spread": fraction[:, 3:4]}, {}, expected.taper)
    assert on_its_rail.routed(x[:, 3:4]) is None  # rail 3 alone does not show the taper
    routed = expected.routed(x)
    assert routed is not None and routed.routing == "spread"  # the seven others do: the run is judged by it


def _tapered_run(fabric: FabricMap, nodes: int, rails: int, link: np.ndarray) -> tuple[PairMatrix, Expected]:
    """A tapered run at ``LINE`` with 1% noise, each link (``[rail, node]``) at its share of line: each cell at
    the lower of its round's share and its ends' links; the suspects re-measured twice, alone (at their links'
    rate)."""
    expected, fraction = _spread_load(fabric, nodes)
    rng = np.random.default_rng(1)
    ends = np.minimum(link[:, :, None], link[:, None, :])[None]
    busbw = LINE * np.minimum(fraction, ends) * np.exp(0.01 * rng.standard_normal(fraction.shape))
    busbw = np.minimum(busbw, np.swapaxes(busbw, -1, -2))
    busbw[:, :, np.arange(nodes), np.arange(nodes)] = np.nan
    again = np.broadcast_to(LINE * ends[0], (2, rails, nodes, nodes)).copy()
    again[:, :, np.arange(nodes), np.arange(nodes)] = np.nan
    names = tuple(Shape(nodes).node_name(a) for a in range(nodes))
    return PairMatrix(names, tuple(range(rails)), busbw, confirm=again), expected


def test_two_slow_nodes_are_named_as_nodes_though_the_taper_holds_their_crossing_pairs() -> None:
    nodes, rails, unit = 16, 4, 8
    fabric = _fabric(nodes, rails, unit)
    # Nodes 2 and 9, in different units, meet in a round that leaves their pair its links' rate: each is slow
    # with the other, and with its partners within its unit and in the rounds the taper leaves alone. Counted
    # over every measured partner, neither link was slow with all of them, and the two tied as intermittent
    # links (each the other's rival): they were left as slow pairs.
    link = np.ones((rails, nodes))
    link[:, [2, 9]] = 0.8
    matrix, expected = _tapered_run(fabric, nodes, rails, link)
    found = diagnose(matrix, LINE, fabric=fabric, load=expected)
    assert found.capacity is not None
    assert found.capacity.startswith("the fabric's uplinks are tapered, 2:1 between units")
    assert sorted((d.kind, d.node) for d in found.defects) == [("node", "node003"), ("node", "node010")]


def test_a_slow_leaf_is_the_leaf_though_the_taper_holds_its_crossing_pairs() -> None:
    # Three units of 8; leaf (unit 2, rail 1) at 75%: its members are slow with each other and with the partners
    # across units that the taper leaves their links' rate, not with those their round holds at the uplinks'
    # share. Counted over every partner, most members were slow with fewer than half: the leaf was named as
    # seven of its members' cables.
    nodes, rails, unit = 24, 4, 8
    fabric = _fabric(nodes, rails, unit)
    link = np.ones((rails, nodes))
    link[1, unit : 2 * unit] = 0.75
    matrix, expected = _tapered_run(fabric, nodes, rails, link)
    found = diagnose(matrix, LINE, fabric=fabric, load=expected)
    assert [(d.kind, d.switches) for d in found.defects] == [("leaf", ("leaf-su2-r1",))]


def test_the_routing_is_read_about_the_level_of_the_pairs_between_units_no_routing_loads() -> None:
    """48 x 8 on a 2:1 tapered tree (``ci/diagnosis_sim.py --regime tapered --sizes 48x8``): the partial unit's 16
    nodes cross at once, so pooled uplinks never fill, while destination routing puts two flows on one uplink in
    most rounds. Where the run shows those pairs at half of line and the other pairs between units at line,
    destination routing is the run's: each routing's adjusted rates about their own median spread alike (all of
    one's loaded cells shifted by the same half, none of the other's), and the tie went to pooling, which left
    every such pair slow (scenario 1031002). Where every pair between units runs alike, as ECMP's hash collides
    them whatever their destinations' ports, no routing is read and nothing is adjusted."""
    nodes = 48
    fabric = _fabric(nodes, 8, 32)
    plane = fabric.plane()
    load = capacity.matrix_load(plane, schedule(nodes, 1, 0), 1)
    destination = load.fraction["destination"]
    assert not (load.fraction["spread"] < 1).any() and (destination < 1).any()
    between = fabric.cross()
    rng = np.random.default_rng(0)
    measured = load.round_of[:, None] >= 0
    collided = np.where(between[None], 0.6, 1.0)  # every pair between units alike
    for fraction, truth in ((destination, "destination"), (np.ones_like(destination), None), (collided, None)):
        noise = rng.normal(0.0, 0.02, destination.shape)
        x = np.where(measured, np.log(LINE * fraction) + noise, np.nan)
        routed = Expected(load.round_of, load.fraction, {}, capacity.taper(plane)).routed(x, between)
        assert (routed.routing if routed is not None else None) == truth
