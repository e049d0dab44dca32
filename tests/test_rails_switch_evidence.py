"""How strongly a switch's cells reproduce counts, not only that they do (bench.rails.diagnosis.switches).

The numbers are a real run's (CI, the namespace testbed under load: 4 nodes in 2 units of 2, rails 0 and 1,
the first unit's rail-1 uplink shaped to 150 Mbit/s, 1 repeat and 2 confirmation passes). Every cell between
the units on rail 1 ran at 1% of its peers in the matrix *and* in both re-measurements; on rail 0 two cells
were slow once (0.2 of their peers) and normal when re-measured: transients. Those two raise the run's own
noise rate to 2 slow samples in 12, at which "a suspect slow again in at least one of two passes" is common
(5% a cell), and four of four such cells between two leaves no longer stood out: the uplink was named as
four separate pairs. Slow in *every* pass is what noise at that rate gives 0.5% a cell; four of those is the
uplink.
"""

from __future__ import annotations

import numpy as np

from bench.fabric import cabling_plan
from bench.fabric.cabling import cabling_from_toml
from bench.rails.diagnosis.localise import PairMatrix, PairSample, Thresholds, diagnose
from bench.rails.plan import fabric_map
from bench.rails.plan.fabric_map import Topology
from bench.tomldoc import loads

NODES = ("node01", "node02", "node03", "node04")
CABLING = """
rails = ["rail0", "rail1"]
[nodes.node01]
rail0 = "leaf-u1-r0:1"
rail1 = "leaf-u1-r1:1"
[nodes.node02]
rail0 = "leaf-u1-r0:2"
rail1 = "leaf-u1-r1:2"
[nodes.node03]
rail0 = "leaf-u2-r0:1"
rail1 = "leaf-u2-r1:1"
[nodes.node04]
rail0 = "leaf-u2-r0:2"
rail1 = "leaf-u2-r1:2"
[switches.leaf-u1-r0]
3 = "spine-r0:1"
[switches.leaf-u1-r1]
3 = "spine-r1:1"
[switches.leaf-u2-r0]
3 = "spine-r0:2"
[switches.leaf-u2-r1]
3 = "spine-r1:2"
"""
# (a, b, rail): the matrix sample, then the two re-measurements (suspects only), Gb/s, the slower direction.
MEASURED: dict[tuple[str, str, int], tuple[float, ...]] = {
    ("node01", "node04", 0): (2.383, 5.904, 8.460),
    ("node02", "node03", 0): (8.172,),
    ("node01", "node03", 0): (7.303,),
    ("node02", "node04", 0): (10.555,),
    ("node01", "node02", 0): (5.857,),
    ("node03", "node04", 0): (1.751, 10.921, 7.130),
    ("node01", "node04", 1): (0.0965, 0.0918, 0.0788),
    ("node02", "node03", 1): (0.1152, 0.0720, 0.0765),
    ("node01", "node03", 1): (0.0796, 0.1042, 0.0778),
    ("node02", "node04", 1): (0.0759, 0.0966, 0.0722),
    ("node01", "node02", 1): (13.252,),
    ("node03", "node04", 1): (12.165,),
}


def _fabric() -> fabric_map.FabricMap:
    cabling = cabling_from_toml(loads(CABLING, "fabric.toml"), "fabric.toml")
    topology = Topology(cabling, cabling_plan.rail_order(cabling))
    return fabric_map.place(topology, NODES, 2, lambda node, rail: None)


def _matrix(measured: dict[tuple[str, str, int], tuple[float, ...]]) -> PairMatrix:
    samples = [
        PairSample(a, b, rail, value, confirm=i)
        for (a, b, rail), values in measured.items()
        for i, value in enumerate(values)
    ]
    return PairMatrix.from_samples(samples, nodes=NODES, rails=(0, 1))


def test_an_uplink_slow_in_every_pass_stands_beside_two_transients() -> None:
    found = diagnose(_matrix(MEASURED), None, Thresholds(relative_fraction=0.35), fabric=_fabric())
    assert [(d.kind, d.switches, d.rail) for d in found.defects] == [("uplink", ("leaf-u1-r1", "leaf-u2-r1"), 1)]
    assert sorted((t.node, t.peer, t.rail) for t in found.transients) == [
        ("node01", "node04", 0),
        ("node03", "node04", 0),
    ]


def test_cells_slow_in_only_one_pass_beside_the_same_transients_name_no_uplink() -> None:
    """The other side of the rule: where the cells between the units come back normal in one of the two passes,
    noise at this run's rate gives that often enough that nothing is named a switch's."""
    flickering = dict(MEASURED)
    for cell in [c for c in MEASURED if c[2] == 1 and c[0][-1] in "12" and c[1][-1] in "34"]:
        first, again, _ = MEASURED[cell]
        flickering[cell] = (first, again, 12.0)
    found = diagnose(_matrix(flickering), None, Thresholds(relative_fraction=0.35), fabric=_fabric())
    assert not [d for d in found.defects if d.kind in ("uplink", "spine", "leaf")]
    assert np.isfinite(_matrix(flickering).busbw).any()


