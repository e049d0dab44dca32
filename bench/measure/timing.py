"""The one timing loop: any registered collective or pair exchange, any size, any process group.

Every timed region starts with the group's ranks together and the device drained, and ends with the
device's own synchronisation (``bench.measure.device``): on GPU, CUDA events on the stream torch makes wait
for NCCL's work; on the host, ``perf_counter`` after draining any asynchronous backend. gloo completes
each call before returning, NCCL only enqueues it, and the one loop times both truthfully. ``graph=True``
captures the ``iters`` calls in one CUDA graph and replays it, removing the per-call launch overhead as
nccl-tests ``-G`` does.

How one size is timed (warmup, iterations, the graph, the time budget) is one record, :class:`Loop`, which
the caller that decides it builds once. This module is the loop itself; ``bench.measure.budgeted`` runs it
within a :class:`Loop`'s time budget, and ``bench.measure.size`` times and checks one collective at one size.

Each rank times its own loop; ``reduce_times`` gathers every rank's mean so the caller can report the mean
over ranks plus the fastest and slowest rank (the straggler signal), as nccl-tests averages over ranks.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from bench.measure import device as device_ops

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup


def _repeat(step: Callable[[], None], times: int) -> None:
    for _ in range(times):
        step()


@dataclass(frozen=True)
class Timed:
    """What one timed region measured."""

    time_us: float
    """Mean time per timed step, in microseconds."""
    steps: int
    """Timed steps behind the mean (``iters`` unless the budget ran out)."""
    stopped: bool
    """The time budget ran out before ``iters`` steps: the mean is over the steps that fitted."""


Agree = Callable[[float], float]
"""Turns this rank's seconds into the value every rank of the measurement uses (the slowest of them)."""

Budget = float | Callable[[float], float]
"""Seconds, or seconds planned from the probe's agreed time of one whole step (where the expected rate is only
learnt by probing)."""

Align = Callable[[], None]
"""Run after the group's barrier, before the timer starts: the two ends of a pair meet once more (a tiny
exchange), so that neither end's timer holds a wait for the other. A barrier lets its ranks go at different
moments (gloo's passes messages from rank to rank), and a slow rank elsewhere in the group, even one with
no partner this round, lets some ranks out much later than others: the early end of a pair would time
its partner's barrier as transfer."""


@dataclass(frozen=True)
class Loop:
    """How one size is timed: ``warmup`` untimed calls, then ``iters`` timed ones (nccl-tests ``-w`` and ``-n``),
    captured in one CUDA graph with ``graph`` (``-G``), or within ``budget_s`` (``bench.measure.budgeted``).

    The sweep decides it once for the run (its iterations and the graph every rank agreed on); the rails test
    once per cell (its iterations and the cell's budget)."""

    iters: int
    warmup: int
    graph: bool = False
    """Capture the timed calls in one CUDA graph; never with a budget, whose steps are timed eagerly."""
    budget_s: Budget | None = None
    """None: every step is timed, however long it takes."""

    def __post_init__(self) -> None:
        if self.graph and self.budget_s is not None:
            raise ValueError("a budgeted loop times its steps eagerly: graph and budget_s exclude each other")


def time_region(
    step: Callable[[], None],
    *,
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    warmup: int,
    graph: bool = False,
    align: Align | None = None,
) -> float:
    """This rank's mean time per ``step`` in microseconds, after ``warmup`` untimed steps.

    The one timing loop: world sweeps, rail groups and pair exchanges all come through here. Every rank of
    ``group`` starts together (a barrier, then the device drained), and the region ends with the device's
    own synchronisation (``bench.measure.device``), so asynchronous backends are timed by when their work
    ended, not by when the host finished queuing it. ``align``: see ``Align`` (pair exchanges).
    """
    return region(step, group, device, iters, warmup, graph, align)


def _dist() -> ModuleType:
    import torch.distributed as dist

    return dist


