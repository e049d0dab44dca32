"""NCCL's own cost model of a collective, for a communicator of one GPU per node over InfiniBand: which algorithm and
protocol NCCL picks for a call of a given size, and the time its model gives that call.

This is the arithmetic of NVIDIA/nccl ``src/graph/tuning.cc`` (``ncclTopoTuneModel``, which fills a latency and
a bandwidth per collective, algorithm and protocol, and ``ncclTopoGetAlgoTime``, which prices one call at
``latency + bytes / bandwidth``), with the constants that file ships, for Hopper GPUs (compute capability 9.0)
behind an x86 Intel host, one GPU per node (``ppn`` = 1, as a rail group is), no NVLS, CollNet or tuner plugin:

- **Latency** (us): ``baseLatencies[algo][proto]``, plus per network step the *tree's* network latency
  ``hwLatencies[NET][TREE][proto]`` (with one GPU per node "latencies are fully exposed, use the Tree network
  latency": LL 5, LL128 8.5, Simple 14). A ring all_reduce has 2(n-1) network steps, all_gather and
  reduce_scatter n-1; a tree all_reduce 2 log2(n). A ring all_reduce on Simple whose per-channel, per-rank
  share is at least 64 bytes pays 1.4 times its latency (the "plateau effect of ring", compute capability 8.0
  and up). PAT (all_gather and reduce_scatter with one GPU per node on a host NIC): base 8, plus
  log2(n) x (14 / 3.5), plus 2.8 per rank.
- **Bandwidth** (GB/s): ``nChannels x bwInter`` is the link's bus bandwidth (``link_GBps`` here); ring LL gets
  half of it (at most ``llMaxBw``, 20.4 for Intel hosts past two nodes), ring LL128 0.92 of it (at most 36.7 per
  channel); a tree all_reduce 0.92 (at most 36.0 per channel), then LL a 3.8th of that (at most ``llMaxBw``) and
  LL128 120/128 (at most 29.0 per channel); PAT 0.75. The bus bandwidth becomes the algorithm's by n / steps for
  rings and 0.5 for trees, and the tree's by ``treeCorrectionFactor`` for sizes from 64 B to 256 MiB.
- **Bytes**: the message for all_reduce, the whole gathered buffer (n x the per-rank count) for all_gather and
  reduce_scatter (``ncclFuncMaxSendRecvCount`` in ``src/enqueue.cc``).

NCCL runs a call on the cheapest (algorithm, protocol) of its table, so this model is both NCCL's choice and,
in the tests that use it, the truth: a call takes the time the model prices it at. The point it makes is the one
the timing loop must survive: a 1-element all_reduce over 64 nodes runs tree LL (67 us), a 4 MiB chunk tree LL128
or Simple (116 or 176 us of fixed cost), a 256 MiB message ring Simple or tree LL128; no two of them share one
fixed cost or one rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROTOCOLS = ("LL", "LL128", "Simple")
BASE_LATENCY_US = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4), "pat": (8.0, 8.0, 8.0)}
TREE_NET_LATENCY_US = (5.0, 8.5, 14.0)
"""``hwLatencies[NCCL_HW_NET][NCCL_ALGO_TREE]``: every algorithm's network latency with one GPU per node."""
LL_MAX_GBPS = 20.4
"""``llMaxBws`` for an Intel host past two nodes."""
PER_CHANNEL_MAX_GBPS = {"ring LL128": 36.7, "tree": 36.0, "tree LL128": 29.0}
"""Hopper, past two nodes: ``perChMaxRingLL128Bws``, ``perChMaxTreeBws``, ``perChMaxTreeLL128Bws``."""
RING_PLATEAU = 1.4
TREE_CORRECTION = {
    proto: tuple(float(f) for f in factors.split())
    for proto, factors in (
        ("LL", "1 1 1 1 .9 .8 .7 .7 .7 .7 .6 .5 .4 .4 .5 .6 .7 .8 .9 1 1 1 1 1"),
        ("LL128", "1 1 1 1 1 .9 .8 .8 .8 .7 .6 .6 .6 .6 .6 .6 .8 .9 .9 .9 .9 1 1 1"),
        ("Simple", ".9 .9 .9 .9 .9 .9 .9 .8 .7 .6 .6 .5 .5 .5 .5 .6 .7 .8 .7 .7 .8 .9 .9 .9"),
    )
}
"""``treeCorrectionFactor[protocol][log2(bytes / 64)]``."""


