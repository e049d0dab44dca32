"""The unit schedule (``bench.rails.plan.schedule.unit_rounds``): every pair inside a unit once, no node twice in a
round, every unit meeting every other (or as many as a switch verdict needs), each node meeting the partners
promised in other units; today's circle matrix bit for bit where it does not apply; and a judge that never names a
pair the schedule left out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.profile.cluster import load_profile
from bench.rails.diagnosis import judge, noise
from bench.rails.diagnosis.liveness import dead_defects, decide
from bench.rails.plan import acceptance
from bench.rails.plan.config import RailsConfig, resolve
from bench.rails.plan.fabric_map import Topology
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.schedule import NAMED_AT, Units, cross_count, round_count, schedule, unit_rounds
from tests.support.models.fabric_model import Shape
from tests.test_rails_liveness import reports


def _check(units: np.ndarray, rounds: list[np.ndarray], rails: int, crossing: int | None = None) -> None:
    """Every property the schedule promises, on one schedule."""
    n = len(units)
    met = np.zeros((n, n), dtype=np.int64)
    for pairs in rounds:
        a, b = pairs[:, 0], pairs[:, 1]
        assert (a < b).all()
        assert len(np.unique(pairs)) == pairs.size  # no node twice in a round
        met[a, b] += 1
    assert len(rounds) < round_count(n)  # it saves rounds, or it is not used
    same = units[:, None] == units[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    assert (met[same & upper] == 1).all()  # every pair inside a unit exactly once
    assert met.max() == 1  # no pair twice, between units either
    met = (met + met.T) > 0
    ids, inverse = np.unique(units, return_inverse=True)
    sizes = np.bincount(inverse)
    per_unit = np.stack([met[:, inverse == u].sum(axis=1) for u in range(len(ids))], axis=1)  # [node, unit]
    needed = cross_count(len(ids), rails)
    for u in range(len(ids)):  # every unit meets every other unit, or as many others as a switch verdict needs
        others = (per_unit[inverse == u].sum(axis=0)[np.arange(len(ids)) != u] >= 1).sum()
        assert others >= min(len(ids) - 1, needed)
    window = crossing or n
    for u in range(len(ids)):
        # Every unit's leaves carry the rounds between units a switch verdict needs, or as many as its nodes can
        # have distinct partners in (a unit of s nodes meets a unit of s nodes in s rounds at most) ...
        mine = [r for r in rounds if (inverse[r[inverse[r[:, 0]] != inverse[r[:, 1]]]] == u).any()]
        assert len(mine) >= min(cross_count(len(ids), rails), (len(ids) - 1) * int(sizes[u]))
        # ... no round crosses more of a unit than the window ...
        for r in mine:
            crossed = r[inverse[r[:, 0]] != inverse[r[:, 1]]].ravel()
            assert (inverse[crossed] == u).sum() <= window
        # ... and with units of one size, the window moving each round, each node crosses in its turn.
        if len(set(sizes.tolist())) == 1:
            partners = per_unit[inverse == u].sum(axis=1) - (int(sizes[u]) - 1)
            assert (partners >= len(mine) * min(window, int(sizes[u])) // (2 * int(sizes[u]))).all()


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=2, max_size=6),
    rails=st.integers(1, 8),
    shuffle=st.integers(0, 2**16),
    crossing=st.one_of(st.none(), st.integers(1, 40)),
)
@example(sizes=[32, 32, 5], rails=8, shuffle=1, crossing=16)  # a small last unit
@example(sizes=[40, 23], rails=8, shuffle=2, crossing=None)  # the larger unit tiled by the smaller
@example(sizes=[38, 38], rails=8, shuffle=0, crossing=18)  # A's window moved by 19 and stopped at two places
def test_the_unit_schedule_keeps_its_promises(sizes: list[int], rails: int, shuffle: int, crossing: int | None) -> None:
    units = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(shuffle).shuffle(units)  # units need not be contiguous in the run's node order
    given_units = Units(tuple(units.tolist()), crossing)
    rounds = unit_rounds(given_units, rails)
    if rounds is None:  # no saving: the full matrix runs (checked below)
        assert schedule(len(units), 1, 0, given_units, rails) == schedule(len(units))
        return
    _check(units, rounds, rails, crossing)


@pytest.mark.parametrize(
    ("nodes", "crossing", "rounds"), [(64, 16, 53), (256, None, 59), (1024, 16, 62), (2048, 16, 62), (4096, 16, 62)]
)
def test_rail_optimised_units_of_32(nodes: int, crossing: int | None, rounds: int) -> None:
    units = np.arange(nodes) // 32
    found = unit_rounds(Units(tuple(units.tolist()), crossing), 8)
    assert found is not None and len(found) == rounds
    if nodes <= 256:
        _check(units, found, 8, crossing)


@pytest.mark.parametrize("count", [60, 61])
def test_more_units_than_a_verdict_needs_cross_only_as_often_as_it_needs(count: int) -> None:
    """Past ``cross_count`` units (and a unit's own rounds), each unit of 16 nodes or more crosses that many times,
    each time to another unit, whatever the count of units (an odd count sits one unit out a round, so one round
    more), and every promise still holds; units of 32 cross 31 times from 1024 nodes up, as many rounds as inside
    them. Units of 8 cross as often, no more (``CAPPED_FROM``: since stop 76)."""
    units = np.arange(count * 16) // 16
    found = unit_rounds(Units(tuple(units.tolist()), 8), 1)
    assert found is not None
    assert len(found) == 15 + cross_count(count, 1) + count % 2  # 15 rounds inside units of 16
    _check(units, found, 1, 8)
    small = unit_rounds(Units(tuple((np.arange(count * 8) // 8).tolist()), 8), 1)
    assert small is not None and len(small) == 7 + cross_count(count, 1) + count % 2
    cells = [
        sum(len(r) for r in unit_rounds(Units(tuple((np.arange(n) // 32).tolist()), 16), 8) or []) for n in (1024, 4096)
    ]
    assert cells[1] < 4.5 * cells[0]  # four times the nodes, about four times the cells: grows as n, not n^2


def test_repeats_relabel_inside_units_and_keep_every_property() -> None:
    units = Units(tuple((np.arange(96) // 32).tolist()), 16)
    three = schedule(96, 3, 5, units, 8)
    assert three == schedule(96, 3, 5, units, 8)  # every rank computes the same rounds
    assert three != schedule(96, 3, 6, units, 8)
    for repeat in range(3):
        mine = [r for r in three if r.repeat == repeat]
        assert [r.index for r in mine] == list(range(len(mine)))
        assert all(r.bye is None for r in mine)  # a node sits out by being in no pair
        _check(np.array(units.of), [np.array(r.pairs) for r in mine], 8, 16)
    firsts = [{p for r in three if r.repeat == k for p in r.pairs} for k in range(3)]
    assert firsts[0] != firsts[1]  # a repeat meets other partners between units


@pytest.mark.parametrize(
    "units",
    [None, [0] * 12, [0] * 6 + [1] * 5 + [-1], list(range(12)), [0] * 6 + [1] * 6],
    ids=["no cabling", "one unit", "a node outside the cabling", "a unit per node", "no round saved"],
)
def test_without_a_saving_the_schedule_is_todays_bit_for_bit(units: list[int] | None) -> None:
    assert schedule(12, 3, 7, None if units is None else Units(tuple(units)), 8) == schedule(12, 3, 7)


def test_the_cross_count_is_the_persistence_tests_and_grows_with_the_parts_tried() -> None:
    assert NAMED_AT == noise.NAME_FALSE_ALARMS
    assert [cross_count(u, 8) for u in (2, 8, 32)] == [22, 23, 25]
    for units in (2, 8, 32):
        r = cross_count(units, 8)
        tries = 8 * (units + 1)
        # Every one of r rounds slow at a hot-spot share of a half is nameable; one round fewer is not.
        assert 0.5**r * tries <= noise.NAME_FALSE_ALARMS < 0.5 ** (r - 1) * tries


@pytest.mark.slow
def test_the_judge_names_only_what_is_broken_and_never_a_pair_left_out() -> None:
    """Four units of 16 on 2 rails of the fabric model: the unit schedule leaves most pairs between units out.
    A clean run names nothing and has no cell below its target; a bad cable and a bad uplink (seen only in
    the rounds between units) are each named exactly."""
    from ci.diagnosis_sim import run_one, schedule_for

    shape = Shape(64, 2, 16)
    rounds = schedule_for(shape, False)
    assert len(rounds) < round_count(64)
    ran = {p for r in rounds for p in r.pairs}
    assert len(ran) < 64 * 63 // 2
    clean = run_one("64x2", shape, "clean", 3)
    assert clean.named == set() and clean.below_target == 0 and clean.exact
    for kind in ("cable", "uplink"):
        found = run_one("64x2", shape, kind, 11)
        assert found.exact, (kind, found.expected, found.named)


@pytest.mark.slow
def test_the_plan_prices_the_schedule_the_run_uses() -> None:
    """256 nodes in units of 32: the unit schedule's 59 rounds and 7,552 pairs a rail, said on the plan; with
    --full-matrix, or without the cabling, the full matrix's 255 rounds, as before."""

    cabling = Shape(256, 8, 32).cabling()
    profile = load_profile("lambda-1cc")
    plans = {}
    for full in (False, True):
        settings = resolve(RailsConfig(profile="lambda-1cc", full_matrix=full), profile)
        with_cabling = dataclasses.replace(settings, topology=Topology(cabling, cabling.rails))
        assert settings.plan_model is not None
        for name, s in (("cabling", with_cabling), ("none", settings)):
            plans[(full, name)] = acceptance.build(256, 8, s, settings.plan_model, intra=False)
    matrix = {key: next(p for p in plan.phases if p.name == "pair matrix") for key, plan in plans.items()}
    assert (matrix[(False, "cabling")].rounds, matrix[(False, "cabling")].cells) == (59, 2 * 7552 * 8)
    for key in ((True, "cabling"), (False, "none"), (True, "none")):
        assert (matrix[key].rounds, matrix[key].cells) == (255, 2 * 255 * 128 * 8)
        assert not any("unit schedule" in line for line in plans[key].lines())
    said = [line for line in plans[(False, "cabling")].lines() if "unit schedule" in line]
    assert said == [
        "# pairs: the unit schedule from the cabling, 31 rounds inside the units and 28 between them, not the full "
        "matrix's 255 (--full-matrix pairs every two nodes)"
    ]
    assert plans[(False, "cabling")].total.high < plans[(False, "none")].total.high


def test_a_plan_given_a_smaller_fabrics_cabling_says_why_it_prices_the_full_matrix() -> None:
    """A cabling of 64 hosts for a plan of 96 nodes (last month's file, one hall of two): the unit schedule cannot
    place the other 32, so the plan prices the full matrix, and says why, not as though no cabling were given."""

    cabling = Shape(64, 8, 32).cabling()
    profile = load_profile("lambda-1cc")
    settings = resolve(RailsConfig(profile="lambda-1cc"), profile)
    with_cabling = dataclasses.replace(settings, topology=Topology(cabling, cabling.rails))
    assert settings.plan_model is not None
    plan = acceptance.build(96, 8, with_cabling, settings.plan_model, intra=False)
    matrix = next(p for p in plan.phases if p.name == "pair matrix")
    assert matrix.rounds == 95
    said = [line for line in plan.lines() if line.startswith("# pairs:")]
    assert said == [
        "# pairs: the full matrix: the cabling (--topology) holds 64 hosts, fewer than the plan's 96 nodes; give "
        "the whole fabric's cabling for the unit schedule"
    ]
    fits = acceptance.build(64, 8, with_cabling, settings.plan_model, intra=False)
    said_fits = [line for line in fits.lines() if line.startswith("# pairs:")]
    assert len(said_fits) == 1 and said_fits[0].startswith("# pairs: the unit schedule"), said_fits


def test_a_dead_link_costs_only_the_pairs_its_schedule_would_have_run() -> None:
    """A link down before the groups form costs the pairs the unit schedule meets it in, never the pairs between
    units the schedule leaves out: those were never going to run (``judge._scheduled``)."""

    shape = Shape(64, 2, 16)
    cabling = shape.cabling()
    settings = resolve(RailsConfig(profile="lambda-1cc"), load_profile("lambda-1cc"))
    settings = dataclasses.replace(settings, topology=Topology(cabling, cabling.rails))
    nodes = tuple(shape.node_name(a) for a in range(64))
    layout = RailLayout(nodes, tuple((2 * a, 2 * a + 1) for a in range(64)))
    scheduled = judge._scheduled(settings, layout)
    assert scheduled is not None
    met = [p for p in range(64) if p != 5 and scheduled(5, p)]
    assert set(range(16)) - {5} <= set(met) and len(met) < 63  # its unit in full, some of the others
    membership = decide(reports(2, 64, down={(5, 0)}), 64, 2)
    (defect,) = dead_defects(membership, nodes, None, {}, scheduled)
    assert defect.conviction.pairs == len(met)
    assert sum(1 for line in defect.conviction.evidence if line.endswith("not attempted")) == len(met)
    full = judge._scheduled(
        dataclasses.replace(settings, config=dataclasses.replace(settings.config, full_matrix=True)), layout
    )
    assert full is None
    (everyone,) = dead_defects(membership, nodes, None, {}, full)
    assert everyone.conviction.pairs == 63
