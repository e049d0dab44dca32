"""Issue 45 item 2: a switch is named only where its slowdown holds with no other flow on its leaves.

On RoCE the switches hash each queue pair onto one path for its life (ECMP): when the pair matrix fills the uplinks
most flows between units collide, and they collide again whenever they run together, so the matrix and its packed
re-measurements showed a slowdown "on every rail, in most rounds, on most leaves" in every clean run: a spine.
The quiet pass (``bench.rails.plan.remeasure.quiet_rounds``) measures a few of those suspects with one flow per
leaf; ``bench.rails.diagnosis.switches`` names the spine only where they stay slow there, and otherwise sets the
cells between units aside as the fabric's load, said once.

These run rank 0's own code on the fabric model (``tests/support/models/fabric_model.py``), as
``ci/diagnosis_sim.py`` does; the campaigns in docs/rails.md give the rates.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.rails.diagnosis import judge
from bench.rails.diagnosis.localise import Thresholds
from bench.rails.diagnosis.matrix import PairTime, pair_matrix
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.remeasure import QUIET_PER_LEAF, quiet_rounds
from bench.rails.plan.schedule import Units
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Fault, Model, Shape
from tests.support.models.fabric_regimes import ECMP, HOT_SPOTS, REALISTIC, Regime


def _judged(regime: Regime, faults: tuple[Fault, ...], seed: int) -> tuple[RailsOutcome, int]:
    """One acceptance on the model at 64 x 8 as rank 0 judges it, and how many quiet rounds it ran."""
    sim = diagnosis_sim()
    shape = Shape(64, 8, 32, regime.oversubscription)
    settings = sim.settings_for(shape)
    test = settings.test
    model = Model(
        shape, faults, np.random.default_rng(seed), test.pair_bytes, test.rail_bytes, test.iters, test.warmup, regime
    )
    nodes = tuple(shape.node_name(a) for a in range(shape.nodes))
    layout = RailLayout(
        nodes, tuple(tuple(a * shape.rails + k for k in range(shape.rails)) for a in range(shape.nodes))
    )
    gathered = model.gathered(test.collectives)
    rounds = sim.schedule_for(shape, False)
    cols = model.measure_rounds(rounds)
    _, again = sim.again_rounds(settings, layout, gathered, cols, rounds, sim.units_for(shape, False))
    cols = sim.measure_again(model, cols, again, test.confirm)
    cols, _ = sim.measure_alone_again(model, cols, settings, layout, gathered, sim.units_for(shape, False))
    outcome = judge.judged(settings, layout, gathered, [], pair_matrix(cols, nodes, shape.rails))
    return outcome, sum(r.confirm > test.confirm for r in again)


@pytest.mark.slow
def test_ecmp_collisions_name_no_switch_and_are_said_once() -> None:
    for seed in (0, 1, 2):
        outcome, quiet = _judged(ECMP, (), seed)
        assert quiet > 0
        assert not outcome.named, [d.kind for d in outcome.named]
        said = str(outcome.written.fabric_capacity)
        assert "one flow per leaf (the quiet pass)" in said and "not judged as a defect" in said


@pytest.mark.slow
@pytest.mark.parametrize("regime", [ECMP, REALISTIC, HOT_SPOTS], ids=lambda r: r.name)
def test_a_spine_that_slows_its_flows_is_named_whatever_the_routing(regime: Regime) -> None:
    outcome, _ = _judged(regime, (Fault("spine", spine=3, factor=0.5),), 7)
    assert [d.kind for d in outcome.named] == ["spine"]
    assert "quiet pass" not in str(outcome.written.fabric_capacity)


@pytest.mark.slow
@pytest.mark.parametrize("factor", [0.3, 0.6])
def test_under_ecmp_a_degraded_uplink_is_named_from_its_quiet_samples_and_the_collisions_are_still_load(
    factor: float,
) -> None:
    # Every flow between units reproduces beside the others under ECMP, so the matrix cannot tell the uplink's
    # flows from collided ones; the quiet pass takes each leaf's slowest suspects, the uplink's among them, and
    # they stay low alone on its rail only, each time they are measured alone again (at 0.6 of a link, a queue
    # pair of half a link still read at 0.5-0.65 of line alone in the model, against 0.9-0.97 for the others).
    outcome, _ = _judged(ECMP, (Fault("uplink", unit=0, rail=6, uplink=22, factor=factor),), 7)
    assert [(d.kind, d.rail, sorted(d.switches)) for d in outcome.named] == [
        ("uplink", 6, ["leaf-su1-r6", "leaf-su2-r6"])
    ]
    assert "one flow per leaf (the quiet pass)" in str(outcome.written.fabric_capacity)


def test_the_suspects_come_slowest_first() -> None:
    # Rank 0 sends the suspects slowest first, and every rank packs the quiet pass from that one list.
    mib, slow = 1 << 20, {(0, 3): 4000.0, (1, 4): 8000.0}
    # Six nodes, every pair in a round of its own on an 80 Gb/s rail: 84 Gb/s each, but n0-n3 at 2.1, n1-n4 at 1.0.
    times = [
        PairTime(x, y, 0, 0, index, mib, slow.get((a, b), 100.0))
        for index, (a, b) in enumerate(itertools.combinations(range(6), 2))
        for x, y in ((a, b), (b, a))
    ]
    found = judge.suspects(times, tuple(f"n{i}" for i in range(6)), 1, {0: 80.0}, Thresholds())
    assert [(c[3], c[4]) for c in found] == [(1, 4), (0, 3)]


UNIT = QUIET_PER_LEAF + 2


@pytest.mark.parametrize("order", [range(UNIT), range(UNIT - 1, -1, -1)], ids=["ascending", "descending"])
def test_the_quiet_pass_takes_each_leafs_suspects_in_the_order_sent(order: range) -> None:
    # Two suspects more than QUIET_PER_LEAF between two units on one rail: the pass keeps QUIET_PER_LEAF of them, the
    # first sent.
    suspects = [(0, 0, 0, i, UNIT + i) for i in order]
    quiet = quiet_rounds(suspects, 3, Units((0,) * UNIT + (1,) * UNIT))
    taken = sorted(cell for r in quiet for cell in r.cells or ())
    assert len(taken) == QUIET_PER_LEAF
    assert taken == sorted((0, i, UNIT + i) for i in list(order)[:QUIET_PER_LEAF])
