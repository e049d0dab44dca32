"""The bus bandwidth a healthy rail group's collective must reach at its node count.

See docs/design.md, "Rail targets at any node count".

A rail group is one GPU per node, so every step of a ring crosses the network, and every step pays NCCL's
per-step latency on top of its share of the bytes. NCCL's own cost model (``src/graph/tuning.cc``,
``ncclTopoTuneModel``) prices a ring call at ``baseLatency + steps x netLatency`` (x 1.4 for a ring all_reduce on
the Simple protocol: the "plateau effect of ring") plus its bytes over the bandwidth. With 2(n-1) steps for an
all_reduce, 64 nodes add about 2.5 ms to the 10.6 ms a 256 MiB all_reduce spends on bytes at 400 Gb/s: a healthy
rail reads about 81% of line however good its links are, and a fixed 90%-of-line mark fails it.

So the mark is on the bandwidth term: the rail passes when its call is no slower than its bytes at
``pass_fraction`` of line plus NCCL's latency for its node count. A rail whose links deliver less than
``pass_fraction`` of line still fails, at any node count, because the latency added is the same on both sides.

The ring on Simple is the dearest price NCCL pays: it runs each call on the cheapest algorithm and protocol of
its table, and past a few dozen nodes that is LL128 or a tree. There the call is faster than the mark allows for,
so the target is lenient: links somewhat under ``pass_fraction`` of line can pass. Pricing NCCL's pick would need
its per-architecture, per-host and per-channel constants; the output says instead where the target may be
lenient and by how much at most (:func:`lenient_line`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.measure.collectives import get_collective
from bench.rails.diagnosis.rails_outcome import RailResult
from bench.rundir.findings import Shortfall
from bench.units import format_size

BASE_LATENCY_US = 8.4
"""``baseLatencies[NCCL_ALGO_RING][NCCL_PROTO_SIMPLE]`` in ``src/graph/tuning.cc``."""
NET_STEP_LATENCY_US = 14.0
"""``hwLatencies[NCCL_HW_NET][NCCL_ALGO_TREE][NCCL_PROTO_SIMPLE]``: with one GPU per node NCCL charges every
network step the tree's network latency ("latencies are fully exposed")."""
RING_PLATEAU = 1.4
"""A ring all_reduce on Simple pays 1.4 times its latency (compute capability 8.0 and up)."""
CHEAPER_BANDWIDTH = 0.92
"""Every other entry of NCCL's table gives up at least 8% of a ring on Simple's bandwidth for its lower latency
(``ncclTopoTuneModel``): a ring on LL128 runs at 0.92 of it, a tree at 0.92 of the link per direction (and 120/128
of that on LL128, times ``treeCorrectionFactor`` <= 1), LL at half, PAT at 0.75, the per-channel caps only lower
them. So NCCL can leave the ring on Simple only where its latency is worth more than 1/0.92 - 1 of the bytes."""


def network_steps(collective: str, nnodes: int) -> int:
    """Ring steps of one call with one GPU per node: 2(n-1) for an all_reduce, n-1 for a gather or scatter."""
    return 2 * (nnodes - 1) if collective == "all_reduce" else max(0, nnodes - 1)


def latency_us(collective: str, nnodes: int) -> float:
    """NCCL's modelled fixed cost of one ring call over ``nnodes`` nodes of one GPU each (0 for one node)."""
    if nnodes < 2:
        return 0.0
    latency = BASE_LATENCY_US + network_steps(collective, nnodes) * NET_STEP_LATENCY_US
    return latency * RING_PLATEAU if collective == "all_reduce" else latency


def needed_busbw_Gbps(collective: str, nnodes: int, nbytes: int, line_mark_Gbps: float) -> float:
    """The bus bandwidth a call of ``nbytes`` reads at when its bytes move at ``line_mark_Gbps`` and it pays
    NCCL's latency for ``nnodes``: the mark a rail group's measured busbw is judged against."""
    if line_mark_Gbps <= 0 or nbytes <= 0:
        return line_mark_Gbps
    bus_bits = nbytes * get_collective(collective).busbw_factor(nnodes) * 8
    if bus_bits <= 0:
        return line_mark_Gbps
    seconds = bus_bits / (line_mark_Gbps * 1e9) + latency_us(collective, nnodes) * 1e-6
    return bus_bits / seconds / 1e9


def may_run_cheaper(collective: str, nnodes: int, nbytes: int, line_Gbps: float) -> bool:
    """Whether NCCL's tuning may run this call on something cheaper than a ring on Simple: only where the ring's
    latency exceeds what :data:`CHEAPER_BANDWIDTH` costs the bytes at line rate (a necessary condition: where
    this is False, NCCL runs the ring on Simple and the mark prices what NCCL pays)."""
    bus_bits = nbytes * get_collective(collective).busbw_factor(nnodes) * 8
    if nnodes < 2 or line_Gbps <= 0 or bus_bits <= 0:
        return False
    bytes_s = bus_bits / (line_Gbps * 1e9)
    return latency_us(collective, nnodes) * 1e-6 > bytes_s * (1 / CHEAPER_BANDWIDTH - 1)


def lenient_line(collective: str, nnodes: int, nbytes: int, line_Gbps: float, pass_fraction: float) -> str | None:
    """The one line the output says where the mark of this rail-group call may be lenient (see the module
    docstring), with the mark and how far under ``pass_fraction`` of line it lets links pass; None elsewhere."""
    if not may_run_cheaper(collective, nnodes, nbytes, line_Gbps):
        return None
    needed = needed_busbw_Gbps(collective, nnodes, nbytes, pass_fraction * line_Gbps)
    share, wanted = 100 * needed / line_Gbps, 100 * pass_fraction
    return (
        f"# rail target: {collective} of {format_size(nbytes)} over {nnodes} nodes needs {needed:.3g} Gb/s, "
        f"{share:.0f}% of line ({wanted:.0f}% plus NCCL's ring/Simple latency, "
        f"{latency_us(collective, nnodes) / 1000:.2g} ms a call); NCCL may run it on LL128 or a tree, cheaper, so "
        f"the target may be lenient here: at most, links at {share:.0f}% of line pass, not {wanted:.0f}%"
    )


def below_marks(
    results: Sequence[RailResult], line_rates: Mapping[int, float | None], fraction: float
) -> list[Shortfall]:
    """Every rail-group result that returned wrong elements, or whose busbw is under its mark at its rail's line
    rate (:func:`needed_busbw_Gbps`; no mark where the line rate is unknown). A result measured more than once is
    judged on its best measurement (``rails_outcome.best_samples``)."""
    below: list[Shortfall] = []
    for r in results:
        target = line_rates.get(r.rail)
        if r.wrong:
            below.append(Shortfall(r.rail, r.collective, r.mode, r.busbw_Gbps, nnodes=r.nnodes, wrong=r.wrong))
        if not target:
            continue
        # The mark is on the bandwidth term: NCCL's per-step latency at this node count comes on top of the bytes
        # at pass_fraction of line (docs/design.md "Rail targets at any node count").
        needed = needed_busbw_Gbps(r.collective, r.nnodes, r.nbytes, fraction * target)
        if r.busbw_Gbps < needed:
            samples = tuple(r.busbw_at(t) for t in r.samples_us)
            below.append(
                Shortfall(
                    r.rail, r.collective, r.mode, r.busbw_Gbps, target, needed, fraction, r.nnodes, samples_Gbps=samples
                )
            )
    return below
