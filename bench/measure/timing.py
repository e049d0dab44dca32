"""The one timing loop: any registered collective, any size, any process group.

On CPU (gloo) every call is synchronous: barrier, ``perf_counter``, ``iters`` calls, ``perf_counter``.
On GPU (NCCL) torch enqueues the collective on NCCL's stream and makes the current stream wait for it,
so CUDA events recorded on the current stream before and after the loop bracket exactly the
communication; ``graph=True`` captures the ``iters`` calls in one CUDA graph and replays it, removing the
per-call launch overhead as nccl-tests ``-G`` does.

Each rank times its own loop; ``reduce_times`` gathers every rank's mean so the caller can report the mean
over ranks plus the fastest and slowest rank (the straggler signal), as nccl-tests averages over ranks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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

    @property
    def algbw_GBps(self) -> float:
        return self.nbytes / (self.time_us * 1e-6) / 1e9 if self.time_us > 0 else 0.0


def _loop(coll: Collective, buffers: Buffers, rank: int, nranks: int, group: Any, iters: int) -> None:
    for _ in range(iters):
        coll.call(buffers, rank, nranks, group)


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
) -> float:
    """This rank's mean time per call in microseconds, after ``warmup`` untimed calls."""
    import torch
    import torch.distributed as dist

    _loop(coll, buffers, rank, nranks, group, warmup)
    if getattr(device, "type", "cpu") != "cuda":
        dist.barrier(group=group)
        start = time.perf_counter()
        _loop(coll, buffers, rank, nranks, group, iters)
        return (time.perf_counter() - start) * 1e6 / iters

    torch.cuda.synchronize(device)
    if graph:
        cuda_graph = torch.cuda.CUDAGraph()
        # Capture must run on a side stream; NCCL needs one eager call on it first (done as warm-up).
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            _loop(coll, buffers, rank, nranks, group, 1)
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.cuda.graph(cuda_graph, stream=side):
            _loop(coll, buffers, rank, nranks, group, iters)
        cuda_graph.replay()  # first replay uploads the graph; not timed
        torch.cuda.synchronize(device)
    dist.barrier(group=group)
    torch.cuda.synchronize(device)
    start_ev = torch.cuda.Event(enable_timing=True)
    end_ev = torch.cuda.Event(enable_timing=True)
    start_ev.record()
    if graph:
        cuda_graph.replay()
    else:
        _loop(coll, buffers, rank, nranks, group, iters)
    end_ev.record()
    end_ev.synchronize()
    return start_ev.elapsed_time(end_ev) * 1e3 / iters


def check_once(
    coll: Collective, count: int, nbytes: int, rank: int, nranks: int, group: Any, dtype: Any, device: Any
) -> int:
    """Run the collective once on fresh deterministic data and count this rank's wrong elements.

    Separate from the timed loop because in-place collectives (torch's all_reduce) keep accumulating
    while they are timed; the check needs one clean call.
    """
    buffers = make_buffers(coll, count, nbytes, rank, nranks, dtype, device)
    coll.call(buffers, rank, nranks, group)
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
) -> SizeResult:
    """Time ``coll`` at ``nbytes`` in ``group`` and, with ``check``, verify it; every rank returns the same."""
    count = coll.count_for_bytes(nbytes, elsize, nranks)
    real_bytes = coll.bytes_for_count(count, elsize, nranks)
    buffers = make_buffers(coll, count, real_bytes, rank, nranks, dtype, device)
    my_time = time_loop(coll, buffers, rank, nranks, group, iters=iters, warmup=warmup, device=device, graph=graph)
    del buffers
    my_wrong = check_once(coll, count, real_bytes, rank, nranks, group, dtype, device) if check else 0
    times, wrong = reduce_times(my_time, my_wrong, group, device)
    return SizeResult(
        collective=coll.name,
        nbytes=real_bytes,
        count=count,
        nranks=nranks,
        iters=iters,
        time_us=sum(times) / len(times),
        time_us_min=min(times),
        time_us_max=max(times),
        wrong=wrong if check else None,
    )
