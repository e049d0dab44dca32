"""Issue 23 at small size: the fabric model through rank 0's own code, the matrix built from columns, the plan.

``ci/diagnosis_sim.py`` runs the same scenarios by the thousand at 64 x 8 and 256 x 8; here a handful on 24
nodes in 3 units of 8 (so an uplink's leaf can be told from the other side's) keeps the pipeline honest.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bench.exits import UserError
from bench.profile.cluster import load_profile
from bench.rails.diagnosis import rails_outcome
from bench.rails.diagnosis.localise import diagnose
from bench.rails.diagnosis.matrix import PairMatrix, PairTime
from bench.rails.plan import acceptance
from bench.rails.plan.config import RailsConfig, RailsSettings, resolve
from bench.rails.plan.model import Span
from tests.support import REPO, railbench


@pytest.mark.slow
def test_every_fault_kind_is_named_exactly_and_a_clean_fabric_names_nothing() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "ci/diagnosis_sim.py",
            "--sizes",
            "24x4",
            "--unit",
            "8",
            "--scenarios",
            "10",
            "--clean",
            "3",
            "--jobs",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exact match over fault scenarios: 10/10 = 100.0%" in proc.stdout
    assert "false alarms per clean run: 0.0000 (0 parts named in 3 clean runs; 0 clean runs not PASS)" in proc.stdout


@pytest.mark.slow
def test_the_matrix_from_columns_is_the_matrix_from_samples() -> None:
    """The numpy build of rank 0's matrix keeps each cell's slower direction exactly as the sample records do."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        n, rails = int(rng.integers(2, 7)), int(rng.integers(1, 4))
        times = []
        for _ in range(int(rng.integers(1, 150))):
            a, b = (int(x) for x in rng.choice(n, 2, replace=False))
            again = int(rng.integers(0, 3)) if rng.random() < 0.4 else 0
            time_us = float(rng.choice([0.0, 7.3, 10.0, 20.0]))
            times.append(
                PairTime(
                    a,
                    b,
                    int(rng.integers(rails)),
                    int(rng.integers(3)),
                    0,
                    1000,
                    time_us,
                    bool(rng.random() < 0.2),
                    again,
                )
            )
        nodes = [f"n{i}" for i in range(n)]
        old = PairMatrix.from_samples(rails_outcome.pair_samples(times, nodes), nodes=nodes, rails=list(range(rails)))
        new = rails_outcome.pair_matrix(times, nodes, rails)
        for name in ("busbw", "stopped_flags"):
            assert np.array_equal(getattr(old, name), getattr(new, name), equal_nan=True), name
        # The re-measurements, held at their cells either way, and as the dense planes they stand for.
        for name in ("rail", "low", "high", "values", "stopped"):
            assert np.array_equal(getattr(old.again, name), getattr(new.again, name), equal_nan=True), name
        assert np.array_equal(old.again.dense(), new.again.dense(), equal_nan=True)
        assert np.array_equal(old.again.dense_stopped(), new.again.dense_stopped())
    with pytest.raises(UserError, match="outside the run's 2 nodes"):
        rails_outcome.pair_matrix([PairTime(0, 5, 0, 0, 0, 1, 1.0)], ["a", "b"], 1)


def _settings() -> RailsSettings:
    return resolve(RailsConfig(profile="lambda-1cc"), load_profile("lambda-1cc"))


def test_the_plan_follows_the_schedule_and_fits_a_time_limit() -> None:
    settings = _settings()
    model = settings.plan_model
    assert model is not None and model.rate_Gbps == Span.point(400)
    full = acceptance.build(64, 8, settings, model, intra=True)
    phases = {p.name: p for p in full.phases}
    assert phases["pair matrix"].rounds == 63  # the circle method: n - 1 rounds of n/2 pairs
    assert phases["pair matrix"].cells == 63 * 32 * 8 * 2  # every pair, every rail, both directions
    assert full.total.high == pytest.approx(sum(p.seconds.high for p in full.phases))
    assert full.total.low == pytest.approx(sum(p.seconds.low for p in full.phases))
    nothing = acceptance.fit(64, 8, settings, model, max_minutes=0.01, intra=True)
    assert nothing.cut is not None and "nothing more can be cut to fit 0.01 min" in nothing.cut
    assert (
        nothing.settings.test.pair_bytes == acceptance.MIN_CUT_BYTES
        and nothing.settings.test.iters == acceptance.MIN_CUT_ITERS
    )
    # The high figure is fitted: at 64 nodes its fixed costs (start-up, coordination, the end) weigh most, so
    # the limit is set between the smallest plan and the whole one.
    limit = (nothing.total.high + full.total.high) / 2
    fitted = acceptance.fit(64, 8, settings, model, max_minutes=limit / 60, intra=True)
    assert fitted.total.high <= limit
    assert fitted.cut is not None and "confirmation 2 -> 1 pass" in fitted.cut
    assert fitted.settings.test.confirm == 1


