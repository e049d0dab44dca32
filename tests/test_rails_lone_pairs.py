"""Lone pairs that meet at one link are that link (``bench.rails.diagnosis.lone_pairs.shared_links``), and a block of
slow pairs between two groups stays pairs: on a large matrix a link flapping in a few rounds leaves a handful of pairs
slow in most of their samples, each named alone before, as five cables to replace."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rails.diagnosis.link_faults import only_beyond_its_leaf
from bench.rails.diagnosis.localise import PairMatrix, PairSample, diagnose
from bench.rails.diagnosis.lone_pairs import shared_links
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import ECMP, HOT_SPOTS, REALISTIC, TAPERED_ECMP, Regime


def _lone(nodes: int, rails: int, pairs: list[tuple[int, int, int]]) -> np.ndarray:
    out = np.zeros((rails, nodes, nodes), dtype=bool)
    for k, a, b in pairs:
        out[k, a, b] = out[k, b, a] = True
    return out


def test_two_lone_pairs_at_one_node_are_its_link() -> None:
    links = shared_links(_lone(8, 2, [(1, 3, 5), (1, 3, 6), (0, 2, 7)]))
    assert [tuple(int(v) for v in x) for x in np.argwhere(links)] == [(1, 3)]


def test_one_lone_pair_is_no_link() -> None:
    assert not shared_links(_lone(8, 2, [(0, 1, 2)])).any()


def test_pairs_on_two_rails_are_not_one_link() -> None:
    """A node's link is one rail's: a slow pair on rail 0 and one on rail 1 at the same node share no link."""
    assert not shared_links(_lone(8, 2, [(0, 3, 5), (1, 3, 6)])).any()


def test_a_block_between_two_groups_stays_pairs() -> None:
    """Every node of {0, 1} slow with every node of {4, 5}: each node holds two, so any link is a guess."""
    assert not shared_links(_lone(8, 1, [(0, a, b) for a in (0, 1) for b in (4, 5)])).any()


def test_lone_pairs_that_meet_by_chance_on_a_rail_full_of_them_are_no_link() -> None:
    """A broken spine under ECMP slows hundreds of pairs across units, each in a few rounds of its own (the fabric
    model's ecmp spine seed 1000033 at 1024 x 8: about 36 lone pairs a rail, and six nodes where two met by chance,
    each named a cable). Two of 40 lone pairs meeting at one of 1024 nodes is what chance gives; two of two is not."""
    meeting = [(0, 0, 1), (0, 0, 2)]
    elsewhere = [(0, 10 + 2 * i, 11 + 2 * i) for i in range(40)]
    assert not shared_links(_lone(1024, 1, meeting + elsewhere)).any()
    assert [tuple(int(v) for v in x) for x in np.argwhere(shared_links(_lone(1024, 1, meeting)))] == [(0, 0)]


def test_a_link_slow_only_with_partners_across_units_is_slowed_beyond_its_leaf() -> None:
    """The same model run: links with none of 31 partners on their own leaf suspect and 8-13 of 31 across units
    were named as flaky cables (78 of them). Were the link the cause, its own leaf's pairs would be slow as often."""
    across = np.arange(62) >= 31  # 31 partners on its own leaf, then 31 across units
    measured = np.ones(62, dtype=bool)
    suspect = across & (np.arange(62) % 3 == 0)  # 10 of the 31 across units
    assert only_beyond_its_leaf(measured, suspect, suspect, across)
    # one suspect on its own leaf: the link may be the cause
    assert not only_beyond_its_leaf(measured, suspect | (np.arange(62) == 4), suspect, across)
    # three partners on its leaf say nothing either way (a small testbed's leaf)
    few = measured & (across | (np.arange(62) < 3))
    assert not only_beyond_its_leaf(few, suspect, suspect, across & few)


