"""The named steps of ``bench.rails.rank.rails_phase``, in the order it runs them.

Once the rail groups are formed, each step takes this rank's :class:`Seat` (where it sits and how it agrees
with the world) and runs on every rank together: every rail group at once, each rail alone inside a counter
window, the pair matrix, the gather to rank 0, and the re-measurement of the suspects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.measure.collectives import get_collective
from bench.measure.size import SizeResult, measure
from bench.measure.timing import Budget, Loop
from bench.rails.diagnosis import judge, rails_outcome
from bench.rails.diagnosis.liveness import Membership
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.measurement import windows
from bench.rails.measurement.exchanges import p2p_wait
from bench.rails.measurement.groups import RailGroups
from bench.rails.measurement.pairs import PairRunner
from bench.rails.measurement.writer import LiveWriter
from bench.rails.plan.budget import cell_budget, chunks_per_message
from bench.rails.plan.config import RailsSettings, matrix_units
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.remeasure import REPEAT_STAGES
from bench.runtime.coord import Coord
from bench.runtime.dist import DistContext, torch_timeout_s
from bench.runtime.watchdog import Watchdog

if TYPE_CHECKING:
    from torch.distributed import ProcessGroup


@dataclass(frozen=True)
class Seat:
    """Where this rank sits in the rails test once the rail groups are formed: what every later step needs."""

    layout: RailLayout
    rank: int
    node: int
    rail: int
    group: ProcessGroup | None
    """This rank's rail group; None when its link is out of it (dead) or its rail has no group."""
    membership: Membership
    coord: Coord
    counts: windows.NodeCounters
    """This node's counters, read by one rank per node at every window's edge (``bench.rails.measurement.windows``)."""

    @classmethod
    def taken(
        cls, layout: RailLayout, rank: int, formed: RailGroups, coord: Coord, counts: windows.NodeCounters
    ) -> Seat:
        node, rail = layout.where(rank)
        return cls(layout, rank, node, rail, formed.mine(rank, layout), formed.membership, coord, counts)

    @property
    def group_size(self) -> int:
        """The live members of this rank's rail group."""
        return len(self.membership.live[self.rail])

    @property
    def reports_rail(self) -> bool:
        """Whether this rank speaks for its rail group's results: the group's first live node's rank (nobody
        on a rail with no group)."""
        members = self.membership.live[self.rail]
        return bool(members) and self.node == members[0]


def rail_result(
    coll: str, mode: rails_outcome.Mode, rail: int, nnodes: int, res: SizeResult
) -> rails_outcome.RailResult:
    return rails_outcome.RailResult(
        rail,
        coll,
        mode,
        nnodes,
        res.nbytes,
        res.count,
        res.iters,
        res.time_us,
        res.time_us_min,
        res.time_us_max,
        res.wrong,
    )


def _rail_budget(settings: RailsSettings, wire: int, calls: int, rate_Gbps: float | None, coord: Coord) -> Budget:
    """A rail cell's budget for ``wire`` bytes a call: from ``rate_Gbps`` (or ``--cell-budget``) where known."""
    if rate_Gbps is not None or settings.config.cell_budget_s is not None:
        return cell_budget(wire, calls, rate_Gbps, settings.config.cell_budget_s)

    # Every rail at once and no rate known: the fastest rail's probe (of one whole call) sets every rail's
    # budget, so a rail that fell to 1% costs a few of the fastest rail's cells, not a hundred.
    def budget(probe_s: float) -> float:
        fastest = -coord.max(-probe_s)
        rate = wire * 8 / fastest / 1e9 if 0 < fastest < math.inf else None
        return cell_budget(wire, calls, rate)

    return budget