@dataclass(frozen=True)
class Choice:
    """What NCCL runs one call on, and what its model says the call takes."""

    algorithm: str
    protocol: str
    latency_us: float
    bandwidth_GBps: float
    """The algorithm's bandwidth (bytes of the call per second), after every refinement."""

    def time_us(self, nbytes: int) -> float:
        return self.latency_us + nbytes / (1000.0 * self.bandwidth_GBps)


def _log2i(n: int) -> int:
    return max(0, int(n).bit_length() - 1)


def model_bytes(collective: str, count_bytes: int, nranks: int) -> int:
    """The bytes NCCL prices a call at: the message for all_reduce, n x the per-rank count for the others."""
    return count_bytes * nranks if collective in ("all_gather", "reduce_scatter") else count_bytes


def _choices(collective: str, nranks: int, nbytes: int, link_GBps: float, channels: int) -> list[Choice]:
    n = nranks
    steps = 2 * (n - 1) if collective == "all_reduce" else n - 1
    out = []
    for i, proto in enumerate(PROTOCOLS):
        inter = TREE_NET_LATENCY_US[i]
        # Ring: every step crosses the network (one GPU per node).
        bus = link_GBps
        if proto == "LL":
            bus = min(LL_MAX_GBPS, bus * 0.5)
        elif proto == "LL128":
            bus = min(bus * 0.92, channels * PER_CHANNEL_MAX_GBPS["ring LL128"])
        latency = BASE_LATENCY_US["ring"][i] + steps * inter
        if proto == "Simple" and collective == "all_reduce" and nbytes / (channels * n) >= 64:
            latency *= RING_PLATEAU
        out.append(Choice("ring", proto, latency, bus * n / steps))
        if collective == "all_reduce":
            tree = min(link_GBps * 0.92, channels * PER_CHANNEL_MAX_GBPS["tree"])
            if proto == "LL":
                tree = min(tree / 3.8, LL_MAX_GBPS)
            elif proto == "LL128":
                tree = min(tree * 120.0 / 128.0, channels * PER_CHANNEL_MAX_GBPS["tree LL128"])
            size_class = _log2i(nbytes >> 6)
            correction = TREE_CORRECTION[proto][size_class] if 0 <= size_class < 23 and nbytes >= 64 else 1.0
            latency = BASE_LATENCY_US["tree"][i] + 2 * _log2i(n) * inter
            out.append(Choice("tree", proto, latency, tree * 0.5 * correction))
        elif proto == "Simple":
            latency = BASE_LATENCY_US["pat"][i] + _log2i(n) * (inter / 3.5) + n * 2.8
            out.append(Choice("pat", proto, latency, link_GBps * 0.75))
    return out


def nccl_choice(collective: str, nranks: int, nbytes: int, link_GBps: float = 50.0, channels: int = 2) -> Choice:
    """The (algorithm, protocol) NCCL runs a call of ``nbytes`` (:func:`model_bytes`) on, ``nranks`` nodes of one
    GPU each, links of ``link_GBps`` (50: 400 Gb/s NDR)."""
    if nranks < 2:
        raise ValueError("a collective over the network needs two ranks at least")
    if collective not in ("all_reduce", "all_gather", "reduce_scatter"):
        raise ValueError(f"no model of {collective}")
    return min(_choices(collective, nranks, nbytes, link_GBps, channels), key=lambda c: c.time_us(nbytes))


def call_s(collective: str, nranks: int, nbytes: int, link_GBps: float = 50.0) -> float:
    """Seconds NCCL's model gives one call (see :func:`nccl_choice`)."""
    return nccl_choice(collective, nranks, nbytes, link_GBps).time_us(nbytes) * 1e-6


def busbw_Gbps(collective: str, nranks: int, nbytes: int, seconds: float) -> float:
    """nccl-tests' bus bandwidth of ``nbytes`` (the message, as ``model_bytes`` takes it) moved in ``seconds``."""
    factor = 2 * (nranks - 1) / nranks if collective == "all_reduce" else (nranks - 1) / nranks
    return nbytes * factor * 8 / seconds / 1e9 if seconds > 0 and math.isfinite(seconds) else 0.0
