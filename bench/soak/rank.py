"""The rank side of ``railbench soak``: windows of the rails test and a world collective until the deadline
(docs/design.md, "Soak").

The rail groups are formed once; each window then runs every rail group at once, each rail alone (one call, which
says which device carries it), a world collective at the rails test's message size and a slice of the pair matrix's
rounds, judged on rank 0 exactly as ``railbench rails`` judges its test and kept as one line of ``windows.jsonl``
(``bench.soak.window``). The slice rotates through the matrix: the first window runs rounds while they fit its
length, and every later window as many as that, so every pair is covered every K windows.

Rank 0 alone decides whether the next window starts (it must fit before the deadline) and tells every rank through
the coordinator (``bench.runtime.coord``: the store on NCCL, never a collective on the rails under test).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace

from bench.frame.decide import Item, timed
from bench.frame.job import run_job
from bench.frame.run import Run, setup_of
from bench.rails.diagnosis import judge
from bench.rails.diagnosis.causes import Reports
from bench.rails.diagnosis.corroborate import corroborate
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.measurement import local_causes, neighbours, steps
from bench.rails.measurement.pairs import PairRunner
from bench.rails.plan.config import validate
from bench.rails.plan.layout import rail_layout
from bench.rails.plan.schedule import schedule
from bench.rails.rank import RailStepsJob, Seated, rails_section, rank_report, take_seats, world_coord
from bench.rundir.soak_windows import CollectiveWindow, SoakWindow, append_window, iter_windows
from bench.rundir.verdict import Verdict
from bench.runtime.coord import Coord
from bench.runtime.dist import DistContext
from bench.runtime.env import RankInfo
from bench.runtime.watchdog import Watchdog
from bench.soak import clock, world
from bench.soak.config import SoakConfig, check_duration, check_same_allocation
from bench.soak.drain import drain_section
from bench.soak.judge import kept_findings
from bench.soak.judge import soak_items as judge_windows
from bench.soak.window import link_windows, named_in_window


class SoakJob(RailStepsJob):
    """``railbench soak``: windows until the deadline, judged over the windows (``bench.soak.judge``)."""

    command = "soak"

    def __init__(self, config: SoakConfig) -> None:
        # The rotation is over the full matrix's rounds (``bench.soak.clock``), whatever an older spec says.
        rails = replace(config.rails, full_matrix=True)
        if config.resume:  # its run.json is there: it is checked as a soak's by the parent and rank 0
            rails = replace(rails, output=replace(rails.output, out=None))
        profile, settings = validate(rails, with_history=False, topology=False)
        check_duration(config)
        super().__init__(setup_of(config, settings.oob_ifname), profile)
        self.config = config
        self.settings = settings
        self.clock: clock.SoakClock | None = None
        """Rank 0's: the deadline, the rotation, what has been named so far."""
        self.items: list[Item] = []
        """Rank 0's: the gates' items, for ``--drain``."""

    def prepare(self, ctx: DistContext) -> dict[str, object]:
        neighbours.refuse_short_tables(ctx, self.settings.socket_ifname, self.settings.timeout_s)
        layout = rail_layout(ctx.hosts)
        total = len(schedule(len(layout.nodes), self.settings.test.repeats, self.settings.config.seed))
        if ctx.info.rank != 0:
            return {}
        assert ctx.out_dir is not None  # agreed before init (rails_before_init)
        if self.config.resume:
            check_same_allocation(ctx.out_dir, ctx.hosts)
        pairs = len(layout.nodes) > 1 and self.settings.config.pairs  # no rail group, or --no-pairs: no rotation
        self.clock = clock.SoakClock.start(self.config, ctx.out_dir, total if pairs else 0)
        return {"rails_test": rails_section(self.settings), "soak": self.clock.section()}

    def measure(self, run: Run) -> list[Item]:
        started = time.monotonic()
        stopped: BaseException | None = None
        try:
            soak_phase(self, run)
        except (KeyboardInterrupt, Exception) as exc:
            if not isinstance(exc, clock.STOPS):
                raise
            # The window's frames hold this rank's communicators (its rail group, its pair buffers): freed now, they
            # close their connections when the frame destroys the process group, and the ranks still waiting in
            # the window's collective for this one fail at once instead of at their watchdog's timeout (MPI's
            # finalize holds a leaving rank's process until every rank leaves).
            traceback.clear_frames(exc.__traceback__)
            if self.clock is None:
                raise
            stopped = exc  # every finished window is on disk: the verdict on them, then the stop goes on
        items: list[Item] = []
        if self.clock is not None:
            if stopped is not None:
                self.clock.stopped = clock.why_stopped(stopped)
            items = timed(soak_items(run), time.monotonic() - started)
            self.clock.findings = kept_findings(items)
            run.update(soak=self.clock.section())
            if stopped is not None:
                clock.keep_verdict(run, items, stopped)
        if stopped is not None:
            raise stopped
        self.items = items
        return items

    def after_verdict(self, run: Run, verdict: Verdict) -> dict[str, object]:
        """``--drain``: every node the soak convicts is drained (``bench.soak.drain``)."""
        if not self.config.drain:
            return {}
        return {"drain": drain_section(self.items)}


