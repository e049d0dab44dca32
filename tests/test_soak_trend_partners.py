"""The trend judge (``bench.soak.trend``) against the rotation through the pair matrix: a window that runs one pair
round gives each link one partner, and a link's typical rate is then that pair's (``bench.soak.window``: the upper
median of its cells, here both directions of one pair). A healthy link whose partner is a slowing link in every
third window carries the slowing link's rate in those windows, deeper each time; the judge must name the slowing
link alone (issue 46: "noise that must not convict"). The namespace testbed's soak
(``tests/test_soak_netns_trend.py``) runs several rounds a window; this is the case of one.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.rundir.soak_records import Trend
from bench.rundir.soak_windows import LinkWindow, SoakWindow
from bench.soak.judge import soak_findings
from tests.support.soak_judging import PROFILE, RATE, WINDOW_S, only

NODES = ("node00", "node01", "node02", "node03")
ROUNDS = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))
"""The round-robin of 4 nodes: 3 rounds, each node meeting every other once (the pair matrix's schedule)."""
SLOWING = 1


def rotated(n: int, fall: float, noise: float, seed: int) -> list[SoakWindow]:
    """n windows of one round each, in turn; node01's rate falls by ``fall`` of the line rate over the soak, and
    each pair runs at the slower of its two ends, with ``noise`` (relative, normal)."""
    rng = np.random.default_rng(seed)
    windows = []
    for i in range(n):
        own = [RATE] * len(NODES)
        own[SLOWING] = RATE * (1 - fall * i / (n - 1))
        rates: dict[int, float] = {}
        for a, b in ROUNDS[i % len(ROUNDS)]:
            rates[a] = rates[b] = min(own[a], own[b]) * (1 + noise * float(rng.normal()))
        links = tuple(
            LinkWindow(node, 0, device="mlx5_0:1", busbw_Gbps=rates[k], cells=2) for k, node in enumerate(NODES)
        )
        windows.append(SoakWindow(i, i * WINDOW_S, (i + 1) * WINDOW_S, rounds=(i % len(ROUNDS),), links=links))
    return windows


@settings(max_examples=10, deadline=None)
@given(
    n=st.sampled_from([12, 30, 90, 200]),
    fall=st.sampled_from([0.3, 0.7]),
    noise=st.sampled_from([0.005, 0.02]),
    seed=st.integers(0, 2**16),
)
def test_a_slowing_links_partners_are_not_named_a_trend(n: int, fall: float, noise: float, seed: int) -> None:
    windows = rotated(n, fall, noise, seed)
    # the partners carry the slowing link's rate in the windows they met it
    partner = [w.links[0].busbw_Gbps for w in windows if w.rounds == (0,)]
    assert partner[-1] is not None and partner[-1] < RATE * (1 - fall / 2)
    found = [f.evidence for f in only(soak_findings(windows, PROFILE), Trend)]
    assert [(t.part.node, t.part.rail) for t in found if isinstance(t, Trend)] == [(NODES[SLOWING], 0)], found
