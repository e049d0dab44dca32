"""The rank side of the rails test: rail groups, their collectives, pair exchanges and counter windows.

Every function here runs on every rank at the same point of the program (torch requires every rank to
call ``new_group`` for every group, in the same order); what a rank does inside depends on its rail.

Pair exchanges use batched point-to-point inside the rail groups, never one communicator per pair: 64
nodes x 8 rails would need 16,128 of them. A pair measures each direction on its own (gloo runs a pair's
two directions over one TCP connection and serialises them, so a simultaneous exchange would report half
of what the wire does), timed by the one timing loop at both ends.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.measure import device as device_ops
from bench.measure.timing import Align, Budget, Chunked, Timed, reduce_times, time_budgeted, time_region
from bench.rails.budget import chunks_per_message
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


def make_rail_groups(
    layout: RailLayout, my_ifname: str | None, connect_s: float, op_timeout_s: float
) -> tuple[list[Any], str | None]:
    """One process group per rail; this rank's rail group binds ``my_ifname`` (gloo on socket rails).

    Returns the groups and, when this rank's rail group could not form (a dead link: its members cannot
    connect), the transport's error instead of raising it, so that every rank can still agree over the
    world group on what broke. A non-member gets None from ``new_group`` and connects to nobody.

    Connecting gets ``connect_s``: gloo retries a connection that cannot be made for several of its group's
    timeouts, so a dead link costs a multiple of it. Operations then get ``op_timeout_s``: a link that
    crawls is measured within its cell budget in chunks, but one chunk on a lossy link may wait out TCP's
    retransmission backoff for many seconds, and that is a slow link, not a lost rank.
    """
    import torch.distributed as dist
    from torch.distributed.distributed_c10d import _set_pg_timeout

    groups: list[Any] = []
    problem = None
    with gloo_interface(my_ifname):
        for rail in range(layout.rails):
            try:
                group = dist.new_group(layout.rail_group(rail), timeout=timedelta(seconds=connect_s))
            except RuntimeError as exc:  # gloo's connectFullMesh: no route, refused, timed out
                groups.append(None)
                problem = " ".join(str(exc).split())
                continue
            if group is not None and group != dist.GroupMember.NON_GROUP_MEMBER:
                _set_pg_timeout(timedelta(seconds=op_timeout_s), group)
            groups.append(group)
    return groups, problem


def p2p_wait(group: Any, op_timeout_s: float) -> timedelta | None:
    """How long one point-to-point operation in a rail group may wait: ``Work.wait``'s argument.

    gloo's send and receive wait as long as the group's connection timeout (``connect_s`` above), whatever
    ``_set_pg_timeout`` says: it reaches gloo's collectives only. Without this, one chunk held up by TCP's
    retransmission backoff on a flapping link for more than a few seconds ends the run as a lost rank. On
    NCCL the watchdog already applies the group's timeout, and a timeout argument would make ``wait`` block
    the host until the GPU finishes (torch's WorkNCCL), which the timing loop's queued messages must not
    do: None there.
    """
    import torch.distributed as dist

    return timedelta(seconds=op_timeout_s) if dist.get_backend(group) == "gloo" else None


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
    """Mean time per message, at the slower of the two ends (the receiver holds the last byte at the end)."""
    stopped: bool = False
    """The cell's time budget ran out: the rate is over the messages that fitted."""
    confirm: int = 0
    """0: the matrix; 1..: a confirmation pass re-measuring a suspect."""


def one_way(
    send_buf: Any, recv_buf: Any, peer_rank: int | None, sending: bool, group: Any, wait: timedelta | None = None
) -> Callable[[], None]:
    """One message of a pair exchange, as a step the timing loop can repeat.

    A batched point-to-point (``batch_isend_irecv``) inside the rail group's own communicator: on NCCL
    that is one grouped call on the communicator the rail already has, never a new 2-rank communicator per
    (rank, partner) as un-batched ``send``/``recv`` would make. A rank without a partner this round steps
    through the loop doing nothing, so that it still meets the group at the loop's barrier. ``wait``: see
    ``p2p_wait``.
    """
    import torch.distributed as dist

    if peer_rank is None:
        return lambda: None
    op = dist.P2POp(dist.isend if sending else dist.irecv, send_buf if sending else recv_buf, peer_rank, group)

    def step() -> None:
        _finish(dist.batch_isend_irecv([op]), wait)

    return step


def _finish(works: Sequence[Any], wait: timedelta | None) -> None:
    """Wait for ``works`` (``wait``: see ``p2p_wait``; None: the backend's own timeout)."""
    for work in works:
        work.wait() if wait is None else work.wait(timeout=wait)


def _exchange(mine: Any, theirs: Any, peer_rank: int, group: Any, wait: timedelta | None) -> None:
    """``mine`` to the peer and the peer's into ``theirs``, one after the other, the lower rank sending
    first: a backend that runs one operation at a time (one stream) would otherwise have both ends wait in
    a send for a receive queued behind it."""
    import torch.distributed as dist

    send = dist.P2POp(dist.isend, mine, peer_rank, group)
    recv = dist.P2POp(dist.irecv, theirs, peer_rank, group)
    for op in (send, recv) if dist.get_rank() < peer_rank else (recv, send):
        _finish(dist.batch_isend_irecv([op]), wait)


def pair_agree(
    peer_rank: int | None, group: Any, device: Any, wait: timedelta | None = None
) -> Callable[[float], float]:
    """The slower of the two ends' probe times, known at both ends (an exchange of one number)."""
    import torch

    def agree(seconds: float) -> float:
        if peer_rank is None:
            return seconds
        mine = torch.tensor([seconds], dtype=torch.float64, device=device)
        theirs = torch.empty(1, dtype=torch.float64, device=device)
        _exchange(mine, theirs, peer_rank, group, wait)
        device_ops.synchronize(device)  # the peer's number is read on the host: it must have landed
        return max(seconds, float(theirs.item()))

    return agree


def pair_align(peer_rank: int | None, group: Any, device: Any, wait: timedelta | None = None) -> Align | None:
    """The two ends of a pair meet (one tiny exchange) after their group's barrier and before their timers
    start (``bench.measure.timing.Align``); None for a rank without a partner, which times nothing."""
    import torch

    if peer_rank is None:
        return None
    mine = torch.zeros(1, dtype=torch.float32, device=device)
    theirs = torch.empty(1, dtype=torch.float32, device=device)
    return lambda: _exchange(mine, theirs, peer_rank, group, wait)


def pair_round(
    rnd: Round,
    layout: RailLayout,
    rank: int,
    group: Any,
    buffers: tuple[Any, Any],
    *,
    iters: int,
    warmup: int,
    budget_s: Budget | None = None,
    wait: timedelta | None = None,
) -> tuple[list[PairTime], list[float]]:
    """This rank's part of one round on its rail: each direction of every pair at once, lower node first.

    Both ends time the same region with the one timing loop (within ``budget_s`` per direction, when
    given; ``wait`` as in ``p2p_wait``); a direction took as long as its slower end (the receiver has the
    last byte only when the transfer is over), known on every rank of the rail group after one gather of
    the times. Returns this rank's sending directions and the rate (Gb/s) of every direction measured on
    the rail this round.
    """
    import torch.distributed as dist

    node, rail = layout.where(rank)
    send_buf, recv_buf = buffers
    device = send_buf.device
    partner = rnd.partner(node, rail)
    peer_rank = layout.ranks[partner][rail] if partner is not None else None
    nbytes = send_buf.numel() * send_buf.element_size()
    times: list[PairTime] = []
    rates: list[float] = []
    budget: Budget | None = budget_s
    if callable(budget_s) and peer_rank is None:
        plan = budget_s
        # A rank without a partner this round probed nothing: it must not look like the fastest pair.
        budget = lambda _probe: plan(math.inf)  # noqa: E731
    for sender_is_low in (True, False):
        sending = partner is not None and (node < partner) == sender_is_low
        step = one_way(send_buf, recv_buf, peer_rank, sending, group, wait)
        per = chunks_per_message(nbytes)
        chunk = send_buf.numel() // per
        chunked = Chunked(one_way(send_buf[:chunk], recv_buf[:chunk], peer_rank, sending, group, wait), per)
        align = pair_align(peer_rank, group, device, wait)
        if budget is None:
            mean = time_region(step, group=group, device=device, iters=iters, warmup=warmup, align=align)
            timed = Timed(mean, iters, False)
        else:
            timed = time_budgeted(
                step,
                group=group,
                device=device,
                iters=iters,
                warmup=warmup,
                budget_s=budget,
                agree=pair_agree(peer_rank, group, device, wait),
                chunked=chunked,
                align=align,
            )
        mine = timed.time_us
        everyone, _ = reduce_times(mine, 0, group, device)
        for a, b in rnd.pairs:
            if rnd.partner(a, rail) == b:
                ends = [everyone[dist.get_group_rank(group, layout.ranks[x][rail])] for x in (a, b)]
                rates.append(nbytes * 8 / (max(ends) * 1e-6) / 1e9 if max(ends) > 0 else 0.0)
        if sending and peer_rank is not None and partner is not None:
            theirs = everyone[dist.get_group_rank(group, peer_rank)]
            times.append(
                PairTime(
                    node, partner, rail, rnd.repeat, rnd.index, nbytes, max(mine, theirs), timed.stopped, rnd.confirm
                )
            )
    return times, rates


def pair_buffers(nbytes: int, device: Any) -> tuple[Any, Any]:
    """Send and receive tensors for pair exchanges of ``nbytes`` (float32)."""
    import torch

    count = max(1, nbytes // 4)
    return (
        torch.ones(count, dtype=torch.float32, device=device),
        torch.empty(count, dtype=torch.float32, device=device),
    )


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (over the world group)."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` on every rank, in rank order (over the world group)."""
    import torch.distributed as dist

    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, obj)
    return everyone


def flatten(lists: Sequence[Sequence[Any]]) -> list[Any]:
    return [item for items in lists for item in items]
