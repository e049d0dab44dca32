"""An uplink's slowdown that needs company: the flows that convicted it, re-measured alone, ran as healthy ones.

Where switches hash each queue pair onto one path for its life (ECMP), a leaf whose flows happen to hash onto
the same uplinks collides in every round its nodes cross units, and again in each re-measurement of that round:
its cells between units are slow in every pass, in an uplink's shape (spread over its nodes, nothing within its
unit). On the fabric model with leaves of 8 (``ci/diagnosis_sim.py --regime ecmp --unit 8``) such a leaf was named
a degraded uplink in 5 of 200 clean runs: 27-28 of its 224 cells between units slow in every pass, on one rail.
The quiet pass (``bench.rails.plan.remeasure``) re-measures a leaf's slowest suspects with no other flow on its
uplinks, and there those same flows ran at 0.87-1.0 of line: the uplinks carry them at line rate, so what slowed
them was the company they ran in, the fabric's load (docs/design.md, "Localisation", the quiet pass).

A degraded uplink slows the flows it carries alone as well (static routing and ECMP send the same flows through
it again), and under adaptive routing a flow's path changes between samples, so its cells are not slow in every
pass and this reading does not apply.
"""

from __future__ import annotations

import numpy as np

ALONE_FRACTION = 0.8
"""What each convicting flow must reach alone, as a fraction of its rail's line rate (or healthy level), to have run
as healthy: the relative test's own default (``bench.rails.diagnosis.localise.Thresholds.relative_fraction``). An
ECMP uplink at 0.5-0.8 of a link carries its flows alone at about its own fraction, under it (docs/rails.md,
"The fabric's cabling", a degraded uplink under ECMP)."""
MIN_ALONE = 4
"""Convicting flows re-measured alone, at least, before they can clear an uplink: one or two are too few to say that
none of the uplink's flows was among them (one leaf's uplink carries about one in eight of its flows)."""
FIXED_SHARE = 0.75
"""The share of the convicting cells that must be slow in every pass: one path per flow for the run, as ECMP and
static routing make it. Under adaptive routing a degraded uplink slows a flow only in the samples that took it."""


def needs_company(
    convicting: np.ndarray, every_time: np.ndarray, quiet: np.ndarray, quiet_rates: np.ndarray, expected: float
) -> bool:
    """One rail's uplink candidate (all ``[a, b]``): its ``convicting`` cells (reproduced suspects, each pair once),
    ``every_time`` (slow in every sample and pass, at any depth: ``Cells.slow_every_time``; this reads whether the
    flows kept their paths, not how deep they fell), the cells the quiet pass re-measured and their rates there
    (``quiet``, ``quiet_rates``, Gb/s, both directions), against the rail's ``expected`` rate (its line rate or
    healthy level). True where most convicting cells were slow every time and at least :data:`MIN_ALONE` of their
    flows, alone, each ran at :data:`ALONE_FRACTION` of ``expected`` or more."""
    count = int(convicting.sum())
    if not count or int((convicting & every_time).sum()) < FIXED_SHARE * count:
        return False
    alone = quiet & (convicting | convicting.T)
    if int(alone.sum()) < MIN_ALONE:
        return False
    return bool((quiet_rates[alone] >= ALONE_FRACTION * expected).all())
