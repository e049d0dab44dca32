"""Lone pairs that meet at one link are that link (``bench.rails.lone_pairs.shared_links``), and a block of slow
pairs between two groups stays pairs: on a large matrix a link flapping in a few rounds leaves a handful of pairs
slow in most of their samples, each named alone before, as five cables to replace."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rails.lone_pairs import shared_links
from tests.fabric_model import Shape
from tests.fabric_regimes import REALISTIC
from tests.support import diagnosis_sim


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
