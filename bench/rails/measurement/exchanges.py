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
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from bench.measure import device as device_ops
from bench.measure.budgeted import Chunked, time_steps
from bench.measure.timing import Align, Loop, Timed, reduce_times
from bench.rails.diagnosis.matrix import PairTime
from bench.rails.plan.budget import chunks_per_message
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.schedule import Round
from bench.runtime import env as benv
from bench.runtime.subgroups import split_groups, splits_at_once

T = TypeVar("T")

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup, Work

GLOO_SOCKET_IFNAME = "GLOO_SOCKET_IFNAME"
PairOpen = Callable[[int, int, int], bool]
"""(node a, node b, rail) -> whether that pair is measured (``bench.rails.diagnosis.liveness.Membership.pair_open``)."""


def gloo_interface(ifname: str | None) -> contextlib.AbstractContextManager[None]:
    """``GLOO_SOCKET_IFNAME`` set to ``ifname`` while groups are made (no change for None).

    gloo binds a new group's sockets to the interface this variable names at the moment the group is made
    (torch 2.13 ignores the devices passed in a group's options), so the variable is switched around
    ``new_group`` and restored afterwards.
    """
    return benv.scoped(GLOO_SOCKET_IFNAME, ifname)


def make_rail_groups(
    layout: RailLayout,
    live: Sequence[Sequence[int]],
    my_ifname: str | None,
    startup_s: float,
    op_timeout_s: float,
    rails: Sequence[int] | None = None,
) -> tuple[dict[int, ProcessGroup | None], str | None]:
    """One process group per rail of ``rails`` (default: every rail) from its live members (``live[rail]``:
    node indices, agreed by every rank); this rank's rail group binds ``my_ifname`` (gloo on socket rails).

    Returns rail -> group (None or ``NON_GROUP_MEMBER`` where this rank is not a member; no entry for a rail
    with fewer than two live members) and, when this rank's rail group could not form (its members cannot
    connect), the transport's error instead of raising it, so that every rank can still agree on what broke.

    Forming gets ``startup_s`` (on gloo the time to connect, retried for several of these); operations then
    get ``op_timeout_s``: past railbench's watchdog (``bench.runtime.dist.torch_timeout_s``), so that a step
    that overruns is railbench's hang to report, and a chunk held in TCP's retransmission backoff on a lossy
    link is a slow link, not an error.
    """
    import torch.distributed as dist

    chosen = range(layout.rails) if rails is None else rails
    members = {rail: [layout.ranks[node][rail] for node in live[rail]] for rail in chosen if len(live[rail]) >= 2}
    startup = timedelta(seconds=startup_s)
    if splits_at_once():  # NCCL bound to a device: every rail's group from one split of the world
        try:
            made = split_groups(list(members.values()), startup)
        except RuntimeError as exc:
            return dict.fromkeys(members), " ".join(str(exc).split())
        return {rail: _op_timeout(g, startup_s, op_timeout_s) for rail, g in zip(members, made, strict=True)}, None
    groups: dict[int, ProcessGroup | None] = {}
    problem = None
    with gloo_interface(my_ifname):
        for rail, ranks in members.items():
            try:
                group = dist.new_group(ranks, timeout=startup)
            except RuntimeError as exc:  # gloo's connectFullMesh: no route, refused, timed out
                groups[rail] = None
                problem = " ".join(str(exc).split())
                continue
            groups[rail] = _op_timeout(group, startup_s, op_timeout_s)
    return groups, problem


def _op_timeout(group: ProcessGroup | None, startup_s: float, op_timeout_s: float) -> ProcessGroup | None:
    """``group`` with its operations' timeout set to ``op_timeout_s`` (it was made under ``startup_s``)."""
    import torch.distributed as dist
    from torch.distributed.distributed_c10d import _set_pg_timeout

    if group is not None and group != dist.GroupMember.NON_GROUP_MEMBER and op_timeout_s != startup_s:
        _set_pg_timeout(timedelta(seconds=op_timeout_s), group)
    return group


