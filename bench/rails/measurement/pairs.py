"""The rank side of the pair matrix: the round-robin rounds within a time budget per cell, then the
confirmation passes that re-measure every suspect before anything is named.

Every rank runs these functions at the same point, in step with its rail group; which cells are suspect
is decided on rank 0 (``bench.rails.diagnosis.judge.suspects``) and sent to every rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from bench.measure.timing import Budget, Loop
from bench.rails.diagnosis.matrix import PairTime, flatten
from bench.rails.measurement.exchanges import PairOpen, pair_buffers, pair_round
from bench.rails.plan.budget import cell_budget, expected_rate, upper_median
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.remeasure import QuietCell, quiet_repeat_rounds, remeasurement_rounds, repeat_confirm
from bench.rails.plan.schedule import Cell, Round, Units, schedule
from bench.runtime.coord import Coord, GroupCoord

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup

    from bench.rails.plan.config import RailsSettings

Enter = Callable[[str], None]


class PairRunner:
    """One rank's pair exchanges on its rail: the buffers, the budget's running rate, the rounds run."""

    def __init__(
        self,
        settings: RailsSettings,
        layout: RailLayout,
        rank: int,
        group: ProcessGroup | None,
        device: torch.device,
        start_Gbps: float | None,
        wait: timedelta | None = None,
        keep: Callable[[list[PairTime]], None] | None = None,
        measured: PairOpen | None = None,
        coord: Coord | None = None,
        units: Units | None = None,
    ) -> None:
        self.settings, self.layout, self.rank, self.group = settings, layout, rank, group
        """``group``: this rank's rail group; None when its link is dead (it measures nothing)."""
        self.coord = coord or GroupCoord(None)
        """The world's agreements (the budget's fastest probe, every round's times and rates):
        ``bench.runtime.coord``."""
        self.wait = wait
        self.keep = keep
        """Rank 0: what to do with every rank's times after each matrix round (write them down)."""
        """How long one send or receive may wait (``bench.rails.measurement.exchanges.p2p_wait``)."""
        self.measured = measured
        """Which pairs are measured (a dead end's are not attempted); None: every pair."""
        self.device = device
        self.buffers = pair_buffers(settings.test.pair_bytes, device)
        self.start_Gbps = start_Gbps
        self.seen: list[float] = []
        """Rank 0: the rates of every pair direction measured so far on every rail."""
        self.seen_Gbps: float | None = None
        """Their upper median, the same on every rank (rank 0 answers it after every matrix round)."""
        self.units = units
        """Each node's unit where the unit schedule may run (``bench.rails.plan.config.matrix_units``)."""
        self.rounds = schedule(len(layout.nodes), settings.test.repeats, settings.config.seed, units, layout.rails)

    def budget_s(self) -> Budget:
        """The line rate's budget (or the one given); where no line rate is known, a plan from the larger of
        the rate expected so far and the fastest pair's probe this round, agreed over every rank (the
        first round has seen no pair yet, and a rail group's busbw can be far below a pair's)."""
        s = self.settings
        if s.config.cell_budget_s is not None or s.rail_rate_gbps:
            return cell_budget(
                s.test.pair_bytes, s.test.warmup + s.test.iters, s.rail_rate_gbps, s.config.cell_budget_s
            )
        known = expected_rate(None, self.start_Gbps, [self.seen_Gbps] if self.seen_Gbps else [])

        def plan(probe_s: float) -> float:
            # probe_s: the time of one whole message the fastest pair's probe plans (bench.measure.budgeted)
            fastest = -self.coord.max(-probe_s)
            probed = s.test.pair_bytes * 8 / fastest / 1e9 if 0 < fastest < math.inf else None
            rates = [r for r in (known, probed) if r]
            return cell_budget(s.test.pair_bytes, s.test.warmup + s.test.iters, max(rates) if rates else None)

        return plan

    def run(self, rounds: Sequence[Round], enter: Enter, leave: Callable[[], None]) -> list[PairTime]:
        times: list[PairTime] = []
        for rnd in rounds:
            what = f"confirmation {rnd.confirm}" if rnd.confirm else "pairs"
            enter(f"{what}: repeat {rnd.repeat + 1}, round {rnd.index + 1}")
            mine, rates = pair_round(
                rnd,
                self.layout,
                self.rank,
                self.group,
                self.buffers,
                Loop(self.settings.test.iters, self.settings.test.warmup, budget_s=self.budget_s()),
                wait=self.wait,
                measured=self.measured,
            )
            leave()
            times += mine
            if not rnd.confirm:
                # Every rail's rates, so that a rail slow as a whole is budgeted by the healthy rails' pairs
                # (every rank runs the same matrix rounds, so this agreement meets on all of them), and the
                # round's times, which rank 0 writes down at once (``bench.rails.live_output``). Only rank 0
                # reads them; every rank gets their upper median so far.
                sent = (rates if self.layout.where(self.rank)[0] == 0 else [], mine)
                self.seen_Gbps = self.coord.agree(sent, self._heard)
        return times

    def _heard(self, posted: list[tuple[list[float], list[PairTime]]]) -> float | None:
        """Rank 0: a matrix round's rates and times from every rank; the upper median of every rate so far."""
        self.seen += flatten([r for r, _ in posted])
        if self.keep is not None:
            self.keep(flatten([t for _, t in posted]))
        return upper_median(self.seen)

    def matrix(self, enter: Enter, leave: Callable[[], None]) -> list[PairTime]:
        """Every pair on every rail, ``repeats`` times."""
        return self.run(self.rounds, enter, leave)

    def confirm(
        self,
        suspects: Sequence[Cell],
        enter: Enter,
        leave: Callable[[], None],
        fill: Sequence[QuietCell] = (),
    ) -> list[PairTime]:
        """``settings.test.confirm`` passes over the rounds that hold suspects, each suspect in its own round; then
        the quiet pass where the units allow it, the suspects between units and then ``fill`` (rank 0's
        ``bench.rails.diagnosis.quiet_fill``; ``bench.rails.plan.remeasure``)."""
        passes = self.settings.test.confirm
        return self.run(remeasurement_rounds(self.rounds, suspects, passes, self.units, fill), enter, leave)

    def repeat_alone(
        self, low: Sequence[tuple[int, int, int]], stage: int, enter: Enter, leave: Callable[[], None]
    ) -> list[PairTime]:
        """The quiet cells that read low (``(rail, a, b)``, rank 0's), measured alone again, numbered past the
        quiet pass and the stages before (``bench.rails.plan.remeasure.quiet_repeat_rounds``)."""
        first = repeat_confirm(self.settings.test.confirm, stage)
        return self.run(quiet_repeat_rounds(low, first, self.units), enter, leave)