@pytest.mark.slow
def test_a_link_flapping_in_a_fifth_of_its_samples_at_256_nodes_is_named_as_the_link() -> None:
    """ci/diagnosis_sim.py's realistic flaky scenario 99 at 256 x 8: node204's rail-6 link at 17% of its rate in
    21% of samples left five of its 255 partners slow in most samples, too few over 255 partners for the
    flaky-link rule, and each was named as a pair."""
    result = diagnosis_sim().run_one("256x8", Shape(256, 8, 32), "flaky", 1000099, REALISTIC)
    assert result.named == result.expected == {("cable", "node204", 6)}


def _half_flaky_testbed(transients: bool = True) -> PairMatrix:
    """A five-node, two-rail namespace testbed run (``ci/diagnosis_campaign.py --kinds half-flaky-link``, under
    load): node03's rail-0 link shaped 2 s on, 2 s off. Each cell's slower direction, Gb/s. In the matrix node03
    was slow with three of its four rail-0 partners; of the six re-measurements one fell in an "on" period.
    Without ``transients`` node03's two other slow partners measured at their peers' rate."""
    rails = {
        0: {"01-02": 6.07, "01-03": 4.87, "01-04": 6.24, "01-05": 5.04, "02-03": 0.144, "02-04": 5.21},
        1: {"01-02": 5.15, "01-03": 5.00, "01-04": 5.53, "01-05": 4.95, "02-03": 5.63, "02-04": 6.95},
    }
    rails[0] |= {"02-05": 5.21, "03-04": 0.436, "03-05": 0.144, "04-05": 5.19}
    rails[1] |= {"02-05": 4.72, "03-04": 6.70, "03-05": 5.32, "04-05": 3.46}
    again = {"02-03": (11.60, 0.145)}
    if transients:
        again |= {"03-04": (8.61, 8.81), "03-05": (10.72, 10.96)}
    else:
        rails[0] |= {"03-04": 5.62, "03-05": 5.48}
    samples = [PairSample(f"node{p[:2]}", f"node{p[3:]}", k, v) for k, row in rails.items() for p, v in row.items()]
    samples += [
        PairSample(f"node{pair[:2]}", f"node{pair[3:]}", 0, value, confirm=c + 1)
        for pair, values in again.items()
        for c, value in enumerate(values)
    ]
    return PairMatrix.from_samples(samples)


def test_a_half_flaky_link_whose_other_partners_were_transients_is_the_link_not_a_pair() -> None:
    """One pair reproduced, node03's two other slow partners did not: they are evidence all the same (3-8% of
    the peers' rate), and node02 has none. Named before as 'check the switch path between node02 and node03'."""
    found = diagnose(_half_flaky_testbed(), None)
    assert [(d.kind, d.node, d.peer, d.rail) for d in found.defects] == [("link", "node03", None, 0)]


def test_a_lone_pair_with_nothing_else_at_either_end_stays_a_pair() -> None:
    """The same run without node03's transients: nothing tells its link from node02's, and the pair stays."""
    found = diagnose(_half_flaky_testbed(transients=False), None)
    assert [(d.kind, d.node, d.peer, d.rail) for d in found.defects] == [("pair", "node02", "node03", 0)]