def measure_rail(
    settings: RailsSettings,
    ctx: DistContext,
    coll: str,
    group: ProcessGroup | None,
    n: int,
    *,
    iters: int,
    warmup: int,
    rate_Gbps: float | None,
    coord: Coord,
) -> SizeResult | None:
    """One collective in this rank's rail group, within a cell budget from ``rate_Gbps`` (the line rate, or
    the fastest rail's busbw); where no rate is known yet every rail is measured at once (``rate_Gbps``
    None) and the budget comes from the fastest rail's probe, agreed over the world.

    ``group`` None: this rank's link is out of its rail group (dead), or its rail has no group; it measures
    nothing and only meets the world's agreement on the budget, as every rank does (returns None)."""
    import torch
    import torch.distributed as dist

    collective = get_collective(coll)
    # Every rank sends about busbw-factor x the message per call, the pair budget's "wire bytes". A rank with
    # no group sends none: its rail may have fewer than two live nodes, whose factor is no number (n = 0).
    wire = int(settings.test.rail_bytes * max(1.0, collective.busbw_factor(n))) if group is not None else 0
    budget = _rail_budget(settings, wire, warmup + iters, rate_Gbps, coord)
    if group is None:
        if callable(budget):
            budget(math.inf)
        return None
    group_rank = dist.get_group_rank(group, ctx.info.rank)
    return measure(
        collective,
        settings.test.rail_bytes,
        group_rank,
        n,
        group,
        Loop(iters, warmup, budget_s=budget),
        dtype=torch.float32,
        elsize=4,
        device=ctx.device,
        check=settings.config.check,
        chunks=chunks_per_message(settings.test.rail_bytes),
    )


def _rail_call(
    settings: RailsSettings, ctx: DistContext, seat: Seat, coll: str, rate_Gbps: float | None
) -> SizeResult | None:
    """One collective of the test in this rank's rail group, ``iters`` calls after ``warmup`` (:func:`measure_rail`)."""
    return measure_rail(
        settings,
        ctx,
        coll,
        seat.group,
        seat.group_size,
        iters=settings.test.iters,
        warmup=settings.test.warmup,
        rate_Gbps=rate_Gbps,
        coord=seat.coord,
    )


@dataclass(frozen=True)
class AtOnce:
    """What measuring every rail group at once hands on: this rank's results to report, and the fastest
    rail group's busbw, the same on every rank (0 where nothing was measured)."""

    mine: list[rails_outcome.RailResult]
    fastest_Gbps: float


def every_rail_at_once(
    settings: RailsSettings, ctx: DistContext, seat: Seat, watchdog: Watchdog, live: LiveWriter | None
) -> AtOnce:
    """Every collective in every rail group at once; rank 0's live writer gets the gathered results."""
    mine, fastest = _every_rail(settings, ctx, seat, watchdog, settings.test.collectives)
    # The fastest rail group's busbw, the same on every rank: where no line rate is known, the budgets of
    # the rails measured alone and of the pairs start from it. The results themselves go to rank 0 alone.
    heard = seat.coord.gather(mine)
    start = seat.coord.max(fastest)
    if live is not None and heard is not None:
        live.add_rails([r for results in heard for r in results])
    return AtOnce(mine, start)


def _every_rail(
    settings: RailsSettings, ctx: DistContext, seat: Seat, watchdog: Watchdog, collectives: Sequence[str]
) -> tuple[list[rails_outcome.RailResult], float]:
    """``collectives`` in every rail group at once: this rank's results to report, and its rail's fastest busbw."""
    mine: list[rails_outcome.RailResult] = []
    fastest = 0.0
    for coll in collectives:
        watchdog.enter(f"{coll} in every rail group at once")
        res = _rail_call(settings, ctx, seat, coll, settings.rail_rate_gbps)
        watchdog.leave()
        if res is None:
            continue
        result = rail_result(coll, "concurrent", seat.rail, seat.group_size, res)
        fastest = max(fastest, result.busbw_Gbps)
        if seat.reports_rail:
            mine.append(result)
    return mine, fastest


