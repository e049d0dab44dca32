"""What the rank side hands rank 0's live writer as each step's results arrive.

The writer (``bench.rails.live_output.LiveRails``) is output code above the three floors of ``rails/``: it
says the results as rails.json and results.csv rows (``bench.rails.documents``). The steps that gather the
results (``bench.rails.measurement.steps``, ``bench.rails.measurement.intranode``) know it only by this shape,
so no import runs from the rank side up to output code; ``bench.rails.rank`` makes the writer and passes it down.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bench.rails.diagnosis.gpu_pairs import LocalPairTime
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.diagnosis.rails_outcome import RailResult


class LiveWriter(Protocol):
    """Rank 0's writer of the results gathered so far (every other rank has none)."""

    def add_rails(self, results: Sequence[RailResult]) -> None:
        """Every rail group's result, after the concurrent phase."""

    def add_pairs(self, times: Sequence[PairTime]) -> None:
        """One pair round's times, both directions of each pair."""

    def add_local(self, times: Sequence[LocalPairTime]) -> None:
        """One intra-node round's times."""
