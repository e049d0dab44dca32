"""Issue 45 item 2: every suspect is measured again beside companions it has not run with, and a few between
units with no company on their leaves at all (the quiet pass).

``bench.rails.plan.remeasure`` packs each confirmation pass afresh; these tests hold its promises over real
schedules (the circle matrix and the unit schedule) and random suspects, and check that rank 0's picture of what
ran together (``round_load.with_again``) is the ranks' own.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.rails.diagnosis import round_load
from bench.rails.diagnosis.expected import Cellwise
from bench.rails.plan.fabric_map import Topology, place
from bench.rails.plan.remeasure import QUIET_PER_LEAF, quiet_rounds, remeasurement_rounds, slots
from bench.rails.plan.schedule import Cell, Round, Units, schedule
from tests.support.models.fabric_model import Shape


def _suspects(rounds: tuple[Round, ...], rails: int, share: float, seed: int) -> list[Cell]:
    """A random share of the matrix's cells, each as rank 0 lists it: its (first) round, rail and pair."""
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int, int]] = set()
    out: list[Cell] = []
    for rnd in rounds:
        for a, b in rnd.pairs:
            for k in range(rails):
                if (k, a, b) not in seen and rng.random() < share:
                    seen.add((k, a, b))
                    out.append(
                        (rnd.repeat, rnd.index, k, b, a) if rng.random() < 0.5 else (rnd.repeat, rnd.index, k, a, b)
                    )
    return out


def _check(rounds: tuple[Round, ...], suspects: list[Cell], passes: int, units: Units | None) -> None:
    again = [r for r in remeasurement_rounds(suspects, passes, units) if r.confirm <= passes]  # the packed ones
    wanted = {(k, min(a, b), max(a, b)) for _, _, k, a, b in suspects}
    matrix_round = {(min(a, b), max(a, b)): (r.repeat, r.index) for r in rounds for a, b in r.pairs}
    # The rounds each suspect was slow in, with the pairs of them that are suspect too: where a collision was.
    slow_in: dict[tuple[int, int], set[tuple[int, int]]] = defaultdict(set)
    for repeat, index, _, a, b in suspects:
        slow_in[repeat, index].add((min(a, b), max(a, b)))
    met_before = {frozenset(x) for group in slow_in.values() for x in itertools.combinations(group, 2)}
    for p in range(1, passes + 1):
        mine = [r for r in again if r.confirm == p]
        assert [r.index for r in mine] == sorted({r.index for r in mine})
        cells = [c for r in mine for c in r.cells or ()]
        assert sorted(cells) == sorted(wanted)  # each suspect once a pass
        met_now: set[frozenset[tuple[int, int]]] = set()
        for r in mine:
            nodes = [x for pair in r.pairs for x in pair]
            assert len(nodes) == len(set(nodes))  # one exchange per rank at a time
            assert {(a, b) for _, a, b in r.cells or ()} == set(r.pairs)
            for one, other in itertools.combinations(r.pairs, 2):
                # Companions it has not shared a leaf's uplinks with: a pair of a round it ran in, touching a unit
                # it touched (every pair of that round, without units).
                near = units is None or bool({units.of[x] for x in one} & {units.of[x] for x in other})
                assert not (near and frozenset((one, other)) in met_before)
                met_now.add(frozenset((one, other)))
            if units is not None:
                _spread_like_the_matrix(r, units)
        met_before |= met_now
    by_pair: dict[tuple[int, int], set[int]] = defaultdict(set)
    for r in again:
        for a, b in r.pairs:
            by_pair[a, b].add(r.confirm)
    assert all(len(v) == passes for v in by_pair.values())  # a pair's rails together, once a pass
    assert set(by_pair) <= set(matrix_round)


