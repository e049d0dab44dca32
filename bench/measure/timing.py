"""The one timing loop: any registered collective or pair exchange, any size, any process group.

Every timed region starts with the group's ranks together and the device drained, and ends with the
device's own synchronisation (``bench.measure.device``): on GPU, CUDA events on the stream torch makes wait
for NCCL's work; on the host, ``perf_counter`` after draining any asynchronous backend. gloo completes
each call before returning, NCCL only enqueues it, and the one loop times both truthfully. ``graph=True``
captures the ``iters`` calls in one CUDA graph and replays it, removing the per-call launch overhead as
nccl-tests ``-G`` does.

Each rank times its own loop; ``reduce_times`` gathers every rank's mean so the caller can report the mean
over ranks plus the fastest and slowest rank (the straggler signal), as nccl-tests averages over ranks.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.measure import device as device_ops
from bench.measure.collectives import Buffers, Collective, count_wrong, make_buffers


@dataclass(frozen=True)
class SizeResult:
    """One (collective, size) measured across a communicator."""

    collective: str
    nbytes: int
    count: int
    nranks: int
    iters: int
    time_us: float
    """Mean over ranks of each rank's mean time per iteration."""
    time_us_min: float
    time_us_max: float
    wrong: int | None
    """Wrong elements summed over ranks; None when --check was off."""
    stopped: bool = False
    """The time budget ran out: ``iters`` is the number of steps that fitted."""

    @property
    def algbw_GBps(self) -> float:
        return self.nbytes / (self.time_us * 1e-6) / 1e9 if self.time_us > 0 else 0.0


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
"""Seconds, or seconds planned from the agreed probe (where the expected rate is only learnt by probing)."""

Align = Callable[[], None]
"""Run after the group's barrier, before the timer starts: the two ends of a pair meet once more (a tiny
exchange), so that neither end's timer holds a wait for the other. A barrier lets its ranks go at different
moments (gloo's passes messages from rank to rank), and a slow rank elsewhere in the group, even one with
no partner this round, lets some ranks out much later than others: the early end of a pair would time
its partner's barrier as transfer."""


