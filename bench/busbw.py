"""nccl-tests' bus-bandwidth factors: the one table every part of railbench uses (DESIGN.md).

busbw = algbw x factor(n), n the ranks in the communicator. The factor makes numbers comparable across
rank counts: it is the fraction of the data each rank must put on the wire for the collective.
"""

from __future__ import annotations

from collections.abc import Callable


def _ring(n: int) -> float:
    return (n - 1) / n


BUSBW_FACTOR: dict[str, Callable[[int], float]] = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": _ring,
    "reduce_scatter": _ring,
    "alltoall": _ring,
    "gather": _ring,
    "scatter": _ring,
    "broadcast": lambda n: 1.0,
    "reduce": lambda n: 1.0,
    "sendrecv": lambda n: 1.0,
}