def rails_again(
    settings: RailsSettings,
    ctx: DistContext,
    seat: Seat,
    gathered: list[judge.RankReport] | None,
    watchdog: Watchdog,
    known: float | None = None,
) -> int:
    """A rail group that fell short of its mark measured again before it is failed: the collectives rank 0 finds
    short (``judge.short_rail_calls``) run again in every rail group at once, the same load as the first time, and
    with ``--isolation`` the rails alone that fell short (``judge.short_alone_calls``) alone again, within budgets
    from ``known`` as the first time (:func:`each_rail_alone`), up to ``--confirm`` times, until none is short; rank
    0's ``gathered`` reports gain the new results, and the judge takes each rail group's best
    (``rails_outcome.best_samples``). Returns how many times they ran.

    One sample of a rail group's bandwidth is one draw of its noise (another job, a link retraining, a hot spot
    in the spines): a healthy rail near its mark would fail on it now and then. A slow part slows every draw."""
    layout, coord = seat.layout, seat.coord
    for again in range(settings.test.confirm):
        found = None
        if gathered is not None:
            found = (
                judge.short_rail_calls(settings, layout, gathered, seat.membership),
                judge.short_alone_calls(settings, layout, gathered, seat.membership),
            )
        short, short_alone = coord.broadcast(found)
        if not short and not short_alone:  # every rank has the same lists: all of them stop here
            return again
        mine, _ = _every_rail(settings, ctx, seat, watchdog, short) if short else ([], 0.0)
        mine += _alone_again(settings, ctx, seat, watchdog, short_alone, known)
        seat.counts.close(f"rail groups again ({again + 1} of {settings.test.confirm})")
        watchdog.enter("gathering the rail groups measured again")
        heard = coord.gather((mine, seat.counts.windows[-1:]))
        for g, (results, read) in zip(gathered or [], heard or [], strict=True):
            g["results"] = g["results"] + results
            g["error_windows"] = g["error_windows"] + read
        watchdog.leave()
    return settings.test.confirm


def _alone_again(
    settings: RailsSettings,
    ctx: DistContext,
    seat: Seat,
    watchdog: Watchdog,
    short: Sequence[tuple[int, str]],
    known: float | None,
) -> list[rails_outcome.RailResult]:
    """``short`` (``(rail, collective)``, rank 0's ``judge.short_alone_calls``) measured again, each rail alone as
    ``--isolation`` measured it the first time: a barrier, the rail's collectives within a budget from ``known`` (a
    rate, so no agreement over the world is needed while the other rails wait), a barrier. One sample of a rail
    alone is one draw of its noise too."""
    mine: list[rails_outcome.RailResult] = []
    for k in sorted({rail for rail, _ in short}):
        watchdog.enter(f"rail {k} alone again")
        seat.coord.barrier()
        if seat.rail == k and seat.group is not None and known is not None:
            for coll in [c for rail, c in short if rail == k]:
                res = _rail_call(settings, ctx, seat, coll, known)
                if res is not None and seat.reports_rail:
                    mine.append(rail_result(coll, "isolated", seat.rail, seat.group_size, res))
        seat.coord.barrier()
        watchdog.leave()
    return mine


def _measure_alone(
    settings: RailsSettings, ctx: DistContext, seat: Seat, known: float
) -> list[rails_outcome.RailResult]:
    """This rank's rail measured while every other rail is quiet: every collective where ``--isolation`` asks,
    else one call, only to see which device carries the rail (one call is plenty of bytes)."""
    n = seat.group_size
    if not settings.config.isolation:
        first = settings.test.collectives[0]
        measure_rail(settings, ctx, first, seat.group, n, iters=1, warmup=0, rate_Gbps=known, coord=seat.coord)
        return []
    mine = []
    for coll in settings.test.collectives:
        res = _rail_call(settings, ctx, seat, coll, known)
        if res is not None and seat.reports_rail:
            mine.append(rail_result(coll, "isolated", seat.rail, n, res))
    return mine