def time_region(
    step: Callable[[], None],
    *,
    group: Any,
    device: Any,
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
    return _region(step, group, device, iters, warmup, graph, align)


@dataclass(frozen=True)
class Chunked:
    """The bytes of one step moved as ``per_step`` equal smaller steps (``step``): how a budgeted cell moves
    what it can when not even its planned messages fit, so that a dead-slow part costs its budget and is
    measured over the bytes it moved, instead of one whole message that may take a hundred budgets."""

    step: Callable[[], None]
    per_step: int


def time_budgeted(
    step: Callable[[], None],
    *,
    group: Any,
    device: Any,
    iters: int,
    warmup: int,
    budget_s: Budget,
    agree: Agree | None = None,
    chunked: Chunked | None = None,
    align: Align | None = None,
) -> Timed:
    """:func:`time_region` within a time budget: a dead-slow part costs the budget, not ``iters`` steps.

    The first step (or, with ``chunked``, the first chunk) is timed on its own, a probe standing in for the
    first warmup step. Every rank that takes part must run the same number of steps, so the probe's time goes
    through ``agree`` (default: the slowest rank of ``group``) and every rank plans from that one value: when
    the whole plan fits the budget it runs as usual; else, without ``chunked``, the rest of the warmup is
    skipped and only the steps that fit are timed (when not even one more fits, the probe is the
    measurement); with ``chunked``, chunks are timed in two batches, the second planned from the first, until
    the plan's bytes are moved or the budget is spent. Every rank of ``group`` meets the same barriers
    whichever way its own plan went (pairs of one rail plan differently and share the rail's group);
    ``align`` runs before every timer starts, and the two ends of a pair take the same branches (they plan
    from the values ``agree`` gave both), so they meet in it equally often.
    """
    if not callable(budget_s) and budget_s <= 0:
        raise ValueError(f"budget_s {budget_s!r} must be positive")
    agreed = agree or (lambda s: group_max(s, group, device))
    dist = _dist()
    _start(group, device, align)
    timer = device_ops.RegionTimer(device)
    timer.start()
    (chunked.step if chunked else step)()
    probe = agreed(timer.stop())
    left = (budget_s(probe) if callable(budget_s) else budget_s) - probe
    if chunked is not None:
        whole = probe * chunked.per_step
        if whole * (warmup + iters) <= left:
            timed = Timed(_region(step, group, device, iters, warmup, False, align), iters, False)
            _steps(lambda: None, group, device, 0)  # the barrier of the second batch below
            return timed
        return _chunks(chunked, group, device, iters, left, probe, agreed, align)
    fits = int(left // probe) if probe > 0 else iters + warmup
    if fits >= max(0, warmup - 1) + iters:
        return Timed(_region(step, group, device, iters, max(0, warmup - 1), False, align), iters, False)
    if fits < 1:
        # Not one more step fits: the probe is the measurement. The barrier keeps the group in step
        # with ranks whose plan timed more.
        dist.barrier(group=group)
        return Timed(probe * 1e6, 1, True)
    steps = min(fits, iters)
    return Timed(_region(step, group, device, steps, 0, False, align), steps, steps < iters)


def _chunks(
    chunked: Chunked, group: Any, device: Any, iters: int, left: float, probe: float, agree: Agree, align: Align | None
) -> Timed:
    """Chunks in two timed batches within ``left`` seconds: the first planned from the probe for a quarter
    of it, the second from the first batch, and only when every chunk still wanted fits (a probe stretched
    by a scheduling hiccup plans too few chunks, and the second batch moves the rest; a cell that is really
    slow stops after the first, having spent a quarter of its budget). The mean time per whole step is over the
    chunks moved; the probe is left out, as warmup is (the first chunk on a token bucket rides its burst,
    the first on TCP its slow start)."""
    wanted = iters * chunked.per_step
    moved, spent = 0, 0.0
    per_chunk = probe
    for first in (True, False):
        if first:
            # A quarter of the budget at most (about what the whole plan should take), and one chunk at
            # least: the second batch plans from this one's rate, and when the rest cannot fit in what is
            # left, the cell stops with the rate it has.
            fits = max(1, int(left / 4 // per_chunk)) if per_chunk > 0 else wanted
            fits = fits if left > 0 else 0
        else:
            fits = int((left - spent) // per_chunk) if per_chunk > 0 else wanted
            if fits < wanted - moved:
                fits = 0
        batch = max(0, min(fits, wanted - moved))
        seconds = agree(_steps(chunked.step, group, device, batch, align))
        if batch:
            moved, spent, per_chunk = moved + batch, spent + seconds, seconds / batch
    if not moved:
        return Timed(probe * chunked.per_step * 1e6, 1, True)
    mean = spent / moved * chunked.per_step
    return Timed(mean * 1e6, max(1, moved // chunked.per_step), moved < wanted)


def _steps(step: Callable[[], None], group: Any, device: Any, count: int, align: Align | None = None) -> float:
    """Seconds for ``count`` timed steps; with none, only the region's barrier (the group stays in step)."""
    if count == 0:
        _dist().barrier(group=group)
        return 0.0
    return _region(step, group, device, count, 0, False, align) * count / 1e6


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def _start(group: Any, device: Any, align: Align | None) -> None:
    """The group together (and the two ends of a pair, with ``align``), then the device drained."""
    _dist().barrier(group=group)
    if align is not None:
        align()
    device_ops.synchronize(device)


def _region(
    step: Callable[[], None], group: Any, device: Any, iters: int, warmup: int, graph: bool, align: Align | None
) -> float:
    """The loop itself: untimed warmup, the group together, the device drained, ``iters`` steps timed."""
    _repeat(step, warmup)
    cuda_graph = _capture(step, device, iters) if graph else None
    # No garbage collection between the barrier and the end of the region: a full collection pauses the host
    # for up to ~100 ms with torch loaded, and a peer waiting on this rank would count the pause as transfer.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _start(group, device, align)
        timer = device_ops.RegionTimer(device)
        timer.start()
        if cuda_graph is not None:
            cuda_graph.replay()
        else:
            _repeat(step, iters)
        seconds = timer.stop()
    finally:
        if collecting:
            gc.enable()
    return seconds * 1e6 / iters


def group_max(seconds: float, group: Any, device: Any) -> float:
    """The largest ``seconds`` over the ranks of ``group``, known on every one of them."""
    import torch

    dist = _dist()
    value = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=group)
    device_ops.synchronize(device)  # wait() does not block on NCCL: the host reads only what has landed
    return float(value.item())


def _capture(step: Callable[[], None], device: Any, iters: int) -> Any:
    """``iters`` steps captured in one CUDA graph (nccl-tests ``-G``), uploaded by one untimed replay."""
    import torch

    device_ops.synchronize(device)
    cuda_graph = torch.cuda.CUDAGraph()
    # Capture runs on a side stream; NCCL needs one eager call on that stream first.
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream(device).wait_stream(side)
    with torch.cuda.graph(cuda_graph, stream=side):
        _repeat(step, iters)
    cuda_graph.replay()
    device_ops.synchronize(device)
    return cuda_graph


def graph_capture_works(device: Any) -> str | None:
    """Why a CUDA graph of an NCCL all-reduce cannot be captured on this rank, or None when it can.

    A one-element all-reduce on the world, captured and replayed once. Every rank must call it together
    (it is a collective) and agree on the answer afterwards, so that either every rank captures or none.
    """
    import torch
    import torch.distributed as dist

    if not device_ops.is_cuda(device):
        return "not a CUDA device"
    probe = torch.ones(1, device=device)
    try:
        _capture(lambda: dist.all_reduce(probe), device, 1).replay()
        device_ops.synchronize(device)
    except RuntimeError as exc:  # capture unsupported by this driver, NCCL or torch build
        return " ".join(str(exc).split())[:160]
    return None


def time_loop(
    coll: Collective,
    buffers: Buffers,
    rank: int,
    nranks: int,
    group: Any,
    *,
    iters: int,
    warmup: int,
    device: Any,
    graph: bool = False,
    budget_s: Budget | None = None,
    chunk_buffers: Buffers | None = None,
) -> Timed:
    """This rank's mean time per call of ``coll`` (:func:`time_region` on one collective, or
    :func:`time_budgeted` when ``budget_s`` is given, in chunks of ``chunk_buffers`` when given)."""

    def step() -> None:
        coll.call(buffers, rank, nranks, group)

    if budget_s is not None:
        chunked = None
        if chunk_buffers is not None:
            chunk = chunk_buffers
            chunked = Chunked(lambda: coll.call(chunk, rank, nranks, group), max(1, buffers.nbytes // chunk.nbytes))
        return time_budgeted(
            step, group=group, device=device, iters=iters, warmup=warmup, budget_s=budget_s, chunked=chunked
        )
    return Timed(time_region(step, group=group, device=device, iters=iters, warmup=warmup, graph=graph), iters, False)


def check_once(
    coll: Collective, count: int, nbytes: int, rank: int, nranks: int, group: Any, dtype: Any, device: Any
) -> int:
    """Run the collective once on fresh deterministic data and count this rank's wrong elements.

    Separate from the timed loop because in-place collectives (torch's all_reduce) keep accumulating
    while they are timed; the check needs one clean call.
    """
    buffers = make_buffers(coll, count, nbytes, rank, nranks, dtype, device)
    coll.call(buffers, rank, nranks, group)
    device_ops.synchronize(device)  # the result is read below: the collective must have landed
    return count_wrong(coll, buffers, rank, nranks)


def reduce_times(time_us: float, wrong: int, group: Any, device: Any) -> tuple[list[float], int]:
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


def measure(
    coll: Collective,
    nbytes: int,
    rank: int,
    nranks: int,
    group: Any,
    *,
    dtype: Any,
    elsize: int,
    device: Any,
    iters: int,
    warmup: int,
    check: bool,
    graph: bool = False,
    budget_s: Budget | None = None,
    chunks: int = 1,
) -> SizeResult:
    """Time ``coll`` at ``nbytes`` in ``group`` and, with ``check``, verify it; every rank returns the same.

    With ``budget_s``, a call that does not fit is measured over ``chunks`` smaller calls of a
    ``chunks``-th of the bytes each (:func:`time_budgeted`)."""
    count = coll.count_for_bytes(nbytes, elsize, nranks)
    real_bytes = coll.bytes_for_count(count, elsize, nranks)
    buffers = make_buffers(coll, count, real_bytes, rank, nranks, dtype, device)
    chunk_buffers = None
    if budget_s is not None and chunks > 1:
        chunk_count = coll.count_for_bytes(real_bytes // chunks, elsize, nranks)
        chunk_bytes = coll.bytes_for_count(chunk_count, elsize, nranks)
        chunk_buffers = make_buffers(coll, chunk_count, chunk_bytes, rank, nranks, dtype, device)
    timed = time_loop(
        coll,
        buffers,
        rank,
        nranks,
        group,
        iters=iters,
        warmup=warmup,
        device=device,
        graph=graph,
        budget_s=budget_s,
        chunk_buffers=chunk_buffers,
    )
    my_time = timed.time_us
    del buffers, chunk_buffers
    my_wrong = check_once(coll, count, real_bytes, rank, nranks, group, dtype, device) if check else 0
    times, wrong = reduce_times(my_time, my_wrong, group, device)
    return SizeResult(
        collective=coll.name,
        nbytes=real_bytes,
        count=count,
        nranks=nranks,
        iters=timed.steps,
        time_us=sum(times) / len(times),
        time_us_min=min(times),
        time_us_max=max(times),
        wrong=wrong if check else None,
        stopped=timed.stopped,
    )