@pytest.mark.slow
def test_accept_plan_prints_before_anything_runs_and_refuses_what_it_cannot_plan() -> None:
    shown = railbench(["accept", "--profile", "lambda-1cc", "--plan", "--nodes", "64"])
    assert shown.returncode == 0, shown.stderr
    assert "# plan: 64 nodes x 8 ranks" in shown.stdout and "world sweep" in shown.stdout
    assert "# projected wall time:" in shown.stdout and " min" in shown.stdout
    no_shape = railbench(["rails", "--profile", "lambda-1cc", "--plan"])
    assert no_shape.returncode == 2 and "--plan needs two nodes or more: pass --nodes N" in no_shape.stderr
    no_rate = railbench(["rails", "--profile", "generic", "--plan", "--nodes", "4"])
    assert no_rate.returncode == 2 and "gives no rail rate to plan with" in no_rate.stderr


def test_at_scale_a_pair_is_named_by_how_slow_it_is_not_by_heavy_tails() -> None:
    """64 nodes x 2 rails against a 400 Gb/s line rate, 2% noise and one sample in a hundred slowed by up to 30%:
    a pair at half its peers in all three samples is named; a healthy pair with two samples from the tail's end
    (the fabric model's false alarm, 1 run in 1,000) is not."""
    rng = np.random.default_rng(7)
    nodes, rails = 64, 2
    names = [f"node{i + 1:03d}" for i in range(nodes)]

    def noisy(shape: tuple[int, ...]) -> np.ndarray:
        values = 386 * np.exp(0.015 * rng.standard_normal(shape))
        tail = rng.random(shape) < 0.01
        values[tail] *= rng.uniform(0.7, 0.98, int(tail.sum()))
        return values

    busbw = noisy((1, rails, nodes, nodes))
    confirm = np.full((2, rails, nodes, nodes), np.nan)
    slow_pair, tail_pair = (0, 5, 9), (1, 20, 40)
    busbw[(0, *slow_pair)] = 190.0
    confirm[(slice(None), *slow_pair)] = [195.0, 188.0]
    busbw[(0, *tail_pair)] = 271.0
    confirm[(slice(None), *tail_pair)] = [375.0, 272.0]
    for values in (busbw, confirm):
        values[:] = np.triu(np.nan_to_num(values, nan=0.0), k=1)
        values += np.swapaxes(values, -1, -2)
        values[values == 0] = np.nan
    matrix = PairMatrix(tuple(names), (0, 1), busbw, confirm=confirm)
    found = diagnose(matrix, 400.0)
    assert [(d.kind, d.node, d.peer, d.rail) for d in found.defects] == [("pair", "node006", "node010", 0)]


def test_accept_fits_its_sweep_too_when_the_rails_alone_cannot_fit() -> None:
    from bench.accept.config import AcceptConfig, accept_plan, validate
    from bench.sweep.config import RunConfig

    def planned(minutes: float | None) -> acceptance.Plan:
        rails = RailsConfig(profile="lambda-1cc", max_minutes=minutes)
        config = AcceptConfig("lambda-1cc", RunConfig(max_bytes=16 << 30, profile="lambda-1cc"), rails)
        profile, settings = validate(config)
        found = accept_plan(config.sweep, profile, settings, 64, 8, "nccl")
        assert found is not None and found.sweep is not None
        return found

    full = planned(None)
    assert full.sweep is not None and full.sweep.max_bytes == 16 << 30 and full.cut is None
    # The sweep is cut last: only when the rails test's own cuts are not enough.
    rails_only = planned(0.95 * full.total.high / 60)  # within what the rails test's own cuts save (to ~0.92)
    assert rails_only.sweep is not None and rails_only.sweep.max_bytes == 16 << 30 and rails_only.cut is not None
    smallest_rails = planned(0.01)  # everything the rails test can cut is cut, and the sweep too
    assert smallest_rails.sweep is not None and smallest_rails.sweep.max_bytes == acceptance.MIN_CUT_SWEEP_BYTES
    limit = smallest_rails.total.high + 1  # only the sweep's cuts bring it under this
    cut = planned(limit / 60)
    assert cut.sweep is not None and cut.sweep.max_bytes < 16 << 30
    assert cut.cut is not None and "world sweep up to" in cut.cut and cut.total.high <= limit