def each_rail_alone(
    settings: RailsSettings, ctx: DistContext, seat: Seat, watchdog: Watchdog, known: float | None
) -> tuple[list[rails_outcome.RailResult], list[dict[str, int] | None]]:
    """One rail at a time inside a counter window: which device carried it, and what stayed quiet. Returns this
    rank's isolated results and each rail's window of this node's counters.

    A window closes after every rank's last measurement (the gather before it, then each rail's closing
    barrier), and the next measurement starts only after the next barrier, when every node has read its
    counters."""
    mine: list[rails_outcome.RailResult] = []
    alone: list[dict[str, int] | None] = []
    for k in range(seat.layout.rails):
        watchdog.enter(f"rail {k} alone")
        seat.coord.barrier()
        if seat.rail == k and seat.group is not None and known is not None:
            mine.extend(_measure_alone(settings, ctx, seat, known))
        seat.coord.barrier()
        alone.append(seat.counts.close(f"rail {k} alone", (k,)))
        watchdog.leave()
    return mine, alone


def pair_runner(
    settings: RailsSettings, ctx: DistContext, seat: Seat, start_Gbps: float, live: LiveWriter | None
) -> PairRunner:
    """The pair matrix of this rank (the unit schedule where rank 0's cabling gives units, ``bench.rails.plan
    .schedule``), its budgets from ``start_Gbps`` where no line rate is known."""
    measured = None if seat.membership.everyone else seat.membership.pair_open
    wait = p2p_wait(seat.group, torch_timeout_s(settings.timeout_s))
    keep = live.add_pairs if live is not None else None
    layout, coord = seat.layout, seat.coord
    units = None
    if settings.config.topology is not None and not settings.config.full_matrix:
        # Rank 0 alone read the cabling (bench.rails.plan.config.with_topology): every rank schedules by its units.
        units = coord.broadcast(matrix_units(settings, layout.nodes) if seat.rank == 0 else None)
    rank, group = seat.rank, seat.group
    return PairRunner(settings, layout, rank, group, ctx.device, start_Gbps, wait, keep, measured, coord, units)


def confirm_suspects(
    settings: RailsSettings,
    seat: Seat,
    runner: PairRunner,
    gathered: list[judge.RankReport] | None,
    watchdog: Watchdog,
) -> None:
    """Every suspect measured again, in its own round and beside the same round's other suspects, then a few
    between units with no other flow on their leaves (``bench.rails.plan.remeasure``), and those of them that read
    low measured alone again (``bench.rails.diagnosis.alone``), before anything is named; rank 0's ``gathered``
    reports gain the re-measurements and their counter windows."""
    found = None
    if gathered is not None:
        found = judge.remeasured_cells(settings, seat.layout, gathered, seat.membership, runner.units)
    suspects, fill = seat.coord.broadcast(found)
    again = runner.confirm(suspects, watchdog.enter, watchdog.leave, fill)
    _add_remeasurements(seat, again, gathered, watchdog, "re-measurements")
    if runner.units is None:
        return  # no quiet pass without units: every rank knows, so none waits on the broadcasts below
    for stage in range(REPEAT_STAGES):
        low = judge.quiet_lows(settings, seat.layout, gathered, seat.membership) if gathered is not None else None
        low = seat.coord.broadcast(low)
        if not low:  # every rank has the same list: all of them stop here, or run and gather
            return
        again = runner.repeat_alone(low, stage, watchdog.enter, watchdog.leave)
        # A window of its own: error counters that rose while only these flows ran point at their paths.
        _add_remeasurements(seat, again, gathered, watchdog, f"flows alone again ({stage + 1} of {REPEAT_STAGES})")


def _add_remeasurements(
    seat: Seat, again: list[PairTime], gathered: list[judge.RankReport] | None, watchdog: Watchdog, window: str
) -> None:
    """Close the counter window (``window``) of the re-measurements just run and gather them, with it, into rank 0's
    reports."""
    seat.counts.close(window)
    watchdog.enter("gathering the re-measurements")
    extras = seat.coord.gather((again, seat.counts.windows[-1:]))
    for g, (extra, read) in zip(gathered or [], extras or [], strict=True):
        g["times"] = g["times"] + extra
        g["error_windows"] = g["error_windows"] + read
    watchdog.leave()
