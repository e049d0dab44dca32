"""One collective at one size across a communicator: its buffers, the timing loop as a
:class:`~bench.measure.timing.Loop` says, the check of one clean call, and every rank's time gathered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.measure import device as device_ops
from bench.measure.budgeted import Chunked, time_steps
from bench.measure.collectives import Buffers, Collective, count_wrong, make_buffers
from bench.measure.timing import Loop, Timed, reduce_times

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


def time_loop(
    coll: Collective,
    buffers: Buffers,
    rank: int,
    nranks: int,
    group: ProcessGroup | None,
    loop: Loop,
    *,
    device: torch.device,
    chunk_buffers: tuple[Buffers, Buffers] | None = None,
) -> Timed:
    """This rank's mean time per call of ``coll``, timed as ``loop`` says (``bench.measure.budgeted.time_steps``),
    in chunks when ``chunk_buffers`` (a chunk's buffers and half a chunk's, see :class:`Chunked`) are given to a
    budgeted loop."""

    def step() -> None:
        coll.call(buffers, rank, nranks, group)

    chunked = None
    if chunk_buffers is not None:
        chunk, half = chunk_buffers
        chunked = Chunked(
            lambda: coll.call(chunk, rank, nranks, group),
            max(1, buffers.nbytes // chunk.nbytes),
            lambda: coll.call(half, rank, nranks, group),
        )
    return time_steps(step, loop, group=group, device=device, chunked=chunked)


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


def measure(
    coll: Collective,
    nbytes: int,
    rank: int,
    nranks: int,
    group: ProcessGroup | None,
    loop: Loop,
    *,
    dtype: torch.dtype,
    elsize: int,
    device: torch.device,
    check: bool,
    chunks: int = 1,
) -> SizeResult:
    """Time ``coll`` at ``nbytes`` in ``group`` as ``loop`` says and, with ``check``, verify it; every rank returns
    the same.

    With a budget in ``loop``, a call that does not fit is measured over ``chunks`` smaller calls of a
    ``chunks``-th of the bytes each where that can be trusted (two ranks, :func:`chunk_counts`), else over the
    whole calls that fit (``bench.measure.budgeted.time_budgeted``)."""
    count = coll.count_for_bytes(nbytes, elsize, nranks)
    real_bytes = coll.bytes_for_count(count, elsize, nranks)
    buffers = make_buffers(coll, count, real_bytes, rank, nranks, dtype, device)
    chunk_buffers = None
    counts = chunk_counts(coll, real_bytes, nranks, elsize, chunks) if loop.budget_s is not None else None
    if counts is not None:
        chunk_buffers = (
            make_buffers(coll, counts[0], coll.bytes_for_count(counts[0], elsize, nranks), rank, nranks, dtype, device),
            make_buffers(coll, counts[1], coll.bytes_for_count(counts[1], elsize, nranks), rank, nranks, dtype, device),
        )
    timed = time_loop(coll, buffers, rank, nranks, group, loop, device=device, chunk_buffers=chunk_buffers)
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
