"""Lone pairs that meet at one link are that link (``bench.rails.diagnosis.lone_pairs.shared_links``), and a block of
slow pairs between two groups stays pairs: on a large matrix a link flapping in a few rounds leaves a handful of pairs
slow in most of their samples, each named alone before, as five cables to replace."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rails.diagnosis.localise import PairMatrix, PairSample, diagnose
from bench.rails.diagnosis.lone_pairs import shared_links
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import REALISTIC


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
