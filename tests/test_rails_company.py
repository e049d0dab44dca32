"""An uplink whose convicting flows ran as healthy ones alone is the fabric's load, not a degraded uplink
(``bench.rails.diagnosis.company``): ECMP's hash can make one leaf's flows collide in every pass, in an uplink's
shape."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rails.diagnosis.company import needs_company
from tests.support import diagnosis_sim
from tests.support.models.fabric_model import Shape
from tests.support.models.fabric_regimes import ECMP, TAPERED_ECMP

LINE = 400.0


def _leaf(alone_rates: list[float], always: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Node 0's cells to nodes 8..15 convict (each pair once, a < b); the first len(alone_rates) of them were
    re-measured alone, both directions, at those fractions of line."""
    convicting = np.zeros((16, 16), dtype=bool)
    convicting[0, 8:] = True
    slow_every_pass = convicting.copy() if always else convicting & (np.arange(16) % 2 == 0)[None, :]
    quiet = np.zeros((16, 16), dtype=bool)
    rates = np.full((16, 16), np.nan)
    for i, fraction in enumerate(alone_rates):
        quiet[0, 8 + i] = quiet[8 + i, 0] = True
        rates[0, 8 + i] = rates[8 + i, 0] = fraction * LINE
    return convicting, slow_every_pass, quiet, rates


def test_flows_slow_in_every_pass_and_at_line_alone_needed_company() -> None:
    assert needs_company(*_leaf([0.89, 0.91, 0.95]), LINE)


def test_one_flow_slow_alone_is_the_uplinks_own() -> None:
    """An ECMP uplink at 0.75 of a link carries its flows alone at about that (docs/rails.md)."""
    assert not needs_company(*_leaf([0.92, 0.74, 0.95]), LINE)


def test_flows_slow_in_some_passes_only_are_not_read_so() -> None:
    """Under adaptive routing a degraded uplink slows a flow only in the samples whose path took it."""
    assert not needs_company(*_leaf([0.89, 0.91, 0.95], always=False), LINE)


def test_one_flow_alone_is_too_few_to_clear_an_uplink() -> None:
    assert not needs_company(*_leaf([0.93]), LINE)


@pytest.mark.parametrize("seed", [84, 120])
def test_a_leaf_whose_hashed_flows_collide_in_every_pass_is_no_uplink(seed: int) -> None:
    """ci/diagnosis_sim.py's ecmp clean runs 84 and 120 at 64 x 8 with leaves of 8 (``--unit 8``): 27-28 of one
    leaf's cells between units on one rail slow in every pass, and its uplink named; alone, those flows ran at 0.88
    of line or more."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 8, ECMP.oversubscription), "clean", seed, ECMP)
    assert result.named == set()


@pytest.mark.parametrize("seed", [6, 75, 167])
def test_the_quiet_pass_reaches_the_flows_the_verdict_reads_as_slow(seed: int) -> None:
    """The same model's clean runs 6, 75 and 167: the suspects were picked without the cabling's classes of cells, so
    a small leaf's collisions between units put every link under the line and 7,000 cells a run were re-measured; the
    quiet pass was spent on flows the verdict then read as expected load, it had no sample of the flows that
    convicted one leaf's uplink, and that uplink was named. Picked as the verdict judges them, the suspects are about
    thirty (32-33) and the uplink is not named."""
    result = diagnosis_sim().run_one("64x8", Shape(64, 8, 8, ECMP.oversubscription), "clean", seed, ECMP)
    assert result.named == set()
    assert result.suspects < 1000, result.suspects


def test_collided_flows_slow_in_every_pass_at_any_depth_kept_their_paths() -> None:
    """ci/diagnosis_sim.py's tapered-ecmp clean run 96002 at 256 x 8 with leaves of 16: one leaf's 95 convicting cells
    between units on rail 4 were slow in all three samples (a quarter to two fifths of line, as their collisions
    fell) and its 16 flows alone ran at 0.90-1.0 of line, yet its uplink was named: the fixed-path reading took the
    cells slow deeper than every transient of the run (8 of 95), and under ECMP's collisions the transients reach
    as deep as the leaf's own cells. Slow in every pass is the sign of a kept path, at any depth."""
    shape = Shape(256, 8, 16, TAPERED_ECMP.oversubscription)
    result = diagnosis_sim().run_one("256x8", shape, "clean", 96002, TAPERED_ECMP)
    assert result.named == set()
