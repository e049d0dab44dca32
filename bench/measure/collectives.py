"""Collectives as data: one small frozen definition each, and one registry.

Each definition carries nccl-tests' byte/element arithmetic and bus-bandwidth factor, so numbers compare
one-to-one with nccl-tests (docs/design.md, "Units and formulas"), plus how to fill buffers with deterministic
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

from bench.busbw import BUSBW_FACTOR
from bench.exits import UserError

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup


@dataclass(frozen=True)
class Dtype:
    """An element type as nccl-tests names it (``-d``)."""

    name: str
    torch_name: str
    size: int
    floating: bool
    exact_max: int
    """The largest M such that every integer 0..M is exactly representable: 2^precision for floats
    (bfloat16 has 8 significant bits, so 256), the type's maximum for integers."""
    unsigned: bool = False

    @property
    def unwritten(self) -> int:
        """The value a result buffer starts with, so that an element the collective never wrote is counted
        wrong: -1 where the type holds it (every data value is >= 0), else the type's maximum, which the data
        then never use (:attr:`data_max`). It can never equal a value the check expects."""
        return self.exact_max if self.unsigned else -1

    @property
    def data_max(self) -> int:
        """The largest value data and exact sums may take: ``exact_max``, less one where that is the marker."""
        return self.exact_max - 1 if self.unwritten == self.exact_max else self.exact_max


DTYPES: dict[str, Dtype] = {
    d.name: d
    for d in (
        Dtype("int8", "int8", 1, False, 127),
        Dtype("uint8", "uint8", 1, False, 255, unsigned=True),
        Dtype("int32", "int32", 4, False, 2**31 - 1),
        Dtype("int64", "int64", 8, False, 2**63 - 1),
        Dtype("half", "float16", 2, True, 2**11),
        Dtype("bfloat16", "bfloat16", 2, True, 2**8),
        Dtype("float", "float32", 4, True, 2**24),
        Dtype("double", "float64", 8, True, 2**53),
    )
}
_DTYPE_ALIASES = {
    "float16": "half",
    "fp16": "half",
    "bf16": "bfloat16",
    "float32": "float",
    "fp32": "float",
    "float64": "double",
    "fp64": "double",
    "int": "int32",
    "char": "int8",
}


def get_dtype(name: str) -> Dtype:
    """The Dtype for an nccl-tests or torch name; UserError on anything else."""
    key = _DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPES:
        raise UserError(f"-d/--dtype: unknown dtype {name!r}: choose one of {', '.join(DTYPES)}")
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
    pattern: DataPattern | None = None
    """The data every rank filled in; the check recomputes the expected result from it."""


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
    expected: Callable[[int, int, DataPattern, torch.Tensor], torch.Tensor]
    """(rank, count, data pattern, result indices) -> what the result must hold there (int64, exact; on the
    indices' device, so the check never copies the result to the host)."""
    result: Callable[[Buffers], torch.Tensor] = lambda b: b.recv
    """Which tensor holds the result."""

    def sizes(self, nbytes: int, dtype: Dtype, nranks: int) -> tuple[int, int]:
        """(count, S) for a requested size, rounded as nccl-tests rounds it."""
        count = self.count_for_bytes(nbytes, dtype.size, nranks)
        return count, self.bytes_for_count(count, dtype.size, nranks)


# --- deterministic data, made and checked on the device --------------------------------------------------
# Sums are exact by construction, as in nccl-tests (verifiable/verifiable.cu): every rank contributes a
# non-negative integer and the contributions to any one element add up to at most the dtype's exact-integer
# limit (256 for bfloat16, 2048 for half). Every partial sum, in whatever order a ring, a tree, NVLS or SHARP
# adds them, is then an integer in 0..limit and so exactly representable: results are compared with
# tolerance 0. Rank r's element i is f((i + r) mod period) with f(u) = u below ``levels`` and 0 above, so
# the data differ per rank and per index (a misplaced chunk is a wrong element) and the sum over ranks has a
# closed form the check evaluates on the device, chunk by chunk.

CHUNK_ELEMENTS = 1 << 18
"""Elements generated or checked per step on the host (CPU ranks): a few MiB of int64 scratch."""
CUDA_CHUNK_ELEMENTS = 1 << 22
"""Per step on a GPU: larger, so a 16G check is thousands of kernel launches, not millions."""
_SCRATCH_VECTORS = 8  # int64 vectors of one chunk alive at once in fill or check, with room to spare


def chunk_elements(device: torch.device | str) -> int:
    """Elements per fill/check step on ``device``."""
    return CUDA_CHUNK_ELEMENTS if getattr(device, "type", str(device)) == "cuda" else CHUNK_ELEMENTS


def scratch_bytes(device: torch.device | str) -> int:
    """Upper bound of the memory the fill and the check use on ``device`` beyond the buffers."""
    return _SCRATCH_VECTORS * 8 * chunk_elements(device)


