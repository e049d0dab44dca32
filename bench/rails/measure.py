"""The rank side of the rails test: rail groups, their collectives, pair exchanges and counter windows.

Every function here runs on every rank at the same point of the program (torch requires every rank to
call ``new_group`` for every group, in the same order); what a rank does inside depends on its rail.

Pair exchanges use point-to-point inside the rail groups, never one communicator per pair: 64 nodes x 8
rails would need 16,128 of them. A pair measures each direction on its own, timed at the sender until the
receiver acknowledges: gloo runs a pair's two directions over one TCP connection and serialises them, so a
simultaneous exchange would report half of what the wire does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.rails.layout import RailLayout
from bench.rails.schedule import Round
from bench.runtime import env as benv

GLOO_SOCKET_IFNAME = "GLOO_SOCKET_IFNAME"


def gloo_interface(ifname: str | None) -> contextlib.AbstractContextManager[None]:
    """``GLOO_SOCKET_IFNAME`` set to ``ifname`` while groups are made (no change for None).

    gloo binds a new group's sockets to the interface this variable names at the moment the group is made
    (torch 2.13 ignores the devices passed in a group's options), so the variable is switched around
    ``new_group`` and restored afterwards.
    """
    return benv.scoped(GLOO_SOCKET_IFNAME, ifname)


def make_rail_groups(layout: RailLayout, my_ifname: str | None, timeout_s: float) -> tuple[list[Any], str | None]:
    """One process group per rail; this rank's rail group binds ``my_ifname`` (gloo on socket rails).

    Returns the groups and, when this rank's rail group could not form (a dead link: its members cannot
    connect), the transport's error instead of raising it, so that every rank can still agree over the
    world group on what broke. A non-member gets None from ``new_group`` and connects to nobody.
    """
    from datetime import timedelta

    import torch.distributed as dist

    groups: list[Any] = []
    problem = None
    with gloo_interface(my_ifname):
        for rail in range(layout.rails):
            try:
                groups.append(dist.new_group(layout.rail_group(rail), timeout=timedelta(seconds=timeout_s)))
            except RuntimeError as exc:  # gloo's connectFullMesh: no route, refused, timed out
                groups.append(None)
                problem = " ".join(str(exc).split())
    return groups, problem


@dataclass(frozen=True)
class PairTime:
    """One direction of one pair on one rail: ``node`` sent ``nbytes`` to ``peer``."""

    node: int
    peer: int
    rail: int
    repeat: int
    round: int
    nbytes: int
    time_us: float
    """Mean time per message at the sender, until the receiver's acknowledgement."""


def _device_sync(tensor: Any) -> None:
    """Wait on the host until the device has finished everything queued so far (a no-op on CPU).

    On NCCL ``send``/``recv`` only enqueue: ``Work.wait()`` makes the current stream wait, never the host, so
    ``perf_counter`` around the loop alone would time the queuing (TB/s for a 256 MB pair). The last
    acknowledgement is ordered after the receiver got the last message, so synchronising after it ends the
    timed region when the transfer really ended.
    """
    if tensor.device.type == "cuda":
        import torch

        torch.cuda.synchronize(tensor.device)


def _send_timed(data: Any, ack: Any, peer: int, group: Any, iters: int, warmup: int) -> float:
    import torch.distributed as dist

    for _ in range(warmup):
        dist.send(data, peer, group=group)
        dist.recv(ack, peer, group=group)
    _device_sync(ack)
    start = time.perf_counter()
    for _ in range(iters):
        dist.send(data, peer, group=group)
        dist.recv(ack, peer, group=group)
    _device_sync(ack)
    return (time.perf_counter() - start) * 1e6 / iters


def _receive_acked(data: Any, ack: Any, peer: int, group: Any, count: int) -> None:
    import torch.distributed as dist

    for _ in range(count):
        dist.recv(data, peer, group=group)
        dist.send(ack, peer, group=group)


def pair_round(
    rnd: Round,
    layout: RailLayout,
    rank: int,
    group: Any,
    buffers: tuple[Any, Any, Any],
    *,
    iters: int,
    warmup: int,
) -> list[PairTime]:
    """This rank's part of one round on its rail: both directions with its partner, lower node first."""
    import torch.distributed as dist

    node, rail = layout.where(rank)
    send_buf, recv_buf, ack = buffers
    partner = rnd.partner(node)
    times: list[PairTime] = []
    if partner is not None:
        peer_rank = layout.ranks[partner][rail]
        low, high = sorted((node, partner))
        for src, dst in ((low, high), (high, low)):
            if node == src:
                t = _send_timed(send_buf, ack, peer_rank, group, iters, warmup)
                nbytes = send_buf.numel() * send_buf.element_size()
                times.append(PairTime(src, dst, rail, rnd.repeat, rnd.index, nbytes, t))
            else:
                _receive_acked(recv_buf, ack, peer_rank, group, iters + warmup)
    # Keep the rail's pairs in step, so a round's pairs really run at the same time.
    dist.barrier(group=group)
    return times


def pair_buffers(nbytes: int, device: Any) -> tuple[Any, Any, Any]:
    """Send, receive and acknowledgement tensors for pair exchanges of ``nbytes`` (float32)."""
    import torch

    count = max(1, nbytes // 4)
    return (
        torch.ones(count, dtype=torch.float32, device=device),
        torch.empty(count, dtype=torch.float32, device=device),
        torch.zeros(1, dtype=torch.float32, device=device),
    )


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` on every rank, in rank order (over the world group)."""
    import torch.distributed as dist

    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, obj)
    return everyone


def flatten(lists: Sequence[Sequence[Any]]) -> list[Any]:
    return [item for items in lists for item in items]