def start_together(group: ProcessGroup | None, device: torch.device, align: Align | None) -> None:
    """The group together (and the two ends of a pair, with ``align``), then the device drained."""
    _dist().barrier(group=group)
    if align is not None:
        align()
    device_ops.synchronize(device)


def region(
    step: Callable[[], None],
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    warmup: int,
    graph: bool,
    align: Align | None,
) -> float:
    """The loop itself: untimed warmup, the group together, the device drained, ``iters`` steps timed."""
    _repeat(step, warmup)
    cuda_graph = _capture(step, device, iters) if graph else None
    with no_collection():
        start_together(group, device, align)
        timer = device_ops.RegionTimer(device)
        timer.start()
        if cuda_graph is not None:
            cuda_graph.replay()
        else:
            _repeat(step, iters)
        seconds = timer.stop()
    return seconds * 1e6 / iters


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No garbage collection while a timer runs: a full collection pauses the host for up to ~100 ms with torch
    loaded, and a peer waiting on this rank would count the pause as transfer."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def group_max(seconds: float, group: ProcessGroup | None, device: torch.device) -> float:
    """The largest ``seconds`` over the ranks of ``group``, known on every one of them."""
    import torch

    dist = _dist()
    value = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=group)
    device_ops.synchronize(device)  # wait() does not block on NCCL: the host reads only what has landed
    return float(value.item())


def _capture(step: Callable[[], None], device: torch.device, iters: int, upload: bool = True) -> device_ops.Graph:
    """``iters`` steps captured in one CUDA graph (nccl-tests ``-G``), after one eager step on the capture's
    stream, uploaded by one untimed replay (unless not ``upload``: a replay of a collective is a collective,
    which only a rank sure of its peers may start)."""
    device_ops.synchronize(device)
    cuda_graph = device_ops.capture(step, lambda: _repeat(step, iters), device)
    if upload:
        cuda_graph.replay()
    device_ops.synchronize(device)
    return cuda_graph


def graph_capture_works(device: torch.device, agree: Callable[[str | None], str | None]) -> str | None:
    """Why a CUDA graph of an NCCL all-reduce cannot be captured on every rank, or None when it can.

    A one-element all-reduce on the world, captured; every rank calls this together. ``agree`` takes this
    rank's answer and returns the first refusal of any rank (None: every rank captured), through the store:
    a rank whose capture failed must not meet its peers' replay with some other collective. Only then is the
    graph replayed, on every rank or on none, so one rank that cannot capture leaves no other waiting.

    It is a world collective all the same (the eager call before the capture, and the replay): on NCCL a
    black-holed link that carries the world's channels hangs it, so ``accept`` runs it only once the rails test
    found every link alive (``bench.accept.rank``).
    """
    import torch
    import torch.distributed as dist

    why: str | None = "not a CUDA device"
    graph = None
    if device_ops.can_capture(device):
        probe = torch.ones(1, device=device)
        try:
            graph = _capture(lambda: dist.all_reduce(probe), device, 1, upload=False)
            why = None
        except RuntimeError as exc:  # capture unsupported by this driver, NCCL or torch build
            why = " ".join(str(exc).split())[:160]
    everyone = agree(why)
    if everyone is None and graph is not None:
        try:
            graph.replay()
            device_ops.synchronize(device)
        except RuntimeError as exc:
            return " ".join(str(exc).split())[:160]
    return everyone


def reduce_times(
    time_us: float, wrong: int, group: ProcessGroup | None, device: torch.device
) -> tuple[list[float], int]:
    """Every rank's time (in group order) and the total of wrong elements, known on every rank."""
    import torch
    import torch.distributed as dist

    n = dist.get_world_size(group)
    mine = torch.tensor([time_us, float(wrong)], dtype=torch.float64, device=device)
    everyone = torch.empty(2 * n, dtype=torch.float64, device=device)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(everyone, mine, group=group)
    device_ops.synchronize(device)  # read on the host only once the gather has landed
    values = everyone.view(n, 2).cpu().tolist()
    return [row[0] for row in values], int(sum(row[1] for row in values))
