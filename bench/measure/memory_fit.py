"""Will the sweep's largest size fit? Each rank asks its device before anything is measured.

A rank holds one collective's send and receive buffers at a time (``bench.measure.size.measure`` frees the timed
buffers before the check makes its own) plus the check's fixed scratch, so the need is the largest size's
buffers plus a fixed reserve. On a GPU the host's share does not grow with the size, so only the device is
asked; CPU ranks hold their buffers in host memory, shared by the ranks of the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.exits import UserError
from bench.measure.collectives import SCRATCH_BYTES, Collective, Dtype, scratch_bytes

if TYPE_CHECKING:
    import torch

NCCL_RESERVE_BYTES = (2 << 30) + scratch_bytes("cuda")
"""Device memory a rank needs beyond its buffers: NCCL and the CUDA context (channel buffers, NVLS, graphs)
and the check's scratch."""
HOST_RESERVE_BYTES = (256 << 20) + SCRATCH_BYTES
"""Host memory a rank needs beyond its buffers (the interpreter and torch are already loaded)."""


def buffer_bytes(coll: Collective, nbytes: int, dtype: Dtype, nranks: int) -> int:
    """Bytes of the send and recv buffers one rank holds for ``coll`` at ``nbytes`` (one buffer in place)."""
    count, _ = coll.sizes(nbytes, dtype, nranks)
    send_n, recv_n = coll.buffer_counts(count, nranks)
    return (send_n if coll.placement == "in-place" else send_n + recv_n) * dtype.size


def rank_need_bytes(colls: Sequence[Collective], nbytes: int, dtype: Dtype, nranks: int, reserve: int) -> int:
    """One rank's peak memory at ``nbytes``: its largest buffers and ``reserve``."""
    return max(buffer_bytes(c, nbytes, dtype, nranks) for c in colls) + reserve


def largest_fitting(
    colls: Sequence[Collective], sizes: Sequence[int], dtype: Dtype, nranks: int, free_bytes: int, reserve: int
) -> int:
    """The largest of ``sizes`` whose buffers fit in ``free_bytes`` (0 when none does)."""
    fitting = [s for s in sizes if rank_need_bytes(colls, s, dtype, nranks, reserve) <= free_bytes]
    return max(fitting, default=0)


def check_sizes_fit(
    colls: Sequence[Collective], sizes: Sequence[int], dtype: Dtype, nranks: int, largest_fit: int, where: str
) -> None:
    """UserError naming the largest size that fits when the sweep's largest size does not.

    ``largest_fit`` is the smallest over all ranks of :func:`largest_fitting`, so every rank agrees.
    """
    from bench.units import format_size

    top = max(sizes)
    if largest_fit >= top:
        return
    if largest_fit == 0:
        raise UserError(
            f"not even -b {format_size(min(sizes))} fits in {where} for {dtype.name} over {nranks} ranks: "
            "free memory on the node (stop other jobs) or lower -b"
        )
    raise UserError(
        f"-e {format_size(top)} does not fit in {where} for {dtype.name} over {nranks} ranks: the largest size "
        f"that fits is {format_size(largest_fit)}; rerun with -e {format_size(largest_fit)}"
    )


def free_memory_bytes(device: torch.device, ranks_sharing: int) -> tuple[int, int, str]:
    """(free bytes for this rank's buffers, reserve, where) on ``device``.

    The one device-memory query of the data path: CUDA's free memory of this rank's GPU, or on CPU the
    host's available memory split between the ranks of this node, which share it.
    """
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), NCCL_RESERVE_BYTES, f"{device} memory"
    return host_available_bytes() // max(1, ranks_sharing), HOST_RESERVE_BYTES, "host memory"


def host_available_bytes() -> int:
    """MemAvailable (free plus reclaimable), else the free pages sysconf reports."""
    import os

    from bench.runtime.launch import mem_available_bytes

    available = mem_available_bytes()
    return available if available is not None else os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
