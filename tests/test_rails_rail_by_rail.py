"""Two readings a switch verdict takes rail by rail or flow by flow, not pooled: a spine's quiet flows low again on
most rails each (``noise.most_beyond``), and a flow that kept its path, slow in every pass at any depth
(``Cells.slow_every_time``)."""

from __future__ import annotations

import numpy as np

from bench.rails.diagnosis.alone import chance_low_again
from bench.rails.diagnosis.cells import Cells
from bench.rails.diagnosis.matrix import PairMatrix
from bench.rails.diagnosis.noise import NAME_FALSE_ALARMS, most_beyond, poisson_sf

CHANCE = chance_low_again()
"""A healthy flow alone under the mark in one of two repeats (about one in 25), as the judge reads it."""


def _tails(found: list[int], tried: list[int]) -> list[float]:
    return [poisson_sf(n, t * CHANCE) for n, t in zip(found, tried, strict=True)]


def test_one_uplinks_rail_does_not_carry_the_others() -> None:
    """``ecmp`` at 1024 x 8 with leaves of 32, an uplink at scenario 1099001: its rail's quiet flows low again in 15
    of 20, the other rails' in 0-1 of 3-12. Pooled, that is far beyond noise; rail by rail, one rail is."""
    found, tried = [1, 1, 0, 1, 0, 0, 15, 1], [3, 12, 3, 7, 4, 6, 20, 9]
    assert poisson_sf(sum(found), sum(tried) * CHANCE) < 1e-10
    assert not most_beyond(_tails(found, tried), NAME_FALSE_ALARMS)


def test_a_spine_slows_the_quiet_flows_of_most_rails() -> None:
    """Three of eight flows low again on five rails of eight, each about 0.5% by chance: a spine's, though no rail
    alone would pass the family-wise level."""
    found, tried = [3, 3, 3, 3, 3, 0, 0, 0], [8] * 8
    tails = _tails(found, tried)
    assert all(t * 8 > NAME_FALSE_ALARMS for t in tails)
    assert most_beyond(tails, NAME_FALSE_ALARMS)
    assert not most_beyond(tails[:4] + [1.0] * 4, NAME_FALSE_ALARMS)  # four of eight is not most


def test_no_tails_is_no_evidence() -> None:
    assert not most_beyond([], NAME_FALSE_ALARMS)


def test_noise_alone_passes_at_about_its_level_or_less() -> None:
    """Independent tails uniform on [0, 1] (noise alone): the share of draws read as "most beyond" stays at or
    under the level asked, for 2, 3 and 8 rails."""
    rng = np.random.default_rng(7)
    alpha = 0.01
    for rails in (2, 3, 8):
        draws = rng.random((40_000, rails))
        rate = np.mean([most_beyond(list(row), alpha) for row in draws])
        assert rate <= 1.3 * alpha, (rails, rate)


def _two_passes(first: float, again: list[float], transient: float) -> Cells:
    """One rail of three nodes, one matrix repeat and two re-measurements: the cell (0, 1) at ``first`` then
    ``again`` (each slow), and the cell (0, 2) a transient at ``transient`` (slow once, normal again)."""
    busbw = np.full((1, 1, 3, 3), 100.0)
    busbw[0, 0, 0, 1] = busbw[0, 0, 1, 0] = first
    busbw[0, 0, 0, 2] = busbw[0, 0, 2, 0] = transient
    confirm = np.full((2, 1, 3, 3), np.nan)
    for p, value in enumerate(again):
        confirm[p, 0, 0, 1] = confirm[p, 0, 1, 0] = value
        confirm[p, 0, 0, 2] = confirm[p, 0, 2, 0] = 100.0
    slow = busbw < 90
    slow_again = np.nan_to_num(confirm, nan=100.0) < 90
    return Cells(
        matrix=PairMatrix(("a", "b", "c"), (0,), busbw, confirm=confirm),
        measured=np.ones((1, 3, 3), dtype=bool),
        slow_sample=slow,
        slow_again=slow_again,
        beyond_noise=slow.copy(),
        cell_median=np.log(busbw[0]),
        slow_rail=np.zeros(1, dtype=bool),
        expected=np.array([100.0]),
        basis="line rate",
        too_noisy=None,
    )


def test_a_flow_slow_in_every_pass_kept_its_path_at_any_depth() -> None:
    """A cell at 40% of line in all three samples beside a transient that fell to 25% (ECMP's collisions reach that
    deep): not slower than every transient, so not "always" slow, yet slow every time."""
    cells = _two_passes(40.0, [41.0, 39.0], transient=25.0)
    a, b = np.array([0]), np.array([1])
    assert cells.slow_every_time(0, a, b).tolist() == [True]
    assert not cells.reproduces_always[0, 0, 1]


def test_a_flow_normal_in_one_pass_did_not_keep_its_path() -> None:
    cells = _two_passes(40.0, [41.0, 99.0], transient=25.0)
    assert cells.slow_every_time(0, np.array([0]), np.array([1])).tolist() == [False]