def soak_items(run: Run) -> list[Item]:
    """Rank 0: the soak's gates over every window kept (this start's and those before a ``--resume``)."""
    return judge_windows(iter_windows(run.out_dir), run.profile)  # one window in memory at a time


def soak_phase(job: SoakJob, run: Run) -> None:
    """Every rank: the rail groups, then windows while rank 0 says the next one fits."""
    ctx, settings = run.ctx, job.settings
    coord = world_coord(ctx, settings.timeout_s)
    with run.guarded() as watchdog:
        seated = None
        if len(rail_layout(ctx.hosts).nodes) > 1:
            seated = take_seats(settings, ctx, watchdog, coord)
        watchdog.enter("reading every node's GPUDirect path")
        node_checks = local_causes.gather(run.profile, ctx, coord, run.out_dir)
        gpu = world.gpu_reader(ctx)
        gpu.read(ctx.hosts[ctx.info.rank])  # the first edge: each window keeps what rose after it
        watchdog.leave()
        while True:
            watchdog.enter("agreeing on the next soak window")
            # Wrapped: rank 0's "stop" (None) is a value to send; the store's broadcast sends no bare None.
            (told,) = coord.broadcast((job.clock.next_window(),) if job.clock is not None else None)
            watchdog.leave()
            if told is None:
                return
            began = time.monotonic()
            window = run_window(job, run, seated, coord, watchdog, told, node_checks, gpu)
            if job.clock is not None and window is not None:
                append_window(run.out_dir, window)  # durable before the wait below: a signal there loses nothing
                job.clock.kept(window, max(time.monotonic() - began, told.window_s))
                run.update(soak=job.clock.section())
            wait_out(began, told.window_s)
            if job.clock is not None and window is not None:
                print(job.clock.progress(), flush=True)  # at the window's end: its elapsed and what is left hold


def wait_out(began: float, window_s: float) -> None:
    """Every rank: a window that measured less than its length (one rank has nothing to exchange; ``--no-pairs``
    has no rounds to fill it) waits out the rest, so windows come every ``window_s`` whatever ran in them. Unpaced,
    a one-GPU soak read nvidia-smi ten times a second and wrote a window each time (an H200, 622 windows in 72 s).
    Rank 0 starts a window only when a whole one fits before the deadline (``SoakClock.next_window``), so the wait
    never outlasts the soak; Ctrl-C or SIGTERM ends it at once (``bench.runtime.signals``), and the ranks already in
    the next window's agreement fail at once as the stopped rank's groups close (``bench.runtime.rank_exit``)."""
    rest = window_s - (time.monotonic() - began)
    if rest > 0:
        time.sleep(rest)