SCRATCH_BYTES = _SCRATCH_VECTORS * 8 * CHUNK_ELEMENTS
"""scratch_bytes on the host."""
_LEVELS_CAP = 1 << 20  # keeps every closed-form prefix sum far inside int64


@dataclass(frozen=True)
class DataPattern:
    """The values every rank of an ``nranks`` communicator sends: f((i + r) mod period), f(u) = u if u < levels."""

    levels: int
    period: int
    nranks: int

    def __post_init__(self) -> None:
        if self.levels < 1 or self.period < max(self.levels, self.nranks):
            raise ValueError(f"bad data pattern {self}: needs levels >= 1 and period >= max(levels, nranks)")

    @classmethod
    def for_sum(cls, nranks: int, limit: int) -> DataPattern:
        """The most varied pattern whose sum over ``nranks`` ranks never exceeds ``limit`` at any element."""
        lo, hi = 1, min(limit + 1, _LEVELS_CAP)
        while lo < hi:  # the largest levels whose worst element sum fits
            mid = (lo + hi + 1) // 2
            if worst_sum(mid, nranks) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return cls(lo, max(lo, nranks), nranks)

    @classmethod
    def for_copy(cls, nranks: int, limit: int) -> DataPattern:
        """For collectives that only move data: any exactly representable value will do."""
        levels = min(limit + 1, _LEVELS_CAP)
        return cls(levels, max(levels, nranks), nranks)

    def values(self, rank: torch.Tensor | int, index: torch.Tensor) -> torch.Tensor:
        """Rank ``rank``'s elements at ``index`` (int64, on ``index``'s device; ``rank`` may be a tensor)."""
        u = (index + rank).remainder_(self.period)
        return u.masked_fill_(u >= self.levels, 0)

    def sums(self, index: torch.Tensor) -> torch.Tensor:
        """The sum over all ranks at ``index`` (int64, same device): what every exact reduction must give.

        Since period >= nranks, ranks 0..n-1 read residues s..s+n-1 of one period (s = i mod period),
        wrapping at most once; G(t) = sum of f(u) for u < t = k(k-1)/2 with k = min(t, levels).
        """
        start = index.remainder(self.period)
        total = self._prefix((start + self.nranks).clamp_(max=self.period))
        total.sub_(self._prefix(start))
        wrapped = start.add_(self.nranks - self.period).clamp_(min=0)  # start is not needed any more
        return total.add_(self._prefix(wrapped))

    def _prefix(self, t: torch.Tensor) -> torch.Tensor:
        k = t.clamp(max=self.levels)
        return k.mul_(k - 1).div_(2, rounding_mode="floor")


def worst_sum(levels: int, nranks: int) -> int:
    """The largest sum over ranks at any element for ``levels``: the top min(n, levels) values of f."""
    k = min(nranks, levels)
    return k * (2 * levels - k - 1) // 2


def data_pattern(coll: Collective, dtype: Dtype, nranks: int) -> DataPattern:
    """The pattern a collective uses: sum-bounded for reductions, merely exact for the others."""
    if coll.redop == "sum":
        return DataPattern.for_sum(nranks, dtype.data_max)
    return DataPattern.for_copy(nranks, dtype.data_max)


