"""Issue 45 item 2: the suspects are measured again in their own rounds, then a few between units with no other
flow between units on their leaves (the quiet pass, ``bench.rails.plan.remeasure``), over real schedules (the
circle matrix and the unit schedule) and random suspects.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from bench.rails.plan.remeasure import QUIET_PER_LEAF, quiet_rounds, remeasurement_rounds
from bench.rails.plan.schedule import Cell, Round, Units, confirmation_rounds, schedule


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


@pytest.mark.parametrize(("sizes", "crossing"), [([8, 8], None), ([8, 8, 8, 8], 4), ([6, 9, 7], 3)])
def test_the_quiet_pass_runs_one_flow_per_leaf_and_a_few_per_leaf_in_all(
    sizes: list[int], crossing: int | None
) -> None:
    of = tuple(u for u, size in enumerate(sizes) for _ in range(size))
    units = Units(tuple(np.random.default_rng(2).permutation(of).tolist()), crossing)
    rounds = schedule(len(of), 1, 3, units, 4)
    suspects = _suspects(rounds, 4, 0.7, 5)
    again = remeasurement_rounds(rounds, suspects, 2, units)
    quiet = [r for r in again if r.confirm == 3]
    # Each suspect's own round twice, then the quiet pass.
    assert again[: len(again) - len(quiet)] == confirmation_rounds(rounds, suspects, 2)
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
    assert remeasurement_rounds(rounds, suspects, 2) == confirmation_rounds(rounds, suspects, 2)
    assert remeasurement_rounds(rounds, [], 2, Units((0,) * 6 + (1,) * 6)) == ()
    assert quiet_rounds(suspects, 3, Units((0,) * 12)) == ()
    assert quiet_rounds(suspects, 3, Units((0,) * 6 + (-1,) * 6)) == ()