def run_window(
    job: SoakJob,
    run: Run,
    seated: Seated | None,
    coord: Coord,
    watchdog: Watchdog,
    told: clock.Next,
    node_checks: Reports,
    gpu: world.GpuReader,
) -> SoakWindow | None:
    """Every rank: one window; on rank 0 its aggregate, None elsewhere."""
    ctx, settings = run.ctx, job.settings
    began = job.clock.elapsed() if job.clock is not None else 0.0
    collectives = world.world_collectives(settings, ctx, run.profile, watchdog, told.window_s)
    if seated is None:  # one node: no rail group; the world collectives again while they fit the window
        collectives = more_passes(job, run, coord, watchdog, told, collectives)
        gpus = world.gpu_states(gpu, ctx, coord)  # at the window's end edge
        end = job.clock.elapsed() if job.clock is not None else 0.0
        return SoakWindow(told.index, began, end, collectives=collectives, gpus=gpus) if run.rank0 else None
    seat = seated.seat
    seat.counts.next_test()  # the window opens at the last edge: nothing between two windows is lost
    at_once = steps.every_rail_at_once(settings, ctx, seat, watchdog, None)
    seat.counts.close("every rail group at once")
    known = settings.rail_rate_gbps or (at_once.fastest_Gbps if at_once.fastest_Gbps > 0 else None)
    isolated, alone = steps.each_rail_alone(settings, ctx, seat, watchdog, known)
    runner = steps.pair_runner(settings, ctx, seat, at_once.fastest_Gbps, None)
    times, ran = pair_rounds(job, runner, coord, watchdog, told)
    seat.counts.close(f"window {told.index} pair rounds")
    watchdog.enter("gathering the window's results")
    gathered = coord.gather(rank_report(seated, ctx, at_once.mine + isolated, times, alone))
    watchdog.leave()
    if settings.test.confirm:
        steps.confirm_suspects(settings, seat, runner, gathered, watchdog)
    steps.rails_again(settings, ctx, seat, gathered, watchdog, known)  # a window's rail group fails as a run's does
    gpus = world.gpu_states(gpu, ctx, coord)  # at the window's end edge
    if gathered is None or job.clock is None:
        return None
    layout, formed = seat.layout, seated.formed
    outcome = judge.outcome(settings, layout, gathered, formed.membership, formed.reports, 1 + formed.made)
    outcome = corroborate(outcome, settings.profile.errors, settings.profile.actions, node_checks)
    return SoakWindow(
        index=told.index,
        start_s=began,
        end_s=job.clock.elapsed(),
        rounds=ran,
        links=link_windows(outcome, formed.membership),
        collectives=collectives,
        gpus=gpus,
        named=named_in_window(outcome),
    )


def more_passes(
    job: SoakJob, run: Run, coord: Coord, watchdog: Watchdog, told: clock.Next, first: tuple[CollectiveWindow, ...]
) -> tuple[CollectiveWindow, ...]:
    """A window with no rail group (one node): the world collectives pass after pass while rank 0 says another,
    at the mean of those so far, ends within the window (the load stays on for the window's length); each kept at
    its typical busbw over the passes (``bench.soak.world.typical``)."""
    passes = [first]
    if not first:  # one rank: no world collective to repeat
        return first
    if job.clock is not None:
        job.clock.rounds_began = job.clock.window_began
    while True:
        watchdog.enter("agreeing whether another world collective fits the window")
        more = coord.broadcast(None if job.clock is None else job.clock.another_round_fits(len(passes)))
        watchdog.leave()
        if not more:
            return world.typical(passes)
        passes.append(world.world_collectives(job.settings, run.ctx, run.profile, watchdog, told.window_s))


def pair_rounds(
    job: SoakJob, runner: PairRunner, coord: Coord, watchdog: Watchdog, told: clock.Next
) -> tuple[list[PairTime], tuple[int, ...]]:
    """The window's pair rounds and which ran: as told, or (the first window) from the one told, round after round
    through the matrix (again from its first round once it is through) while rank 0 says another fits the window;
    how many fitted is what every later window runs."""
    if not job.settings.config.pairs or not told.rounds:
        return [], ()
    if not told.fill:
        return runner.run([runner.rounds[r] for r in told.rounds], watchdog.enter, watchdog.leave), told.rounds
    if job.clock is not None:
        job.clock.rounds_began = time.monotonic()
    times: list[PairTime] = []
    ran: list[int] = []
    total = len(runner.rounds)
    while True:
        ran.append((told.rounds[0] + len(ran)) % total)
        times += runner.run([runner.rounds[ran[-1]]], watchdog.enter, watchdog.leave)
        watchdog.enter("agreeing whether another pair round fits the window")
        more = coord.broadcast(None if job.clock is None else job.clock.another_round_fits(len(ran)))
        watchdog.leave()
        if not more:
            break
    if job.clock is not None:
        job.clock.calibrated(len(ran))
    return times, tuple(ran)


def run_rank(config: SoakConfig, info: RankInfo) -> int:
    """One rank of ``railbench soak``; every rank returns the same exit status."""
    return run_job(info, lambda: SoakJob(config))
