"""Collectives as data: one small frozen definition each, and one registry.

Each definition carries nccl-tests' byte/element arithmetic and bus-bandwidth factor, so numbers compare
one-to-one with nccl-tests (DESIGN.md, "Units and formulas"), plus how to fill buffers with deterministic
per-rank data, what the result must be, and how to issue the call. ``bench.measure.timing`` times any of them and
knows none of them.

Sizes follow nccl-tests: ``bytes`` (S) is the size of the whole buffer the collective moves, ``count`` the
element count nccl-tests prints — the whole buffer for all_reduce/broadcast/reduce/sendrecv, the per-rank
part for all_gather/reduce_scatter, the per-peer chunk for alltoall. S is rounded down so that it divides
evenly, as nccl-tests does.

Importing this module does not import torch; the buffers and calls import it lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.errors import UserError
from bench.measure.busbw import BUSBW_FACTOR

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Dtype:
    """An element type as nccl-tests names it (``-d``)."""

    name: str
    torch_name: str
    size: int
    floating: bool


DTYPES: dict[str, Dtype] = {
    d.name: d
    for d in (
        Dtype("int8", "int8", 1, False),
        Dtype("uint8", "uint8", 1, False),
        Dtype("int32", "int32", 4, False),
        Dtype("int64", "int64", 8, False),
        Dtype("half", "float16", 2, True),
        Dtype("bfloat16", "bfloat16", 2, True),
        Dtype("float", "float32", 4, True),
        Dtype("double", "float64", 8, True),
    )
}
_DTYPE_ALIASES = {"float16": "half", "fp16": "half", "bf16": "bfloat16", "float32": "float", "fp32": "float",
                  "float64": "double", "fp64": "double", "int": "int32", "char": "int8"}  # fmt: skip


def get_dtype(name: str) -> Dtype:
    """The Dtype for an nccl-tests or torch name; UserError on anything else."""
    key = _DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPES:
        raise UserError(f"unknown dtype {name!r}: choose one of {', '.join(DTYPES)} (-d/--dtype)")
    return DTYPES[key]


@dataclass(frozen=True)
class Buffers:
    """The tensors one rank uses for one size."""

    send: torch.Tensor
    recv: torch.Tensor
    count: int
    """The element count nccl-tests prints for this size."""
    nbytes: int
    """S after rounding: the bytes algbw divides by."""


@dataclass(frozen=True)
class Collective:
    """One collective, as data."""

    name: str
    busbw_factor: Callable[[int], float]
    """n ranks -> busbw/algbw (nccl-tests' factor)."""
    count_for_bytes: Callable[[int, int, int], int]
    """(requested bytes S, element size, n ranks) -> the count nccl-tests prints."""
    bytes_for_count: Callable[[int, int, int], int]
    """(count, element size, n ranks) -> S, the bytes algbw divides by."""
    buffer_counts: Callable[[int, int], tuple[int, int]]
    """(count, n ranks) -> (send elements, recv elements) per rank."""
    redop: str
    """What nccl-tests prints in the redop column ("sum" or "none")."""
    root: int
    """nccl-tests' root column: 0 for rooted collectives, -1 otherwise."""
    placement: str
    """Where the result lands: torch's all_reduce and broadcast work in place."""
    call: Callable[[Buffers, int, int, Any], None]
    """(buffers, rank, n ranks, process group) -> issue the collective and wait."""
    expected: Callable[[int, int, int, Any], torch.Tensor]
    """(rank, n ranks, count, torch dtype) -> what recv must hold afterwards (on CPU)."""
    result: Callable[[Buffers], torch.Tensor] = lambda b: b.recv
    """Which tensor holds the result."""

    def sizes(self, nbytes: int, dtype: Dtype, nranks: int) -> tuple[int, int]:
        """(count, S) for a requested size, rounded as nccl-tests rounds it."""
        count = self.count_for_bytes(nbytes, dtype.size, nranks)
        return count, self.bytes_for_count(count, dtype.size, nranks)


# --- deterministic data --------------------------------------------------------------------------------
# Rank r's element i is (r + i) % 4: small integers, exact in every dtype (bfloat16 included) until a sum
# passes 256, and different on every rank and at every index, so a misplaced chunk is a wrong element.
_PERIOD = 4


def pattern(rank: int, count: int, dtype: Any, offset: int = 0) -> torch.Tensor:
    """Rank ``rank``'s send data: ``(rank + offset + i) % 4`` for i in 0..count-1."""
    import torch

    return ((torch.arange(count, dtype=torch.int64) + rank + offset) % _PERIOD).to(dtype)


def _sum_over_ranks(nranks: int, count: int, dtype: Any) -> torch.Tensor:
    # sum_r ((r + i) % 4): whole cycles of 0+1+2+3 = 6, plus the partial cycle starting at i.
    import torch

    idx = torch.arange(count, dtype=torch.int64)
    full, rem = divmod(nranks, _PERIOD)
    total = torch.full((count,), 6 * full, dtype=torch.int64)
    for j in range(rem):
        total += (idx + j) % _PERIOD
    return total.to(dtype)


def _gathered(nranks: int, count: int, dtype: Any) -> torch.Tensor:
    import torch

    return torch.cat([pattern(r, count, dtype) for r in range(nranks)])


def _exchanged(rank: int, nranks: int, count: int, dtype: Any) -> torch.Tensor:
    # alltoall: chunk j of rank r's recv is chunk r of rank j's send.
    import torch

    return torch.cat([pattern(j, count * nranks, dtype)[rank * count : (rank + 1) * count] for j in range(nranks)])


# --- the calls -----------------------------------------------------------------------------------------
def _all_reduce(b: Buffers, rank: int, nranks: int, group: Any) -> None:
    import torch.distributed as dist

    dist.all_reduce(b.recv, op=dist.ReduceOp.SUM, group=group)


def _all_gather(b: Buffers, rank: int, nranks: int, group: Any) -> None:
    import torch.distributed as dist

    # torch 2.13 renamed all_gather_into_tensor; older system torches (Lambda Stack) only have the old name.
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(b.recv, b.send, group=group)


def _reduce_scatter(b: Buffers, rank: int, nranks: int, group: Any) -> None:
    import torch.distributed as dist

    scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    scatter(b.recv, b.send, op=dist.ReduceOp.SUM, group=group)


def _alltoall(b: Buffers, rank: int, nranks: int, group: Any) -> None:
    import torch.distributed as dist

    dist.all_to_all_single(b.recv, b.send, group=group)


def _broadcast(b: Buffers, rank: int, nranks: int, group: Any) -> None:
    import torch.distributed as dist

    dist.broadcast(b.recv, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)


def _sendrecv(b: Buffers, rank: int, nranks: int, group: Any) -> None:
    # nccl-tests' ring exchange: send to r+1, receive from r-1, both in flight at once.
    import torch.distributed as dist

    if nranks == 1:
        # One rank sends to itself; NCCL does this as a device copy, and torch refuses p2p to self.
        b.recv.copy_(b.send)
        return
    peer = (lambda r: dist.get_global_rank(group, r)) if group is not None else (lambda r: r)
    ops = [
        dist.P2POp(dist.isend, b.send, peer((rank + 1) % nranks), group),
        dist.P2POp(dist.irecv, b.recv, peer((rank - 1) % nranks), group),
    ]
    for work in dist.batch_isend_irecv(ops):
        work.wait()


def _whole(nbytes: int, elsize: int, nranks: int) -> int:
    return nbytes // elsize


def _whole_bytes(count: int, elsize: int, nranks: int) -> int:
    return count * elsize


def _per_rank(nbytes: int, elsize: int, nranks: int) -> int:
    return nbytes // (elsize * nranks)


def _times_ranks(count: int, elsize: int, nranks: int) -> int:
    return count * elsize * nranks


REGISTRY: dict[str, Collective] = {
    c.name: c
    for c in (
        Collective(
            name="all_reduce",
            busbw_factor=BUSBW_FACTOR["all_reduce"],
            count_for_bytes=_whole,
            bytes_for_count=_whole_bytes,
            buffer_counts=lambda count, n: (count, count),
            redop="sum",
            root=-1,
            placement="in-place",
            call=_all_reduce,
            expected=lambda rank, n, count, dt: _sum_over_ranks(n, count, dt),
        ),
        Collective(
            name="all_gather",
            busbw_factor=BUSBW_FACTOR["all_gather"],
            count_for_bytes=_per_rank,
            bytes_for_count=_times_ranks,
            buffer_counts=lambda count, n: (count, count * n),
            redop="none",
            root=-1,
            placement="out-of-place",
            call=_all_gather,
            expected=lambda rank, n, count, dt: _gathered(n, count, dt),
        ),
        Collective(
            name="reduce_scatter",
            busbw_factor=BUSBW_FACTOR["reduce_scatter"],
            count_for_bytes=_per_rank,
            bytes_for_count=_times_ranks,
            buffer_counts=lambda count, n: (count * n, count),
            redop="sum",
            root=-1,
            placement="out-of-place",
            call=_reduce_scatter,
            # send on rank r is pattern(r, count*n); chunk k of it is pattern(r, count, offset=k*count).
            expected=lambda rank, n, count, dt: _sum_over_ranks(n, count * n, dt)[rank * count : (rank + 1) * count],
        ),
        Collective(
            name="alltoall",
            busbw_factor=BUSBW_FACTOR["alltoall"],
            count_for_bytes=_per_rank,
            bytes_for_count=_times_ranks,
            buffer_counts=lambda count, n: (count * n, count * n),
            redop="none",
            root=-1,
            placement="out-of-place",
            call=_alltoall,
            # chunk j of recv on rank r is chunk r of rank j's send.
            expected=lambda rank, n, count, dt: _exchanged(rank, n, count, dt),
        ),
        Collective(
            name="broadcast",
            busbw_factor=BUSBW_FACTOR["broadcast"],
            count_for_bytes=_whole,
            bytes_for_count=_whole_bytes,
            buffer_counts=lambda count, n: (count, count),
            redop="none",
            root=0,
            placement="in-place",
            call=_broadcast,
            expected=lambda rank, n, count, dt: pattern(0, count, dt),
        ),
        Collective(
            name="sendrecv",
            busbw_factor=BUSBW_FACTOR["sendrecv"],
            count_for_bytes=_whole,
            bytes_for_count=_whole_bytes,
            buffer_counts=lambda count, n: (count, count),
            redop="none",
            root=-1,
            placement="out-of-place",
            call=_sendrecv,
            expected=lambda rank, n, count, dt: pattern((rank - 1) % n, count, dt),
        ),
    )
}

DEFAULT_COLLECTIVES = ("all_reduce", "all_gather", "sendrecv")


def get_collective(name: str) -> Collective:
    """The registered collective; an unknown name is a usage error, never a silent fallback."""
    key = name.strip().lower().removesuffix("_perf")
    if key not in REGISTRY:
        raise UserError(f"unknown collective {name!r}: choose from {', '.join(REGISTRY)}")
    return REGISTRY[key]


def make_buffers(coll: Collective, count: int, nbytes: int, rank: int, nranks: int, dtype: Any, device: Any) -> Buffers:
    """Fresh buffers holding rank ``rank``'s deterministic data (on ``device``)."""
    import torch

    send_n, recv_n = coll.buffer_counts(count, nranks)
    send = pattern(rank, send_n, dtype).to(device)
    if coll.placement == "in-place":
        # torch's all_reduce and broadcast overwrite their one buffer, so send and recv are the same tensor.
        return Buffers(send=send, recv=send, count=count, nbytes=nbytes)
    recv = torch.full((recv_n,), -1, dtype=dtype, device=device)
    return Buffers(send=send, recv=recv, count=count, nbytes=nbytes)


def count_wrong(coll: Collective, buffers: Buffers, rank: int, nranks: int) -> int:
    """Elements of the result that differ from the expected values (nccl-tests' #wrong)."""
    import torch

    got = coll.result(buffers).detach().to("cpu")
    want = coll.expected(rank, nranks, buffers.count, got.dtype)
    if got.shape != want.shape:
        return int(max(got.numel(), want.numel()))
    if not got.is_floating_point():
        return int((got != want).sum().item())
    # Sums of small integers are exact until they outgrow the mantissa (bfloat16 past 256); beyond that
    # a different reduction order may round differently, which is not an error. Allow the rounding of
    # one add per tree level, as nccl-tests' tolerance does.
    levels = max(1, (nranks - 1).bit_length())
    rel = torch.finfo(got.dtype).eps * levels
    got64, want64 = got.to(torch.float64), want.to(torch.float64)
    return int(((got64 - want64).abs() > rel * want64.abs()).sum().item())