def p2p_wait(group: ProcessGroup | None, op_timeout_s: float) -> timedelta | None:
    """How long one point-to-point operation in a rail group may wait: ``Work.wait``'s argument.

    gloo's send and receive wait as long as the group's start-up timeout (``startup_s`` above), whatever
    ``_set_pg_timeout`` says: it reaches gloo's collectives only. Without this, one chunk held up by TCP's
    retransmission backoff on a flapping link for more than a few seconds ends the run as a lost rank. On
    NCCL the watchdog already applies the group's timeout, and a timeout argument would make ``wait`` block
    the host until the GPU finishes (torch's WorkNCCL), which the timing loop's queued messages must not
    do: None there.
    """
    import torch.distributed as dist

    if group is None or group == dist.GroupMember.NON_GROUP_MEMBER:
        return None
    return timedelta(seconds=op_timeout_s) if dist.get_backend(group) == "gloo" else None


def one_way(
    send_buf: torch.Tensor,
    recv_buf: torch.Tensor,
    peer_rank: int | None,
    sending: bool,
    group: ProcessGroup | None,
    wait: timedelta | None = None,
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


def _finish(works: Sequence[Work], wait: timedelta | None) -> None:
    """Wait for ``works`` (``wait``: see ``p2p_wait``; None: the backend's own timeout)."""
    for work in works:
        work.wait() if wait is None else work.wait(timeout=wait)


def _exchange(
    mine: torch.Tensor, theirs: torch.Tensor, peer_rank: int, group: ProcessGroup | None, wait: timedelta | None
) -> None:
    """``mine`` to the peer and the peer's into ``theirs``, one after the other, the lower rank sending
    first: a backend that runs one operation at a time (one stream) would otherwise have both ends wait in
    a send for a receive queued behind it."""
    import torch.distributed as dist

    send = dist.P2POp(dist.isend, mine, peer_rank, group)
    recv = dist.P2POp(dist.irecv, theirs, peer_rank, group)
    for op in (send, recv) if dist.get_rank() < peer_rank else (recv, send):
        _finish(dist.batch_isend_irecv([op]), wait)


def pair_agree(
    peer_rank: int | None, group: ProcessGroup | None, device: torch.device, wait: timedelta | None = None
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


def pair_align(
    peer_rank: int | None, group: ProcessGroup | None, device: torch.device, wait: timedelta | None = None
) -> Align | None:
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
    group: ProcessGroup | None,
    buffers: tuple[torch.Tensor, torch.Tensor],
    loop: Loop,
    *,
    wait: timedelta | None = None,
    measured: PairOpen | None = None,
) -> tuple[list[PairTime], list[float]]:
    """This rank's part of one round on its rail: each direction of every pair at once, lower node first.

    Both ends time the same region with the one timing loop as ``loop`` says (within its budget per direction,
    when it has one; ``wait`` as in ``p2p_wait``); a direction took as long as its slower end (the receiver has the
    last byte only when the transfer is over), known on every rank of the rail group after one gather of
    the times. Returns this rank's sending directions and the rate (Gb/s) of every direction measured on
    the rail this round.

    ``measured(a, b, rail)`` says which pairs are measured at all (default: every one): a pair with a dead
    end is never attempted, and a rank outside its rail's group (``group`` None: its link is dead) only
    meets the world's agreement on the budget, once per direction, as every rank does.
    """
    node, rail = layout.where(rank)
    if group is None:
        if callable(loop.budget_s):
            for _ in range(2):
                loop.budget_s(math.inf)
        return [], []
    opened = measured or (lambda a, b, k: True)
    partner = rnd.partner(node, rail)
    partner = partner if partner is not None and opened(node, partner, rail) else None
    peer_rank = layout.ranks[partner][rail] if partner is not None else None
    end = _PairEnd(node, rail, partner, peer_rank, group, buffers[0], buffers[1], wait)
    times: list[PairTime] = []
    rates: list[float] = []
    if callable(loop.budget_s) and peer_rank is None:
        plan = loop.budget_s
        # A rank without a partner this round probed nothing: it must not look like the fastest pair.
        loop = dataclasses.replace(loop, budget_s=lambda _probe: plan(math.inf))
    for sender_is_low in (True, False):
        sending = partner is not None and (node < partner) == sender_is_low
        timed = _time_direction(end, sending, loop)
        everyone, _ = reduce_times(timed.time_us, 0, group, end.device)
        rates += _round_rates(rnd, layout, end, everyone, opened)
        if sending and peer_rank is not None and partner is not None:
            theirs = everyone[_group_rank(group, peer_rank)]
            slower = max(timed.time_us, theirs)
            times.append(
                PairTime(node, partner, rail, rnd.repeat, rnd.index, end.nbytes, slower, timed.stopped, rnd.confirm)
            )
    return times, rates


@dataclass(frozen=True)
class _PairEnd:
    """This rank's end of its pair in one round (``partner`` and ``peer_rank`` None: it has no partner and steps
    through the timing loop doing nothing, to meet its rail group at the loop's barriers)."""

    node: int
    rail: int
    partner: int | None
    peer_rank: int | None
    group: ProcessGroup
    send_buf: torch.Tensor
    recv_buf: torch.Tensor
    wait: timedelta | None

    @property
    def device(self) -> torch.device:
        return self.send_buf.device

    @property
    def nbytes(self) -> int:
        return int(self.send_buf.numel() * self.send_buf.element_size())

    def one_way(self, sending: bool, count: int | None = None) -> Callable[[], None]:
        """One message, or its first ``count`` elements, in the direction ``sending`` says."""
        if count is None:
            return one_way(self.send_buf, self.recv_buf, self.peer_rank, sending, self.group, self.wait)
        return one_way(self.send_buf[:count], self.recv_buf[:count], self.peer_rank, sending, self.group, self.wait)

    def chunked(self, sending: bool) -> Chunked | None:
        """Chunks (and half a chunk, for their fixed cost) where a message has more than one; every rank of the
        rail has the same size, so every one takes the same branches and meets the same barriers."""
        per = chunks_per_message(self.nbytes)
        if per <= 1:
            return None
        chunk = self.send_buf.numel() // per
        return Chunked(self.one_way(sending, chunk), per, self.one_way(sending, chunk // 2))


def _time_direction(end: _PairEnd, sending: bool, loop: Loop) -> Timed:
    """This rank's time for one direction of its pair (within ``loop``'s budget where it has one), by the one
    timing loop; the two ends agree on the probe by exchanging it (``pair_agree``)."""
    return time_steps(
        end.one_way(sending),
        loop,
        group=end.group,
        device=end.device,
        agree=pair_agree(end.peer_rank, end.group, end.device, end.wait),
        chunked=end.chunked(sending),
        align=pair_align(end.peer_rank, end.group, end.device, end.wait),
    )


def _round_rates(rnd: Round, layout: RailLayout, end: _PairEnd, everyone: list[float], opened: PairOpen) -> list[float]:
    """The rate (Gb/s) of this direction of every pair measured on the rail this round: a direction took as
    long as its slower end (``everyone``: every rank of the rail group's time, in group rank order)."""
    rates = []
    for a, b in rnd.pairs:
        if rnd.partner(a, end.rail) == b and opened(a, b, end.rail):
            ends = [everyone[_group_rank(end.group, layout.ranks[x][end.rail])] for x in (a, b)]
            rates.append(end.nbytes * 8 / (max(ends) * 1e-6) / 1e9 if max(ends) > 0 else 0.0)
    return rates


def _group_rank(group: ProcessGroup, rank: int) -> int:
    import torch.distributed as dist

    return int(dist.get_group_rank(group, rank))


def pair_buffers(nbytes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Send and receive tensors for pair exchanges of ``nbytes`` (float32)."""
    import torch

    count = max(1, nbytes // 4)
    return (
        torch.ones(count, dtype=torch.float32, device=device),
        torch.empty(count, dtype=torch.float32, device=device),
    )


def broadcast_object(obj: T | None) -> T:
    """Rank 0's ``obj`` on every rank (over the world group); the others pass None."""
    import torch.distributed as dist

    box: list[T | None] = [obj]
    dist.broadcast_object_list(box, src=0)
    if box[0] is None:
        raise ValueError("broadcast_object needs rank 0 to send a value")
    return box[0]
