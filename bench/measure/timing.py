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

import contextlib
import gc
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
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
"""Seconds, or seconds planned from the probe's agreed time of one whole step (where the expected rate is only
learnt by probing)."""

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

    Only for an exchange between two ranks (a pair direction, a two-rank group), never for a collective over
    more than two: there the chunk and the whole message do not run the same algorithm, and no chunk's rate
    says what the whole message's is (docs/design.md, "A cell within its time budget").

    ``half`` is the same exchange with half a chunk's bytes. A chunk pays a fixed cost per call, as a whole
    message does; it is planned from these two sizes (twice the half's time less the chunk's), both large
    enough to run the same protocol, never from a one-element call, which on NCCL runs another protocol (LL)
    and often another algorithm (a tree) than any chunk does, with a fraction of a chunk's fixed cost."""

    step: Callable[[], None]
    per_step: int
    half: Callable[[], None]


LATENCY_SHARE = 0.1
"""Chunks judge bandwidth only while their fixed cost per call is at most this share of a chunk's time (and the
chunk and half a chunk agree with one cost line to within it)."""
PROBE_SAMPLES = 3
"""Timed calls behind a probe, which plans from their median: one call that a scheduling hiccup or a late
completion stretched (by a few milliseconds: a quarter of a healthy 64-node message) must not decide a plan."""


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
    first call that needs them, and that can take longer than a whole healthy message. So every probe starts
    with one untimed call of each size it times (:func:`_probe`); nothing timed or budget-deciding ever pays a
    connection, and whole messages are timed only after at least one untimed whole message.

    The probe is the median of up to :data:`PROBE_SAMPLES` timed calls, each through ``agree`` (default: the
    slowest rank of ``group``), so every rank that takes part plans from the same values and runs the same
    number of steps. What it plans is the time of one whole step, the value a callable ``budget_s`` is given.
    Without ``chunked``, the probe calls are whole steps (fewer where they alone spend a fixed budget): when the
    whole plan fits the rest of the budget it runs as usual, else only the steps that fit are timed, and when
    not one more fits the probe's calls are the measurement. With ``chunked`` (two ranks only, see
    :class:`Chunked`) the probe times a chunk and half a chunk; a whole message is expected to take the fixed
    cost plus ``per_step`` times the chunk's time beyond it. When the plan fits, whole messages as usual;
    when it does not and the chunk's time is its bytes (the two sizes on one cost line whose fixed part is at
    most :data:`LATENCY_SHARE` of a chunk's time), chunks in two batches (:func:`_chunks`); else the whole
    messages that fit (one at least): a chunk that is mostly fixed cost cannot judge bandwidth, and two sizes
    off one line (half the chunk far faster than half its time: another protocol) cannot be extrapolated.

    Every rank of ``group`` meets the same barriers whichever way its own plan went (pairs of one rail plan
    differently and share the rail's group); ``align`` runs before every timer starts, and the two ends of a
    pair take the same branches (they plan from the values ``agree`` gave both), so they meet in it equally
    often.
    """
    if not callable(budget_s) and budget_s <= 0:
        raise ValueError(f"budget_s {budget_s!r} must be positive")
    agreed = agree or (lambda s: group_max(s, group, device))
    if chunked is None:
        limit = math.inf if callable(budget_s) else budget_s
        # Messages that alone spend a fixed budget are not timed again: their timed calls are the measurement.
        samples = _probe([step], group, device, align, agreed, lambda spent: spent < limit)
        taken = [s[0] for s in samples]
        probe = _median(taken)
        left = (budget_s(probe) if callable(budget_s) else budget_s) - sum(taken)
        return _whole_steps(step, group, device, iters, max(0, warmup - 1 - len(taken)), left, taken, align)
    samples = _probe([chunked.step, chunked.half], group, device, align, agreed, lambda spent: True)
    chunk_s, half_s = _median([s[0] for s in samples]), _median([s[1] for s in samples])
    # One cost line through both sizes: its fixed part. Far below zero, the two sizes do not share one line (the
    # smaller ran another protocol or algorithm), and nothing can be extrapolated from them.
    line_fixed = 2 * half_s - chunk_s
    fixed = min(chunk_s, max(0.0, line_fixed))
    whole = fixed + (chunk_s - fixed) * chunked.per_step
    left = (budget_s(whole) if callable(budget_s) else budget_s) - sum(map(sum, samples))
    if whole * (warmup + iters) <= left:
        timed = Timed(_region(step, group, device, iters, max(1, warmup - 1), False, align), iters, False)
        _steps(lambda: None, group, device, 0)  # the barrier of the second batch of the chunked branch
        return timed
    if abs(line_fixed) <= LATENCY_SHARE * chunk_s:
        return _chunks(chunked, group, device, iters, left, chunk_s, fixed, agreed, align)
    # Chunks that are mostly fixed cost (or off any one cost line): whole messages, the first of them untimed (its
    # own size may connect anew).
    fits = int(left // whole) if whole > 0 else warmup + iters
    steps = max(1, min(iters, fits - 1))
    timed = Timed(_region(step, group, device, steps, 1, False, align), steps, steps < iters)
    _steps(lambda: None, group, device, 0)
    return timed


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _probe(
    steps: Sequence[Callable[[], None]],
    group: ProcessGroup | None,
    device: torch.device,
    align: Align | None,
    agree: Agree,
    more: Callable[[float], bool],
) -> list[list[float]]:
    """One untimed call of each of ``steps`` (it pays whatever the first use of that size costs: NCCL's
    connection set-up), then up to :data:`PROBE_SAMPLES` rounds of one timed call of each, every time agreed;
    a round is taken while ``more(seconds spent so far)``. Returns the agreed seconds, round by round.

    One barrier of ``group`` however many rounds are taken (pairs of one group take different numbers); the
    calls after the first start together through ``align`` (pairs) or the previous agreement (collectives).
    The agreed values are the same at every rank that takes part, so they all take the same rounds."""
    _start(group, device, align)
    for step in steps:
        step()
    device_ops.synchronize(device)
    rounds: list[list[float]] = []
    spent = 0.0
    with _no_collection():
        while len(rounds) < PROBE_SAMPLES and more(spent):
            taken = []
            for step in steps:
                if align is not None:
                    align()
                timer = device_ops.RegionTimer(device)
                timer.start()
                step()
                taken.append(agree(timer.stop()))
            rounds.append(taken)
            spent += sum(taken)
    return rounds


def _whole_steps(
    step: Callable[[], None],
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    warmup: int,
    left: float,
    taken: Sequence[float],
    align: Align | None,
) -> Timed:
    """Whole steps within ``left`` seconds, planned from the median of ``taken`` (the probe's agreed times of
    one whole step each)."""
    probe = _median(taken)
    fits = int(left // probe) if probe > 0 else iters + warmup
    if fits >= warmup + iters:
        return Timed(_region(step, group, device, iters, warmup, False, align), iters, False)
    if fits < 1:
        # Not one more step fits: the probe's calls are the measurement. The barrier keeps the group in step
        # with ranks whose plan timed more.
        _dist().barrier(group=group)
        return Timed(probe * 1e6, len(taken), True)
    steps = min(fits, iters)
    return Timed(_region(step, group, device, steps, 0, False, align), steps, steps < iters)


def _chunks(
    chunked: Chunked,
    group: ProcessGroup | None,
    device: torch.device,
    iters: int,
    left: float,
    probe: float,
    fixed: float,
    agree: Agree,
    align: Align | None,
) -> Timed:
    """Chunks in two timed batches within ``left`` seconds: the first planned from the probe for a quarter
    of it, the second from the first batch, and only when every chunk still wanted fits (a probe stretched
    by a scheduling hiccup plans too few chunks, and the second batch moves the rest; a cell that is really
    slow stops after the first, having spent a quarter of its budget). A whole step is the chunks' mean time
    beyond their ``fixed`` cost per call, ``per_step`` times, plus that cost once; the probe is left out, as
    warmup is (the first chunk on a token bucket rides its burst, the first on TCP its slow start)."""
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
    if moved:
        per_chunk = spent / moved
    whole = fixed + max(0.0, per_chunk - fixed) * chunked.per_step
    if not moved:
        return Timed(whole * 1e6, 1, True)
    return Timed(whole * 1e6, max(1, moved // chunked.per_step), moved < wanted)


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
    with _no_collection():
        _start(group, device, align)
        timer = device_ops.RegionTimer(device)
        timer.start()
        if cuda_graph is not None:
            cuda_graph.replay()
        else:
            _repeat(step, iters)
        seconds = timer.stop()
    return seconds * 1e6 / iters


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
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
    half a chunk's, see :class:`Chunked`) are given)."""

    def step() -> None:
        coll.call(buffers, rank, nranks, group)

    if budget_s is not None:
        chunked = None
        if chunk_buffers is not None:
            chunk, half = chunk_buffers
            chunked = Chunked(
                lambda: coll.call(chunk, rank, nranks, group),
                max(1, buffers.nbytes // chunk.nbytes),
                lambda: coll.call(half, rank, nranks, group),
            )
        return time_budgeted(
            step, group=group, device=device, iters=iters, warmup=warmup, budget_s=budget_s, chunked=chunked
        )
    return Timed(time_region(step, group=group, device=device, iters=iters, warmup=warmup, graph=graph), iters, False)


def chunk_counts(coll: Collective, nbytes: int, nranks: int, elsize: int, chunks: int) -> tuple[int, int] | None:
    """Element counts of a chunk and of half a chunk of a ``nbytes`` call of ``coll`` split ``chunks`` ways, or
    None where it is timed whole: over more than two ranks (:class:`Chunked`), or when there is nothing to split."""
    if nranks > 2 or chunks <= 1:
        return None
    chunk = coll.count_for_bytes(nbytes // chunks, elsize, nranks)
    half = coll.count_for_bytes(coll.bytes_for_count(chunk, elsize, nranks) // 2, elsize, nranks)
    return (chunk, half) if half > 0 else None


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

    With ``budget_s``, a call that does not fit is measured over ``chunks`` smaller calls of a ``chunks``-th of
    the bytes each where that can be trusted (two ranks, :func:`chunk_counts`), else over the whole calls that
    fit (:func:`time_budgeted`)."""
    count = coll.count_for_bytes(nbytes, elsize, nranks)
    real_bytes = coll.bytes_for_count(count, elsize, nranks)
    buffers = make_buffers(coll, count, real_bytes, rank, nranks, dtype, device)
    chunk_buffers = None
    counts = chunk_counts(coll, real_bytes, nranks, elsize, chunks) if budget_s is not None else None
    if counts is not None:
        chunk_buffers = (
            make_buffers(coll, counts[0], coll.bytes_for_count(counts[0], elsize, nranks), rank, nranks, dtype, device),
            make_buffers(coll, counts[1], coll.bytes_for_count(counts[1], elsize, nranks), rank, nranks, dtype, device),
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
