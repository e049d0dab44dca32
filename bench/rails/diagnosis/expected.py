"""What each sample is judged against on a fabric whose uplinks the round fills: the pair's expected fraction.

``bench.rails.plan.capacity`` gives every pair, in the round it ran, the share of its links' rate the fabric can
carry (its max-min fair share of the uplinks its round's flows cross). A sample is judged as its rate over that
share: on a 2:1 tapered tree a pair between units in a round that fills the uplinks runs at half of line and is
judged as a pair at full rate would be, so the taper never makes a suspect, let alone a spine or an uplink. It
is the fabric's property, said once (:attr:`Expected.said`), never a defect.

The share is a ceiling the cabling sets: the uplinks may carry more than their count says (the namespace
testbed's veth "uplinks" have no rate of their own; an uplink faster than the node links where the file gives no
speeds). So the run says whether the taper binds: on every rail that has both, the pairs expected below their
links' rate run slower than the pairs expected at it by more than half of what the taper predicts (halfway, in
log rate, between "the uplinks carry it all" and "the taper binds": a fault slows one rail or some flows, a
taper every rail's loaded pairs alike). Where it does not bind, nothing is adjusted and the run is judged as
before.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Expected:
    """Where each pair ran and what it could get there: ``round_of[repeat, a, b]`` (the round of the matrix
    sample, -1 where none ran), the expected fraction of every sample, ``matrix[repeat, rail, a, b]`` and
    ``again[pass, rail, a, b]`` (1 at its links' rate or unmeasured; both None where every pair is expected at
    its links' rate), and ``taper``: the fabric's worst ratio of a leaf's nodes to its uplinks
    (``bench.rails.plan.capacity.taper``)."""

    round_of: np.ndarray
    matrix: np.ndarray | None = None
    again: np.ndarray | None = None
    taper: float = 1.0

    def binds(self, x: np.ndarray) -> bool:
        """Whether the run's own samples (``x``: log rates ``[repeat, rail, a, b]``) show the taper: on every
        rail with pairs of both kinds, the loaded pairs' median is below the unloaded pairs' by more than half
        the median log fraction predicted for them."""
        if self.matrix is None or self.matrix.shape[0] < x.shape[0]:
            return False
        fraction = self.matrix[: x.shape[0]]
        measured = np.isfinite(x)
        seen = False
        for k in range(x.shape[1]):
            loaded = measured[:, k] & (fraction[:, k] < 1.0)
            unloaded = measured[:, k] & (fraction[:, k] >= 1.0)
            if not loaded.any() or not unloaded.any():
                continue
            gap = float(np.median(x[:, k][loaded]) - np.median(x[:, k][unloaded]))
            predicted = float(np.median(np.log(fraction[:, k][loaded])))
            if gap >= predicted / 2:
                return False
            seen = True
        return seen

    def adjusted(self, x: np.ndarray, x_again: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The log rates over their expected fractions: matrix samples, then re-measurements."""
        share, share_again = self.fractions(x.shape[0], x_again.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # unmeasured NaN cells stay NaN
            return x - np.log(share), x_again - np.log(share_again)

    def fractions(self, repeats: int, passes: int) -> tuple[np.ndarray, np.ndarray]:
        """The fractions of ``repeats`` matrix samples and ``passes`` re-measurements (1 for re-measurements
        not yet scheduled: rank 0 picking its suspects has none)."""
        assert self.matrix is not None  # binds() said so
        again = self.again[:passes] if self.again is not None else np.ones((passes, *self.matrix.shape[1:]))
        return self.matrix[:repeats], again

    def said(self) -> str:
        """The certificate's sentence: ``2:1 between units: cross-unit pairs expected at 50% in rounds that
        fill the uplinks``."""
        ratio = f"{self.taper:.3g}"
        return (
            f"{ratio}:1 between units: cross-unit pairs expected at {100 / self.taper:.0f}% in rounds that fill "
            f"the uplinks (a property of the fabric, judged as such)"
        )


def judged_rates(
    expected: Expected | None, x: np.ndarray, x_again: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The log rates the judge compares (adjusted where the taper binds) and the sentence that says so."""
    if expected is None or expected.taper <= 1.0 or not expected.binds(x):
        return x, x_again, None
    adjusted, again = expected.adjusted(x, x_again)
    return adjusted, again, expected.said()