@pytest.mark.parametrize("seed", [7, 13])
def test_a_link_at_the_lines_edge_under_ecmp_collisions_is_no_flaky_cable(seed: int) -> None:
    """ci/diagnosis_sim.py's ecmp clean runs 7 and 13 at 64 x 8 with leaves of 8 (``--unit 8``): node018's rail-2 link
    sat at 0.88-0.92 of line on its own leaf (under the 90% line by its level, healthy by its peers'), while ECMP's
    collisions slowed 27 of its 28 partners across units to 0.28-0.49. Its leaf's samples at the line's edge counted
    as suspects, so the collisions were not set aside as slowed beyond the leaf, and the link was named a flaky cable
    (13 such cables in 200 clean runs). A link's own fault slows its leaf's pairs as deep as those across."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 8, ECMP.oversubscription), "clean", seed, ECMP)
    assert result.named == set()


def test_lone_pairs_on_a_links_own_leaf_are_that_link_whatever_runs_beyond_the_leaf() -> None:
    """``ci/diagnosis_sim.py``'s hotspots scenario 1540038 at 64 x 8 with leaves of 8: a node, node057's rail-2 cable
    and node064's rail-6 cable. node064's three lone pairs lay on its own leaf, yet its hot partners across units
    were deeper, so its samples on its leaf were set aside as shallower (``as_deep``), the link was ruled slowed
    beyond its leaf, and its three pairs were named instead of its cable."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 8, HOT_SPOTS.oversubscription), "three", 1540038, HOT_SPOTS)
    assert ("cable", "node064", 6) in result.expected
    assert result.named == result.expected


def test_a_healthy_pair_of_slower_links_hit_by_three_transients_is_no_lone_pair() -> None:
    """``ci/diagnosis_sim.py``'s hotspots clean run 66050 at 200 x 8: node004-node024 on rail 2, whose slower end
    runs 5% under the rail's median, read 257-263 Gb/s in the matrix and in both re-measurements (transients at
    72-73% of its own level). Ranked by rate, each sample was among the nine slowest of 24,000 cells within units
    and the pair was named; ranked by its depth under its own links' level, it is as common as any transient."""
    result = diagnosis_sim().run_one("200x8", Shape(200, 8, 32), "clean", 66050, HOT_SPOTS)
    assert result.named == set()


def test_one_hot_rounds_pairs_are_no_evidence_against_either_end() -> None:
    """``ci/diagnosis_sim.py``'s hotspots clean run 69018 at 64 x 8: a hot spot slowed all 32 cross pairs of one
    round on rail 6, and both re-measurements ran hot too. Those pairs are that round's evidence and stay
    transients; read as lone pairs first, node026's two other outliers made its cable the guilty end of one of
    them, and a healthy cable was named."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 32), "clean", 69018, HOT_SPOTS)
    assert result.named == set()


def test_a_flapping_cable_on_a_leaf_of_eight_is_ranked_against_its_healthy_level() -> None:
    """``ci/diagnosis_sim.py``'s ecmp scenario 1070050 at 64 x 8 with leaves of 8 (``--unit 8``): an HCA and
    node015's rail-5 cable at 28% of its rate in 30% of its samples. The cable is named from its lone pairs; ranked
    under the median of its 7 partners within its leaf (its slow level, as the flaps fell), they were nothing
    beyond it and the cable went unnamed. A link's level is the upper quartile of its partners (``link_levels``)."""
    shape = Shape(64, 8, 8, ECMP.oversubscription)
    result = diagnosis_sim().run_one("64x8", shape, "two", 1070050, ECMP)
    assert ("cable", "node015", 5) in result.expected
    assert result.named == result.expected


@pytest.mark.parametrize(
    ("regime", "unit", "kind", "seed", "cable"),
    [
        (TAPERED_ECMP, 32, "flaky", 1070021, ("cable", "node001", 7)),
        (ECMP, 8, "three", 1070025, ("cable", "node055", 3)),
    ],
)
def test_a_flapping_cables_other_samples_are_no_noise_its_lone_pairs_are_ranked_in(
    regime: Regime, unit: int, kind: str, seed: int, cable: tuple[str, str, int]
) -> None:
    """``ci/diagnosis_sim.py`` at 64 x 8: a cable flapping to 34% (48%) of its rate in 20% (26%) of its samples is
    named from its lone pairs, each slow in all three samples. Its slow samples with its other partners were in the
    pool those pairs were ranked in, and left them just past the bound (1e-5 a run): the cable went unnamed. They
    are its fault, not noise, and are left out as its noise floor leaves them out."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, unit, regime.oversubscription), kind, seed, regime)
    assert cable in result.expected
    assert result.named == result.expected
