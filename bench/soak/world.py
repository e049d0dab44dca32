"""What a soak window measures besides the rails round: a world collective, and each node's GPU state at the
window's edge (docs/design.md, "Soak").

The world collective is each of the rails test's collectives over every rank at the rails test's message size (the
profile's ``[rails_test] rail_bytes``): one size keeps the window short, and it loads every path at once as the
cluster's jobs do. Its target is the profile's world target at that size where the profile judges that size.

GPU state comes from nvidia-smi on each node (``bench.gpu.state.from_tool``: uncorrected ECC rises, clock event
reasons, the SM clock and the temperature at the edge, for the judges' clock-against-temperature trend) and its kernel
log (the Xid codes logged in the window, ``bench.gpu.xid``), read by one rank per node where the ranks run on GPUs; a
CPU rank reads none, and the window lists no GPU (not read, never "no error").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from bench.fabric import link_flaps
from bench.gpu import state, xid
from bench.measure import device as device_ops
from bench.measure.collectives import get_collective
from bench.measure.size import measure
from bench.measure.targets import judge_min_bytes, world_target_gbps
from bench.measure.timing import Loop
from bench.profile.cluster import Profile
from bench.rails.plan.budget import cell_budget, upper_median
from bench.rails.plan.config import RailsSettings
from bench.rundir.soak_windows import CollectiveWindow, GpuWindow
from bench.runtime.coord import Coord
from bench.runtime.dist import DistContext
from bench.runtime.watchdog import Watchdog

WORLD_SHARE = 0.25
"""The share of a window the world collectives may take together: the rails round is the window's main load, and a
slow world collective (a CPU's 256 MiB all_gather takes seconds a call) must not stretch the window past its length.
Each collective probes one call, then times the calls that fit its share (``bench.measure.budgeted``)."""


def world_collectives(
    settings: RailsSettings, ctx: DistContext, profile: Profile, watchdog: Watchdog, window_s: float
) -> tuple[CollectiveWindow, ...]:
    """Every rank: each rail collective over the world at ``rail_bytes`` (the same results on every rank), within
    its share of the window."""
    import torch

    nranks, nbytes = ctx.info.world_size, settings.test.rail_bytes
    if nranks < 2:
        return ()
    out = []
    for name in settings.test.collectives:
        coll = get_collective(name)
        calls = settings.test.warmup + settings.test.iters
        wire = int(nbytes * max(1.0, coll.busbw_factor(nranks)))
        share = window_s * WORLD_SHARE / len(settings.test.collectives)
        budget = min(share, cell_budget(wire, calls, settings.rail_rate_gbps, settings.config.cell_budget_s))
        watchdog.enter(f"{name} over every rank")
        res = measure(
            coll,
            nbytes,
            ctx.info.rank,
            nranks,
            None,
            Loop(settings.test.iters, settings.test.warmup, budget_s=budget),
            dtype=torch.float32,
            elsize=4,
            device=ctx.device,
            check=settings.config.check,
        )
        watchdog.leave()
        judged = nbytes >= judge_min_bytes(profile)
        target = world_target_gbps(profile, name, ctx.info.nnodes, nbytes=nbytes, nranks=nranks) if judged else None
        busbw = res.algbw_GBps * 8 * coll.busbw_factor(nranks)
        out.append(CollectiveWindow(name, nbytes, round(busbw, 3), target, res.wrong or 0))
    return tuple(out)


def typical(passes: Sequence[Sequence[CollectiveWindow]]) -> tuple[CollectiveWindow, ...]:
    """Each collective of several passes in one window as one: its upper median busbw (as a link's typical rate;
    a dead-slow minority of passes cannot pull it down, a majority does), the wrong elements of every pass."""
    out = []
    for runs in zip(*passes, strict=True):
        rate = upper_median([r.busbw_Gbps for r in runs])
        out.append(replace(runs[0], busbw_Gbps=rate or 0.0, wrong=sum(r.wrong for r in runs)))
    return tuple(out)


def xids_since(since: datetime, now: datetime, path: Path | None = None) -> list[xid.Xid]:
    """The Xid events the kernel log (``path``, else the journal, else the system log files:
    ``bench.fabric.link_flaps``) says from ``since`` on (naive local times, as the log's lines carry them); none
    where no log could be read."""
    log = link_flaps.read_kernel_log(path, since)
    if log.skipped is not None:
        return []
    lines = [line for line in log.lines if (when := link_flaps.line_time(line, now)) is not None and when >= since]
    return xid.events(lines)


@dataclass
class GpuReader:
    """One node's GPUs, read at every window's edge by its local rank 0 on a GPU rank (others read nothing)."""

    reads: bool
    last_uncorrected: dict[str, int] = field(default_factory=dict)
    """PCI address -> nvidia-smi's volatile uncorrectable ECC count at the last edge: a window keeps the rise."""
    since: datetime | None = None
    """The last edge, to the second (the kernel log's lines carry whole seconds: a line in the edge's second
    counts in both windows rather than in neither)."""

    def read(self, host: str) -> list[GpuWindow]:
        if not self.reads:
            return []
        now = datetime.now()
        events = xids_since(self.since, now) if self.since is not None else []
        self.since = now.replace(microsecond=0)
        report = state.from_tool().report
        if report is None:
            return []
        out = []
        for index, gpu in enumerate(report.gpus):
            count = gpu.volatile_uncorrectable
            before = self.last_uncorrected.get(gpu.pci, count)
            if count is not None:
                self.last_uncorrected[gpu.pci] = count
            rise = max(0, count - before) if count is not None and before is not None else 0
            codes = tuple(sorted({e.code for e in events if e.kind == "Xid" and e.matches(gpu.pci)}))
            out.append(
                GpuWindow(
                    host,
                    index,
                    xid=codes,
                    ecc_uncorrected=rise,
                    sm_clock_MHz=gpu.sm_clock_MHz,
                    temperature_C=gpu.temperature_C,
                    throttle=gpu.clock_events,
                )
            )
        return out


def gpu_reader(ctx: DistContext) -> GpuReader:
    """This rank's reader: it reads on a GPU node's local rank 0 only."""
    return GpuReader(ctx.info.local_rank == 0 and device_ops.is_cuda(ctx.device))


def gpu_states(reader: GpuReader, ctx: DistContext, coord: Coord) -> tuple[GpuWindow, ...]:
    """Every rank together: each node's GPUs at this edge, on rank 0 (empty elsewhere, and where none was read)."""
    heard = coord.gather(reader.read(ctx.hosts[ctx.info.rank]))
    return tuple(g for gpus in heard or [] for g in gpus)
