"""The rank side of ``railbench run``: the world sweep as a job of the frame (``bench.frame.job``).

The frame starts the world, writes run.json and results.csv, guards every step, decides the verdict and
finishes; this module says only what a sweep measures (every size of every collective, each row on disk as
soon as every rank reported it) and how it is judged (``bench.sweep.items``).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import codec
from bench.exits import UserError
from bench.frame.decide import Item
from bench.frame.guard import guarded
from bench.frame.job import Job, run_job
from bench.frame.run import Run, setup_of
from bench.measure.collectives import Collective, Dtype, get_collective, get_dtype
from bench.measure.memory_fit import check_sizes_fit, free_memory_bytes, largest_fitting
from bench.measure.results import RowPlace, result_row
from bench.measure.size import SizeResult, measure
from bench.measure.table import row_line, section_header, write_summary
from bench.measure.targets import ONE_RANK, judge_min_bytes, world_target_gbps
from bench.measure.timing import Loop, graph_capture_works, group_max
from bench.profile.cluster import Profile
from bench.rundir.finding_words import measurements_GBps
from bench.rundir.results_csv import Row, row_float, row_int
from bench.rundir.sections import SweepSettings
from bench.runtime import env as benv
from bench.runtime.coord import StoreCoord
from bench.runtime.dist import DistContext, torch_timeout_s
from bench.runtime.env import RankInfo
from bench.runtime.placement import blocking_wait_conflict
from bench.runtime.progress import Mode, Progress
from bench.runtime.watchdog import Watchdog
from bench.sweep.config import RunConfig, sized, validate
from bench.sweep.items import collective_items, counter_item, under_target
from bench.units import format_size

if TYPE_CHECKING:
    import torch


class SweepJob(Job):
    """``railbench run``: the world sweep, judged per collective."""

    command = "run"

    def __init__(self, config: RunConfig) -> None:
        profile = validate(config, with_history=False)  # under the user's launcher: the parent's checks
        super().__init__(setup_of(config, config.oob_ifname), profile)
        self.config = sized(config, profile)
        self.graph = False

    def prepare(self, ctx: DistContext) -> dict[str, object]:
        self.graph = agree_sweep(self.config, ctx)
        return {"sweep": sweep_section(self.config, self.graph)}

    def measure(self, run: Run) -> list[Item]:
        return world_sweep(self.config, run, self.graph)


def run_rank(config: RunConfig, info: RankInfo) -> int:
    """One rank's whole run; every rank returns the same exit status."""
    return run_job(info, lambda: SweepJob(config))


def agree_sweep(config: RunConfig, ctx: DistContext, *, probe_graph: bool = True) -> bool:
    """What every rank settles before the sweep: whether calls are captured in CUDA graphs, and that the
    largest size fits every rank's memory (UserError, exit 2, otherwise). Returns the graph choice.

    ``probe_graph=False`` (``accept``, before its rails phase): only what goes through the store, and False;
    the capture probe is a world collective (:func:`agree_graph`, once every link is known)."""
    if config.graph and ctx.backend != "nccl":
        raise UserError("--graph captures CUDA graphs and needs the nccl backend: this run uses gloo")
    # Each check waits on every rank: under the watchdog, a rank that fails or hangs in one ends the run as a
    # named hang (exit 3) instead of leaving the others waiting. No run.json exists yet: the hang is one line.
    timeout_s = config.launch.timeout_s
    graph = False
    with guarded(ctx, timeout_s, lambda status, exit_status, failure: None) as watchdog:
        if probe_graph:
            graph = _graph_step(config, ctx, watchdog)
        watchdog.enter("checking that the largest size fits every rank's memory")
        colls = [get_collective(c) for c in config.collectives]
        _check_memory(ctx, colls, config.sizes, get_dtype(config.dtype), timeout_s)
        watchdog.leave()
    return graph


def agree_graph(config: RunConfig, run: Run) -> bool:
    """Whether the sweep's calls are captured in CUDA graphs, decided in a run that has started (``accept``,
    after its rails phase): the capture probe under the run's own guard, a hang recorded in run.json."""
    with run.guarded() as watchdog:
        return _graph_step(config, run.ctx, watchdog)


def _graph_step(config: RunConfig, ctx: DistContext, watchdog: Watchdog) -> bool:
    watchdog.enter("checking that every rank can capture CUDA graphs")
    graph = _resolve_graph(config.graph, ctx, config.launch.timeout_s)
    watchdog.leave()
    return graph