def pattern(
    rank: int,
    count: int,
    dtype: torch.dtype,
    nranks: int = 1,
    *,
    reduces: bool = True,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Rank ``rank``'s send data as one tensor (for tests and small buffers; runs fill in chunks)."""
    import torch

    spec = dtype_of(dtype)
    pat = DataPattern.for_sum(nranks, spec.data_max) if reduces else DataPattern.for_copy(nranks, spec.data_max)
    return pat.values(rank, torch.arange(count, dtype=torch.int64, device=device)).to(dtype)


def dtype_of(tdtype: torch.dtype) -> Dtype:
    """The Dtype of a torch dtype (``torch.bfloat16`` -> bfloat16)."""
    name = str(tdtype).removeprefix("torch.")
    for d in DTYPES.values():
        if d.torch_name == name:
            return d
    raise UserError(f"dtype {tdtype} has no nccl-tests name: choose one of {', '.join(DTYPES)} (-d/--dtype)")


def fill(tensor: torch.Tensor, pat: DataPattern, rank: int) -> None:
    """Write rank ``rank``'s data into ``tensor`` on its own device, CHUNK_ELEMENTS at a time."""
    import torch

    flat, step = tensor.view(-1), chunk_elements(tensor.device)
    for start in range(0, flat.numel(), step):
        stop = min(start + step, flat.numel())
        index = torch.arange(start, stop, dtype=torch.int64, device=tensor.device)
        flat[start:stop].copy_(pat.values(rank, index))


def _gathered(rank: int, count: int, pat: DataPattern, index: torch.Tensor) -> torch.Tensor:
    # all_gather: element j of recv is element j mod count of rank j // count.
    return pat.values(index // count, index.remainder(count))


def _exchanged(rank: int, count: int, pat: DataPattern, index: torch.Tensor) -> torch.Tensor:
    # alltoall: chunk j of rank r's recv is chunk r of rank j's send.
    return pat.values(index // count, index.remainder(count) + rank * count)


# --- the calls -----------------------------------------------------------------------------------------
def _all_reduce(b: Buffers, rank: int, nranks: int, group: ProcessGroup | None) -> None:
    import torch.distributed as dist

    dist.all_reduce(b.recv, op=dist.ReduceOp.SUM, group=group)


def _all_gather(b: Buffers, rank: int, nranks: int, group: ProcessGroup | None) -> None:
    import torch.distributed as dist

    # torch 2.13 renamed all_gather_into_tensor; older system torches (Lambda Stack) only have the old name.
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(b.recv, b.send, group=group)


def _reduce_scatter(b: Buffers, rank: int, nranks: int, group: ProcessGroup | None) -> None:
    import torch.distributed as dist

    scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    scatter(b.recv, b.send, op=dist.ReduceOp.SUM, group=group)


def _alltoall(b: Buffers, rank: int, nranks: int, group: ProcessGroup | None) -> None:
    import torch.distributed as dist

    dist.all_to_all_single(b.recv, b.send, group=group)


def _broadcast(b: Buffers, rank: int, nranks: int, group: ProcessGroup | None) -> None:
    import torch.distributed as dist

    dist.broadcast(b.recv, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)


def _sendrecv(b: Buffers, rank: int, nranks: int, group: ProcessGroup | None) -> None:
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
            expected=lambda rank, count, pat, index: pat.sums(index),
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
            expected=_gathered,
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
            # rank r keeps chunk r of the sum over ranks of their whole send buffers.
            expected=lambda rank, count, pat, index: pat.sums(index + rank * count),
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
            expected=_exchanged,
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
            expected=lambda rank, count, pat, index: pat.values(0, index),
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
            expected=lambda rank, count, pat, index: pat.values((rank - 1) % pat.nranks, index),
        ),
    )
}

DEFAULT_COLLECTIVES = ("all_reduce", "all_gather", "sendrecv")


def get_collective(name: str) -> Collective:
    """The registered collective; an unknown name is a usage error, never a silent fallback."""
    key = name.strip().lower().removesuffix("_perf")
    if key not in REGISTRY:
        raise UserError(f"--collectives: unknown collective {name!r}: choose from {', '.join(REGISTRY)}")
    return REGISTRY[key]


def make_buffers(
    coll: Collective, count: int, nbytes: int, rank: int, nranks: int, dtype: torch.dtype, device: torch.device
) -> Buffers:
    """Fresh buffers holding rank ``rank``'s deterministic data, made on ``device`` itself.

    Nothing of buffer size is built on the host: on a GPU the host's share is a few scalars per chunk.
    """
    import torch

    pat = data_pattern(coll, dtype_of(dtype), nranks)
    send_n, recv_n = coll.buffer_counts(count, nranks)
    send = torch.empty((send_n,), dtype=dtype, device=device)
    fill(send, pat, rank)
    if coll.placement == "in-place":
        # torch's all_reduce and broadcast overwrite their one buffer, so send and recv are the same tensor.
        return Buffers(send=send, recv=send, count=count, nbytes=nbytes, pattern=pat)
    # A value no correct result holds marks what the collective did not write; the check then counts it.
    recv = torch.full((recv_n,), dtype_of(dtype).unwritten, dtype=dtype, device=device)
    return Buffers(send=send, recv=recv, count=count, nbytes=nbytes, pattern=pat)


def count_wrong(coll: Collective, buffers: Buffers, rank: int, nranks: int) -> int:
    """Elements of the result that differ from the expected values (nccl-tests' #wrong), tolerance 0.

    Checked on the result's own device, a chunk at a time; the count stays on the device until the
    end, so the host sees one number, not the buffer.
    """
    import torch

    got = coll.result(buffers).detach().view(-1)
    pat = buffers.pattern or data_pattern(coll, dtype_of(got.dtype), nranks)
    want_n = coll.buffer_counts(buffers.count, nranks)[0 if coll.placement == "in-place" else 1]
    if got.numel() != want_n:
        return int(max(got.numel(), want_n))
    wrong, step = torch.zeros((), dtype=torch.int64, device=got.device), chunk_elements(got.device)
    for start in range(0, got.numel(), step):
        stop = min(start + step, got.numel())
        index = torch.arange(start, stop, dtype=torch.int64, device=got.device)
        want = coll.expected(rank, buffers.count, pat, index).to(got.dtype)
        wrong += (got[start:stop] != want).sum()
    return int(wrong.item())
