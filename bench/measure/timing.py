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
from types import ModuleType
from typing import TYPE_CHECKING

from bench.measure import device as device_ops
from bench.measure.collectives import Buffers, Collective, count_wrong, make_buffers

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup


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
    return _region(step, group, device, iters, warmup, graph, align)


@dataclass(frozen=True)
class Chunked:
    """The bytes of one step moved as ``per_step`` equal smaller steps (``step``): how a budgeted cell moves
    what it can when not even its planned messages fit, so that a dead-slow part costs its budget and is
    measured over the bytes it moved, instead of one whole message that may take a hundred budgets.

    ``tiny`` is one call of the same collective or exchange with one element: its time is the per-call
    latency, which a chunk pays as a whole message does. On NCCL that latency grows with the ring (a 64-node
    all_reduce takes 2 x 63 network steps, docs/design.md "Timing on GPUs"), and a chunk can be mostly
    latency: its rate then says nothing about the link's bandwidth."""

    step: Callable[[], None]
    per_step: int
    tiny: Callable[[], None]


LATENCY_SHARE = 0.1
"""Chunks judge bandwidth only while per-call latency is at most this share of a chunk's time."""


def time_budgeted(
    step: Callable[[], None],
    *,
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    warmup: int,
    budget_s: Budget,
    agree: Agree | None = None,
    chunked: Chunked | None = None,
    align: Align | None = None,
) -> Timed:
    """:func:`time_region` within a time budget: a dead-slow part costs the budget, not ``iters`` steps.

    Connections first: NCCL connects an algorithm's channels (and a peer's point-to-point connectors) on the
    first call that needs them, and that can take longer than a whole healthy message. So every probe below is
    one untimed call, then the same call timed (:func:`_probe`); nothing timed or budget-deciding ever pays a
    connection, and whole messages are timed only after at least one untimed whole message.

    The probe is one step, or with ``chunked`` one chunk after the per-call latency (``chunked.tiny``). Every
    rank that takes part must run the same number of steps, so each probe goes through ``agree`` (default:
    the slowest rank of ``group``) and every rank plans from those values. Without ``chunked``: when the whole
    plan fits the budget it runs as usual; else the rest of the warmup is skipped and only the steps that fit
    are timed (when not even one more fits, the probe is the measurement). With ``chunked`` a whole message
    is expected to take the latency plus ``per_step`` times the chunk's time beyond the latency: when the plan
    fits, whole messages as usual; when it does not and the chunk's time is mostly its bytes (latency at most
    :data:`LATENCY_SHARE` of it), chunks in two batches (:func:`_chunks`); when the chunk is mostly latency,
    the whole messages that fit (one at least), since a latency-bound chunk cannot judge bandwidth.

    Every rank of ``group`` meets the same barriers whichever way its own plan went (pairs of one rail plan
    differently and share the rail's group); ``align`` runs before every timer starts, and the two ends of a
    pair take the same branches (they plan from the values ``agree`` gave both), so they meet in it equally
    often.
    """
    if not callable(budget_s) and budget_s <= 0:
        raise ValueError(f"budget_s {budget_s!r} must be positive")
    agreed = agree or (lambda s: group_max(s, group, device))
    if chunked is None:
        probe = agreed(_probe(step, group, device, align))
        left = (budget_s(probe) if callable(budget_s) else budget_s) - probe
        return _whole_steps(step, group, device, iters, max(0, warmup - 1), left, probe, align)
    latency = agreed(_probe(chunked.tiny, group, device, align))
    probe = agreed(_probe(chunked.step, group, device, align))
    left = (budget_s(probe) if callable(budget_s) else budget_s) - probe
    whole = latency + max(0.0, probe - latency) * chunked.per_step
    if whole * (warmup + iters) <= left:
        timed = Timed(_region(step, group, device, iters, max(1, warmup - 1), False, align), iters, False)
        _steps(lambda: None, group, device, 0)  # the barrier of the second batch of the chunked branch
        return timed
    if latency <= LATENCY_SHARE * probe:
        return _chunks(chunked, group, device, iters, left, probe, agreed, align)
    # Latency-bound chunks: whole messages, the first of them untimed (its own size may connect anew).
    fits = int(left // whole) if whole > 0 else warmup + iters
    steps = max(1, min(iters, fits - 1))
    timed = Timed(_region(step, group, device, steps, 1, False, align), steps, steps < iters)
    _steps(lambda: None, group, device, 0)
    return timed


def _probe(step: Callable[[], None], group: ProcessGroup | None, device: torch.device, align: Align | None) -> float:
    """This rank's seconds for one ``step`` after one untimed ``step``: the untimed one pays whatever the
    first use of this call costs (NCCL's connection set-up), so the timed one is what every later call takes."""
    _start(group, device, align)
    step()
    device_ops.synchronize(device)
    if align is not None:
        align()
    timer = device_ops.RegionTimer(device)
    timer.start()
    step()
    return timer.stop()


def _whole_steps(
    step: Callable[[], None],
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    warmup: int,
    left: float,
    probe: float,
    align: Align | None,
) -> Timed:
    """Whole steps within ``left`` seconds, planned from ``probe`` (one step's agreed time)."""
    fits = int(left // probe) if probe > 0 else iters + warmup
    if fits >= warmup + iters:
        return Timed(_region(step, group, device, iters, warmup, False, align), iters, False)
    if fits < 1:
        # Not one more step fits: the probe is the measurement. The barrier keeps the group in step
        # with ranks whose plan timed more.
        _dist().barrier(group=group)
        return Timed(probe * 1e6, 1, True)
    steps = min(fits, iters)
    return Timed(_region(step, group, device, steps, 0, False, align), steps, steps < iters)


def _chunks(
    chunked: Chunked,
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    left: float,
    probe: float,
    agree: Agree,
    align: Align | None,
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


def _steps(
    step: Callable[[], None], group: ProcessGroup | None, device: torch.device, count: int, align: Align | None = None
) -> float:
    """Seconds for ``count`` timed steps; with none, only the region's barrier (the group stays in step)."""
    if count == 0:
        _dist().barrier(group=group)
        return 0.0
    return _region(step, group, device, count, 0, False, align) * count / 1e6


def _dist() -> ModuleType:
    import torch.distributed as dist

    return dist


def _start(group: ProcessGroup | None, device: torch.device, align: Align | None) -> None:
    """The group together (and the two ends of a pair, with ``align``), then the device drained."""
    _dist().barrier(group=group)
    if align is not None:
        align()
    device_ops.synchronize(device)


def _region(
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


def group_max(seconds: float, group: ProcessGroup | None, device: torch.device) -> float:
    """The largest ``seconds`` over the ranks of ``group``, known on every one of them."""
    import torch

    dist = _dist()
    value = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=group)
    device_ops.synchronize(device)  # wait() does not block on NCCL: the host reads only what has landed
    return float(value.item())


def _capture(step: Callable[[], None], device: torch.device, iters: int, upload: bool = True) -> torch.cuda.CUDAGraph:
    """``iters`` steps captured in one CUDA graph (nccl-tests ``-G``), uploaded by one untimed replay (unless
    not ``upload``: a replay of a collective is a collective, which only a rank sure of its peers may start)."""
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
    """
    import torch
    import torch.distributed as dist

    why: str | None = "not a CUDA device"
    graph = None
    if device_ops.is_cuda(device):
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


def time_loop(
    coll: Collective,
    buffers: Buffers,
    rank: int,
    nranks: int,
    group: ProcessGroup | None,
    *,
    iters: int,
    warmup: int,
    device: torch.device,
    graph: bool = False,
    budget_s: Budget | None = None,
    chunk_buffers: tuple[Buffers, Buffers] | None = None,
) -> Timed:
    """This rank's mean time per call of ``coll`` (:func:`time_region` on one collective, or
    :func:`time_budgeted` when ``budget_s`` is given, in chunks when ``chunk_buffers`` (a chunk's buffers and
    a one-element call's, see :class:`Chunked`) are given)."""

    def step() -> None:
        coll.call(buffers, rank, nranks, group)

    if budget_s is not None:
        chunked = None
        if chunk_buffers is not None:
            chunk, tiny = chunk_buffers
            chunked = Chunked(
                lambda: coll.call(chunk, rank, nranks, group),
                max(1, buffers.nbytes // chunk.nbytes),
                lambda: coll.call(tiny, rank, nranks, group),
            )
        return time_budgeted(
            step, group=group, device=device, iters=iters, warmup=warmup, budget_s=budget_s, chunked=chunked
        )
    return Timed(time_region(step, group=group, device=device, iters=iters, warmup=warmup, graph=graph), iters, False)


def check_once(
    coll: Collective,
    count: int,
    nbytes: int,
    rank: int,
    nranks: int,
    group: ProcessGroup | None,
    dtype: torch.dtype,
    device: torch.device,
) -> int:
    """Run the collective once on fresh deterministic data and count this rank's wrong elements.

    Separate from the timed loop because in-place collectives (torch's all_reduce) keep accumulating
    while they are timed; the check needs one clean call.
    """
    buffers = make_buffers(coll, count, nbytes, rank, nranks, dtype, device)
    coll.call(buffers, rank, nranks, group)
    device_ops.synchronize(device)  # the result is read below: the collective must have landed
    return count_wrong(coll, buffers, rank, nranks)


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


def measure(
    coll: Collective,
    nbytes: int,
    rank: int,
    nranks: int,
    group: ProcessGroup | None,
    *,
    dtype: torch.dtype,
    elsize: int,
    device: torch.device,
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
        tiny_count = coll.count_for_bytes(elsize * nranks, elsize, nranks)
        tiny_bytes = coll.bytes_for_count(tiny_count, elsize, nranks)
        chunk_buffers = (
            make_buffers(coll, chunk_count, chunk_bytes, rank, nranks, dtype, device),
            make_buffers(coll, tiny_count, tiny_bytes, rank, nranks, dtype, device),
        )
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