def world_sweep(config: RunConfig, run: Run, graph: bool) -> list[Item]:
    """The world sweep on every rank, each row in results.csv as soon as every rank reported it; on rank 0
    the items judged (a collective each, and the counters), elsewhere none."""
    import torch

    ctx, profile = run.ctx, run.profile
    nranks, nnodes = ctx.info.world_size, ctx.info.nnodes
    dtype = get_dtype(config.dtype)
    tdtype = getattr(torch, dtype.torch_name)
    colls = [get_collective(c) for c in config.collectives]
    sizes = config.sizes
    # How every size is timed, the same for the whole sweep: the config's iterations and the agreed graph choice.
    loop = Loop(config.iters, config.warmup, graph=graph)
    rows: list[Row] = []
    again: dict[tuple[str, int], list[float]] = {}  # the rows measured more than once: each busbw, in order
    min_bytes = judge_min_bytes(profile)
    place = RowPlace(dtype.name, nranks, nnodes)
    progress = Progress([nbytes for _ in colls for nbytes in sizes], _progress_mode(config, ctx))
    seconds: dict[str, float] = {}  # each collective's wall time: its JUnit testcase's time
    try:
        with run.evidence() as found, run.guarded() as watchdog:
            for coll in colls:
                started = time.monotonic()
                if run.rank0:
                    progress.line(section_header(coll.name, nranks, nnodes, ctx.backend, coll.placement, graph))
                    if nranks == 1 and world_target_gbps(profile, coll.name, nnodes) is not None:
                        progress.line(f"# not judged: {ONE_RANK}")
                for nbytes in sizes:
                    target = world_target_gbps(profile, coll.name, nnodes, nbytes=nbytes, nranks=nranks)
                    judge = Judge(coll, place, target, min_bytes, profile.pass_fraction)
                    once = functools.partial(_measure, config, ctx, coll, nbytes, tdtype, dtype.size, loop)
                    taken = measured_again(config.confirm, run, watchdog, judge, nbytes, once)
                    if run.rank0:
                        row = judge.row(best_of(taken))
                        run.append(row)
                        rows.append(row)
                        progress.line(row_line(row))
                        if len(taken) > 1:
                            every = again[(coll.name, row_int(row["bytes"]))] = [judge.busbw_Gbps(t) for t in taken]
                            progress.line(again_line(coll.name, every))
                    progress.advance(f"{coll.name} {format_size(nbytes)}")
                seconds[coll.name] = seconds.get(coll.name, 0.0) + time.monotonic() - started
    finally:
        progress.close()
    if not run.rank0:
        return []
    write_summary(sys.stdout, rows, str(run.out_dir), judged_from=min_bytes)
    sys.stdout.flush()
    items = [
        *collective_items(rows, min_bytes, profile.pass_fraction, _label(profile), profile.choice.why_none, again),
        counter_item(found.findings, found.per_host),
    ]
    whole = sum(seconds.values())
    return [dataclasses.replace(i, time_s=seconds.get(i.name, whole)) for i in items]


@dataclass(frozen=True)
class Judge:
    """How rank 0 reads one size of the sweep: its results.csv row, and whether that row falls under its target."""

    coll: Collective
    place: RowPlace
    target_gbps: float | None
    min_bytes: int
    pass_fraction: float

    def row(self, res: SizeResult) -> Row:
        return result_row(self.coll, res, self.place, self.target_gbps, benv.get("NCCL_ALGO") or "")

    def busbw_Gbps(self, res: SizeResult) -> float:
        return row_float(self.row(res)["busbw_Gbps"])

    def short(self, taken: Sequence[SizeResult]) -> bool:
        """Whether the best measurement so far misses its target on rate alone: wrong elements are never measured
        away (the row fails on them whatever its rate)."""
        if any(t.wrong for t in taken):
            return False
        return under_target(self.row(best_of(taken)), self.min_bytes, self.pass_fraction)


def measured_again(
    confirm: int, run: Run, watchdog: Watchdog, judge: Judge, nbytes: int, once: Callable[[], SizeResult]
) -> list[SizeResult]:
    """One size measured (``once``, a world collective every rank calls), then again while rank 0 finds its best
    measurement under its target, up to ``confirm`` times: every measurement, in order; the row is their best
    (:func:`best_of`).

    One measurement is one draw of the fabric's noise (another job's burst, a link retraining, a hot spot in the
    spines): a healthy cluster near its mark would fail on one now and then, as a rail group did
    (``bench.rails.measurement.steps.rails_again``). A slow part slows every draw. Every rank waits on rank 0's
    answer only at a judged size (the profile's ``judge_min_bytes`` up: every rank reads the same profile), so
    the sizes nobody judges cost nothing more; the answer is one scalar all-reduce over the world, the sweep's own
    communicator (``group_max``: rank 0's answer is the only one that can be 1)."""
    said = f"{judge.coll.name} at {format_size(nbytes)}"
    watchdog.enter(said)
    taken = [once()]
    watchdog.leave()
    if taken[0].nbytes < judge.min_bytes:
        return taken
    for n in range(confirm):
        watchdog.enter(f"deciding whether {said} is measured again")
        short = group_max(float(run.rank0 and judge.short(taken)), None, run.ctx.device) > 0
        watchdog.leave()
        if not short:
            break
        watchdog.enter(f"{said} again ({n + 1} of {confirm})")
        taken.append(once())
        watchdog.leave()
    return taken