# A second real run (the switches test in a full suite run beside a campaign, load 8-16: the same testbed and
# uplink, 4 MiB pairs): rank 0's rails.json, each cell's slower direction per pass. One
# round of the matrix ran slow on both rails (rail 0 at 2.8-3.5 Gb/s where its other cells read 4.6-8.5), and
# the pair inside each unit on rail 1 read under the 0.35 cut in it; both were healthy when re-measured
# (2.7-8.4 Gb/s). Every pair of rail 1 was then a suspect, and the rail was named in place of the uplink.
UNDER_LOAD: dict[tuple[str, str, int], tuple[float, ...]] = {
    ("node01", "node02", 0): (2.808464,),
    ("node01", "node03", 0): (4.626642,),
    ("node01", "node04", 0): (7.452986,),
    ("node02", "node03", 0): (6.690353,),
    ("node02", "node04", 0): (6.246214,),
    ("node03", "node04", 0): (3.498492,),
    ("node01", "node02", 1): (1.35905, 2.907448, 8.426761),
    ("node01", "node03", 1): (0.043203, 0.054523, 0.072571),
    ("node01", "node04", 1): (0.052865, 0.044415, 0.041261),
    ("node02", "node03", 1): (0.077395, 0.114035, 0.0775),
    ("node02", "node04", 1): (0.073495, 0.115338, 0.084411),
    ("node03", "node04", 1): (1.590058, 2.721837, 4.055481),
}
INSIDE = (("node01", "node02", 1), ("node03", "node04", 1))


def _named(measured: dict[tuple[str, str, int], tuple[float, ...]]) -> list[tuple[str, tuple[str, ...], int | None]]:
    found = diagnose(_matrix(measured), None, Thresholds(relative_fraction=0.35), fabric=_fabric())
    return [(d.kind, d.switches, d.rail) for d in found.defects]


def test_pairs_inside_the_units_slow_once_beside_a_shaped_uplink_leave_the_uplink_named() -> None:
    """Every pair of the rail was a suspect, but only those between the units reproduced: what slows them lies
    beyond the leaves (not the rail, not a leaf, not the cables of the first unit), and the two inside the
    units are transients."""
    found = diagnose(_matrix(UNDER_LOAD), None, Thresholds(relative_fraction=0.35), fabric=_fabric())
    assert [(d.kind, d.switches, d.rail) for d in found.defects] == [("uplink", ("leaf-u1-r1", "leaf-u2-r1"), 1)]
    assert sorted((t.node, t.peer, t.rail) for t in found.transients) == sorted(INSIDE)


def test_one_units_inside_pair_slow_once_beside_a_shaped_uplink_is_not_its_leaf() -> None:
    # The first unit's inside pair as it read in the suite's earlier failure (healthy): the second unit's leaf
    # had every cell a suspect, the uplink's four reproducing and its own one not.
    healthy_first = {**UNDER_LOAD, INSIDE[0]: (5.2,)}
    assert _named(healthy_first) == [("uplink", ("leaf-u1-r1", "leaf-u2-r1"), 1)]


def test_pairs_inside_the_units_slow_again_when_re_measured_are_the_rail_and_the_leaf() -> None:
    """The other side: a rail or a leaf slows the pairs inside its units in every pass, as it slows those
    across; then they reproduce, and the rail (both units) or the leaf (one) is named."""
    slow = (0.06, 0.05, 0.07)
    assert _named({**UNDER_LOAD, INSIDE[0]: slow, INSIDE[1]: slow}) == [("rail", (), 1)]
    assert _named({**UNDER_LOAD, INSIDE[0]: (5.2,), INSIDE[1]: slow}) == [("leaf", ("leaf-u2-r1",), 1)]


def test_the_other_units_inside_pair_slow_once_beside_a_shaped_leaf_leaves_the_leaf_named() -> None:
    """A shaped leaf slows 5 of the rail's 6 pairs on this testbed; the sixth, inside the other unit, read slow once
    (as the first unit's inside pair did in the run above) and normal when re-measured. Every pair was a suspect,
    but every reproducing one has an end on the second unit's leaf: that leaf, not the rail (the testbed's leaf
    run named the rail so under a loaded suite)."""
    slow = (0.06, 0.05, 0.07)
    assert _named({**UNDER_LOAD, INSIDE[1]: slow}) == [("leaf", ("leaf-u2-r1",), 1)]