def _spread_like_the_matrix(rnd: Round, units: Units) -> None:
    """A unit's crossing nodes, and the partners they cross to, are each of a different class."""
    width = units.crossing or max(np.bincount(units.of))
    position = {
        x: sorted(y for y in range(len(units.of)) if units.of[y] == units.of[x]).index(x) for x in range(len(units.of))
    }
    into: dict[int, list[int]] = defaultdict(list)
    out_of: dict[int, list[int]] = defaultdict(list)
    for a, b in rnd.pairs:
        if units.of[a] != units.of[b]:
            for near, far in ((a, b), (b, a)):
                into[units.of[near]].append(position[near] % width)
                out_of[units.of[near]].append(position[far] % width)
    for classes in (*into.values(), *out_of.values()):
        assert len(classes) == len(set(classes))
    assert all(len(v) <= width for v in into.values())


@settings(max_examples=40, deadline=None)
@given(
    nodes=st.integers(2, 23),
    rails=st.integers(1, 4),
    repeats=st.integers(1, 2),
    share=st.floats(0.05, 1.0),
    passes=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_each_pass_meets_new_companions_on_the_circle_matrix(
    nodes: int, rails: int, repeats: int, share: float, passes: int, seed: int
) -> None:
    rounds = schedule(nodes, repeats, seed)
    _check(rounds, _suspects(rounds, rails, share, seed), passes, None)


@pytest.mark.parametrize(("sizes", "crossing"), [([8, 8], None), ([8, 8, 8, 8], 4), ([6, 9, 7], 3), ([16, 16], 8)])
def test_each_pass_spreads_its_flows_over_the_uplinks_as_the_unit_schedule_does(
    sizes: list[int], crossing: int | None
) -> None:
    of = tuple(u for u, size in enumerate(sizes) for _ in range(size))
    units = Units(tuple(np.random.default_rng(7).permutation(of).tolist()), crossing)
    rounds = schedule(len(of), 1, 3, units, 4)
    for share in (0.1, 0.5, 1.0):
        _check(rounds, _suspects(rounds, 4, share, 11), 2, units)


def test_the_packing_is_the_suspects_own_whatever_order_they_come_in() -> None:
    rounds = schedule(20, 2, 5)
    suspects = _suspects(rounds, 3, 0.4, 2)
    shuffled = [suspects[i] for i in np.random.default_rng(1).permutation(len(suspects))]
    flipped = [(r, i, k, b, a) for r, i, k, a, b in suspects]
    assert remeasurement_rounds(suspects, 2) == remeasurement_rounds(shuffled, 2) == remeasurement_rounds(flipped, 2)
    order = np.random.default_rng(4).permutation(len(suspects))
    cells = np.asarray(suspects)
    assert np.array_equal(slots(cells, 2)[:, order], slots(cells[order], 2))


def test_a_failed_node_costs_as_many_rounds_as_its_partners_and_a_scattered_few_fewer_than_the_matrix() -> None:
    rounds = schedule(32, 1, 0)
    star = [(r.repeat, r.index, 0, a, b) for r in rounds for a, b in r.pairs if 5 in (a, b)]
    assert len({r.index for r in remeasurement_rounds(star, 1)}) == 31
    # Noise: a suspect in each of 20 rounds, at other nodes. Re-measured in their own rounds they took 20; packed,
    # a handful (no two from one round, no node twice).
    scattered = [(r.repeat, r.index, 0, *r.pairs[i % len(r.pairs)]) for i, r in enumerate(rounds[:20])]
    packed = remeasurement_rounds(scattered, 2)
    assert max(r.index for r in packed) + 1 < 20
    assert remeasurement_rounds([], 2) == () and remeasurement_rounds(scattered, 0) == ()


def test_rank_0_knows_what_ran_together_in_every_pass() -> None:
    """``with_again``'s fractions are those of the rounds the ranks run: each pass's rounds filled on the cabling."""
    model = Shape(64, 8, 32, 2)  # a 2:1 tapered tree: a packed round can fill the uplinks
    cabling = model.cabling()
    nodes = [model.node_name(a) for a in range(64)]
    fabric = place(Topology(cabling, cabling.rails), nodes, 8, lambda node, rail: None)
    expected = round_load.matrix_expected(fabric, 64, 1, 0)
    assert expected.matrix  # the circle matrix fills the uplinks: the re-measurements' fractions are computed
    slow = np.random.default_rng(3).random((1, 8, 64, 64)) < 0.8
    slow = slow | slow.transpose(0, 1, 3, 2)
    again = round_load.with_again(expected, fabric, slow, 2)
    k, a, b = np.nonzero(np.triu(slow[0], k=1))
    suspects = [(0, int(expected.round_of[0, x, y]), int(r), int(x), int(y)) for r, x, y in zip(k, a, b, strict=True)]
    rounds = remeasurement_rounds(suspects, 2)
    plane = fabric.plane()
    for routing in ("spread", "destination"):
        cells = again.again[routing]
        assert isinstance(cells, Cellwise)
        for p in (1, 2):
            mine = [r for r in rounds if r.confirm == p]
            cell = np.array([c for r in mine for c in sorted(r.cells or ())])
            group = np.concatenate([np.full(len(r.cells or ()), r.index) for r in mine])
            want = plane.shares(cell[:, 0], cell[:, 1], cell[:, 2], group, routing == "destination")
            assert np.array_equal(cells.at(cell[:, 0], cell[:, 1], cell[:, 2])[p - 1], want)
        assert (cells.share < 1).any()


@pytest.mark.parametrize(("sizes", "crossing"), [([8, 8], None), ([8, 8, 8, 8], 4), ([6, 9, 7], 3)])
def test_the_quiet_pass_runs_one_flow_per_leaf_and_a_few_per_leaf_in_all(
    sizes: list[int], crossing: int | None
) -> None:
    of = tuple(u for u, size in enumerate(sizes) for _ in range(size))
    units = Units(tuple(np.random.default_rng(2).permutation(of).tolist()), crossing)
    rounds = schedule(len(of), 1, 3, units, 4)
    suspects = _suspects(rounds, 4, 0.7, 5)
    again = remeasurement_rounds(suspects, 2, units)
    quiet = [r for r in again if r.confirm == 3]
    assert [r.confirm for r in again] == sorted(r.confirm for r in again)  # the packed passes, then the quiet one
    assert quiet and quiet == list(quiet_rounds(suspects, 3, units))
    wanted = {(k, min(a, b), max(a, b)) for _, _, k, a, b in suspects}
    per_leaf: dict[tuple[int, int], int] = defaultdict(int)
    for r in quiet:
        nodes = [x for pair in r.pairs for x in pair]
        assert len(nodes) == len(set(nodes))
        leaves = [(units.of[x], k) for k, a, b in r.cells or () for x in (a, b)]
        assert len(leaves) == len(set(leaves))  # no two flows of the round on one leaf: none shares an uplink
        for k, a, b in r.cells or ():
            assert (k, a, b) in wanted and units.of[a] != units.of[b]
            per_leaf[units.of[a], k] += 1
            per_leaf[units.of[b], k] += 1
    assert max(per_leaf.values()) <= QUIET_PER_LEAF
    # A suspect between units is left out only where one of its leaves is full.
    picked = {c for r in quiet for c in r.cells or ()}
    for k, a, b in wanted - picked:
        if units.of[a] != units.of[b]:
            assert QUIET_PER_LEAF in (per_leaf[units.of[a], k], per_leaf[units.of[b], k])
    assert len(quiet) <= 2 * QUIET_PER_LEAF


def test_no_quiet_pass_without_units_between_two_or_more() -> None:
    rounds = schedule(12, 1, 0)
    suspects = _suspects(rounds, 2, 0.5, 1)
    assert all(r.confirm <= 2 for r in remeasurement_rounds(suspects, 2))
    assert quiet_rounds(suspects, 3, Units((0,) * 12)) == ()
    assert quiet_rounds(suspects, 3, Units((0,) * 6 + (-1,) * 6)) == ()