def best_of(taken: Sequence[SizeResult]) -> SizeResult:
    """The fastest of a size's measurements, with the wrong elements of any of them (never measured away)."""
    best = min(taken, key=lambda t: t.time_us)
    wrong = [t.wrong for t in taken if t.wrong is not None]
    return dataclasses.replace(best, wrong=max(wrong)) if wrong else best


def again_line(collective: str, busbw_Gbps: Sequence[float]) -> str:
    """The comment under a row measured again: each measurement's busbw in GB/s, as the row gives it."""
    every = measurements_GBps(busbw_Gbps)
    return f"# {collective}: under its target, measured {len(busbw_Gbps)} times: busbw {every} GB/s; the best is judged"


def _label(profile: Profile) -> str:
    """``lambda-1cc (B200 targets)``: the profile as it judged the run, named in a not-judged reason."""
    return f"{profile.name} ({profile.generation} targets)" if profile.generation else profile.name


def _progress_mode(config: RunConfig, ctx: DistContext) -> Mode:
    """How rank 0 shows progress (see ``bench.runtime.progress``): markers for a railbench parent, a bar on
    its own terminal under the user's launcher, nothing when the output is not a terminal."""
    if ctx.info.rank != 0 or config.progress == "off":
        return "off"
    if benv.get(benv.PARENT_VAR):
        return "marker" if config.progress == "on" else "off"
    if config.progress == "on":
        return "bar"
    # Open MPI hands every rank a pseudo-terminal, so isatty() says nothing about the user's screen there.
    return "bar" if ctx.info.launcher != "openmpi" and sys.stdout.isatty() and sys.stderr.isatty() else "off"


def _measure(
    config: RunConfig, ctx: DistContext, coll: Collective, nbytes: int, tdtype: torch.dtype, elsize: int, loop: Loop
) -> SizeResult:
    return measure(
        coll,
        nbytes,
        ctx.info.rank,
        ctx.info.world_size,
        None,
        loop,
        dtype=tdtype,
        elsize=elsize,
        device=ctx.device,
        check=config.check,
    )


def _resolve_graph(asked: bool | None, ctx: DistContext, timeout_s: float) -> bool:
    """``--graph``/``--no-graph`` as given; by default on with NCCL when every rank can capture.

    Eager small-message numbers carry torch's per-call launch overhead, so nccl-tests' ``-G`` numbers are
    matched only with capture. Under blocking wait capture cannot work (an event queried while capturing),
    and a driver or build that refuses capture on any rank turns it off on every rank, said in one line.
    """
    if asked is not None or ctx.backend != "nccl":
        return bool(asked)
    if blocking_wait_conflict(benv.environ(), True) is not None:
        return False
    rank = ctx.info.rank
    # Through the store, never the world communicator: a rank whose capture failed must not meet its peers'
    # replay with a collective of its own (bench.runtime.coord).
    coord = StoreCoord(ctx.store, rank, ctx.info.world_size, torch_timeout_s(timeout_s))

    def agree(why: str | None) -> str | None:
        said = f"rank {rank}: {why}" if why else ""
        return coord.agree(said, lambda posted: next((text for text in posted if text), None))

    why = graph_capture_works(ctx.device, agree)
    if why is None:
        return True
    if rank == 0:
        print(f"# CUDA graph capture does not work on every rank ({why}): eager timing")
    return False


def _check_memory(
    ctx: DistContext, colls: list[Collective], sizes: Sequence[int], dtype: Dtype, timeout_s: float
) -> None:
    """Exit 2 before anything is measured when the largest size does not fit this node's memory.

    Every rank measures its own device; the smallest answer wins so that every rank stops together. The answers
    meet through the store, never the world communicator: on NCCL it rides the rails, and in ``accept`` no world
    collective may run before the rails test knows every link (a black-holed one hangs it).
    """
    free, reserve, where = free_memory_bytes(ctx.device, ctx.info.local_world_size)
    mine = largest_fitting(colls, sizes, dtype, ctx.info.world_size, free, reserve)
    coord = StoreCoord(ctx.store, ctx.info.rank, ctx.info.world_size, torch_timeout_s(timeout_s))
    agreed: int = coord.agree(mine, min)
    check_sizes_fit(colls, sizes, dtype, ctx.info.world_size, agreed, where)


def sweep_section(config: RunConfig, graph: bool) -> SweepSettings:
    """run.json's ``sweep``: what was swept, each field of the section taken by its name from the config, with the
    graph choice as every rank agreed it."""
    return codec.projected(
        SweepSettings, config, where="run.json: sweep.", graph=graph, timeout_s=config.launch.timeout_s
    )
