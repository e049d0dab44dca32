"""The rail groups, formed from their live members, so that a dead link never hides another fault.

Every rank runs :func:`form_rail_groups` at the same point:

1. each rank's own rail link is known (``bench.rails.measurement.links``: the port's state, a bounded connect to every
   peer on socket rails) and every rank decides the same live members (``bench.rails.diagnosis.liveness``);
2. each rail group is made from its live members only; on gloo a group that still cannot connect names its
   dead member from the transport's errors (``bench.rails.diagnosis.evidence.dead_links``) and is made once more
   without it;
3. on NCCL, whose connections are made on first use (a dead IB link shows only when traffic moves, after
   NCCL_IB_TIMEOUT and NCCL_IB_RETRY_CNT: 4.096 us x 2^20 x 7, about 30 s at NCCL's defaults in
   ``src/transport/net_ib``, and torch's watchdog then sleeps 4 x TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC, a
   minute, before it aborts: ``ProcessGroupNCCL::Watchdog::runLoop``), every rail group runs one tiny
   all-reduce that must complete within :data:`GROUP_PROBE_S`, polled with ``is_completed()``, never waited
   on. A group that misses it is aborted, its members are probed in disjoint pairs of two-rank groups under
   the same kind of deadline (:data:`PAIR_PROBE_S`), and the group is made again from the members that
   completed: a dead peer is named within seconds, as a dead link, never as a lost rank.

Every exchange of what each rank saw goes through ``bench.runtime.coord``: on NCCL the rendezvous store, which
rides the management network, never a communicator that may itself ride the dead link.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bench.fabric.sysfs import Sysfs
from bench.measure import device as device_ops
from bench.rails.diagnosis import evidence, liveness
from bench.rails.diagnosis.liveness import DeadPart, LinkReport, Membership
from bench.rails.measurement.exchanges import make_rail_groups
from bench.rails.measurement.links import probe_links
from bench.rails.plan.layout import RailLayout
from bench.rails.plan.schedule import circle_rounds
from bench.runtime.coord import Coord
from bench.runtime.dist import DistContext, gpu_bus_id, torch_timeout_s
from bench.runtime.subgroups import disjoint_groups

if TYPE_CHECKING:
    from datetime import timedelta

    import torch
    from torch.distributed import ProcessGroup

CONNECT_S = 5.0
"""Seconds a gloo rail group's members get to connect, at least (gloo retries for several of them)."""
CONNECT_PER_MEMBER_S = 0.05
"""And this much more per member: a full mesh of 512 connects 511 times per rank."""
GROUP_PROBE_S = 5.0
"""NCCL: a rail group's first tiny all-reduce (its ring connected on first use) must complete within this."""
PAIR_PROBE_S = 3.0
"""NCCL: a two-rank group's tiny all-reduce must complete within this."""
POLL_S = 0.005

Enter = Callable[[str], None]


@dataclass
class RailGroups:
    """What :func:`form_rail_groups` made: each rail's group, the live members, what every rank reported."""

    groups: dict[int, ProcessGroup | None]
    """rail -> this rank's handle of that rail's group (``NON_GROUP_MEMBER``/None where not a member)."""
    membership: Membership
    reports: list[LinkReport]
    made: int = 0
    """Process groups made, probe groups included."""

    def mine(self, rank: int, layout: RailLayout) -> ProcessGroup | None:
        """This rank's own rail group, or None when its link is out of it (dead)."""
        node, rail = layout.where(rank)
        return self.groups.get(rail) if self.membership.in_group(node, rail) else None


def gloo_connect_s(members: int, timeout_s: float) -> float:
    """A gloo rail group's time to connect: enough for its size, and at most a sixth of the step's timeout
    (gloo tries about five times before it gives up, and every rank must learn within the step what broke)."""
    return max(1.0, min(timeout_s / 6, max(CONNECT_S, CONNECT_PER_MEMBER_S * members)))


def form_rail_groups(
    ctx: DistContext,
    layout: RailLayout,
    ifname: str | None,
    timeout_s: float,
    coord: Coord,
    enter: Enter,
    leave: Callable[[], None],
) -> RailGroups:
    """Every rail group from its live members; see the module docstring. Every rank calls it together."""
    rank = ctx.info.rank
    enter("probing every rail link")
    reports = probe_links(layout, rank, coord, ifname, sysfs=Sysfs(ctx.sysfs_root), gpu_bus=_gpu_bus(ctx))
    membership = liveness.decide(reports, len(layout.nodes), layout.rails)
    leave()
    op_timeout_s = torch_timeout_s(timeout_s)
    enter("creating the rail groups")
    coord.barrier()  # every member starts connecting at once: a late one must not read as a dead link
    nccl = ctx.backend == "nccl"
    startup = rail_group_startup_s(nccl, len(layout.nodes), timeout_s)
    groups, problem = make_rail_groups(layout, membership.live, ifname if not nccl else None, startup, op_timeout_s)
    formed = RailGroups(groups, membership, reports, len(groups))
    if not nccl:
        _gloo_again(layout, formed, coord, problem, ifname, startup, op_timeout_s)
    leave()
    if nccl:
        enter("probing every rail group (bounded)")
        _nccl_check(ctx, layout, formed, coord, op_timeout_s)
        leave()
    return formed


def rail_group_startup_s(nccl: bool, members: int, timeout_s: float) -> float:
    """How long a rail group may take to form, in a step whose timeout is ``timeout_s``.

    gloo: :func:`gloo_connect_s` (its connections are made at creation, and a dead member must be named within
    the step). NCCL: as long as any operation may (``torch_timeout_s``). Creation is not where NCCL finds a dead
    link (its connections are made on first use, and the bounded group probe that follows names the member), and
    it can legitimately take long: with the world bound to a device, torch makes the groups by ``ncclCommSplit``
    of the world's communicator, a collective of every world rank, members or not (one split for every rail
    where torch has ``split_group``, ``bench.runtime.subgroups``; else one per rail, each waiting for the
    ones before), and a non-blocking communicator's start-up is bounded by this timeout. A few seconds there would
    fail healthy groups of a large or busy cluster as lost ranks.
    """
    return torch_timeout_s(timeout_s) if nccl else gloo_connect_s(members, timeout_s)


def _gpu_bus(ctx: DistContext) -> str | None:
    """The PCI address of the GPU this rank drives (its rail's expected NIC is the one nearest it); None on CPU."""
    if not device_ops.is_cuda(ctx.device):
        return None
    return gpu_bus_id(int(ctx.device.index))


def _gloo_again(
    layout: RailLayout,
    formed: RailGroups,
    coord: Coord,
    problem: str | None,
    ifname: str | None,
    startup_s: float,
    op_timeout_s: float,
) -> None:
    """gloo: a group that could not connect although its members answered the link probe names its dead member
    from the transport's errors (``bench.rails.diagnosis.evidence.dead_links``) and is made once more without it; a
    second failure is the rail's. ``formed`` is updated in place."""
    reported = {(r.node, r.rail): r for r in formed.reports}
    for attempt in (1, 2):
        # Only the ranks that could not connect say something, and every rank needs only what they said.
        said = dict(coord.agree(problem or "", lambda posted: _spoken(posted, "")))
        failed = sorted({layout.where(r)[1] for r in said})
        if not failed:
            return
        membership = formed.membership
        live = list(membership.live)
        dead: list[DeadPart] = []
        for k in failed:
            formed.groups.pop(k, None)
            if attempt == 2:
                reasons = tuple(f"{layout.nodes[layout.where(r)[0]]}: {t}" for r, t in sorted(said.items()))
                dead.append(DeadPart("rail", None, k, reasons=reasons[:8]))
                live[k] = ()
                continue
            members = [layout.nodes[n] for n in live[k]]
            failures = [
                evidence.GroupFailure(
                    layout.nodes[n],
                    k,
                    reported[(n, k)].address,
                    reported[(n, k)].device,
                    said.get(layout.ranks[n][k], ""),
                )
                for n in live[k]
            ]
            for d in evidence.dead_links(failures, members, None):
                if d.kind == "link" and d.node is not None:
                    gone = layout.nodes.index(d.node)
                    dead.append(DeadPart("link", gone, k, reasons=d.conviction.evidence[:4]))
                    live[k] = tuple(n for n in live[k] if n != gone)
                else:
                    dead.append(DeadPart("rail", None, k, reasons=d.conviction.evidence[:4]))
                    live[k] = ()
            if len(live[k]) < 2:
                live[k] = ()
        formed.membership = replace(membership, live=tuple(live), dead=membership.dead + tuple(dead))
        if attempt == 2:
            return
        again, problem = make_rail_groups(layout, formed.membership.live, ifname, startup_s, op_timeout_s, failed)
        formed.made += len(again)
        formed.groups.update(again)


def _spoken(posted: Sequence[str], silent: str) -> list[tuple[int, str]]:
    """(rank, what it said) of every rank that said more than ``silent``: all that the others need to hear."""
    return [(r, text) for r, text in enumerate(posted) if text != silent]


def _probe(group: ProcessGroup, device: torch.device, deadline_s: float) -> bool:
    """One tiny all-reduce in ``group``, polled until it ends or ``deadline_s`` passes (never waited on: a wait
    would block the host for as long as NCCL retries); True only when it completed without an error.

    torch's ``is_completed()`` is true for a work that ended in an NCCL error too (``ProcessGroupNCCL.cpp``
    ``WorkNCCL::isCompleted``: ``exception() || finishedGPUExecutionInternal()``): with a site's
    ``NCCL_IB_TIMEOUT`` of 17 or less, IB gives up on a black-holed link within this deadline (4.096 us x 2^17
    x 7 retries, about 4 s) and the probe ends, errored. ``exception()`` tells (the error, or None; torch keeps
    it although it calls it deprecated, pytorch issue 46291); ``is_success()`` does not (recent torch's
    ``WorkNCCL::isSuccess`` raises "deprecated"), nor does a non-blocking ``wait()`` on every torch."""
    import torch
    import torch.distributed as dist

    work = dist.all_reduce(torch.ones(1, device=device), group=group, async_op=True)
    end = time.monotonic() + deadline_s
    while not work.is_completed():
        if time.monotonic() >= end:
            return False
        time.sleep(POLL_S)
    return work.exception() is None


def _abort(group: ProcessGroup) -> None:
    """Abort a group whose probe missed its deadline: ``ProcessGroupNCCL::abort`` -> ``ncclCommAbort``, whose
    abort flag makes the communicator's kernels return at once (its handle is never used again)."""
    from torch.distributed.distributed_c10d import _abort_process_group

    try:
        named = bool(group.group_name)
    except RuntimeError:  # a backend that is its own ProcessGroup: torch never names nor registers it by name
        named = False
    if named:
        _abort_process_group(group)  # aborts it and forgets it
    else:
        group.abort()


def _nccl_check(ctx: DistContext, layout: RailLayout, formed: RailGroups, coord: Coord, op_timeout_s: float) -> None:
    """Every rail group's bounded probe; a group that misses it is aborted, its members probed in pairs, and it
    is made again from the members that completed (``formed`` is updated in place)."""
    rank = ctx.info.rank
    _, rail = layout.where(rank)
    for attempt in (1, 2):
        mine = formed.mine(rank, layout)
        ok = "-" if mine is None else ("1" if _probe(mine, ctx.device, GROUP_PROBE_S) else "0")
        failed: list[int] = coord.agree(
            ok, lambda posted: sorted({layout.where(r)[1] for r, t in enumerate(posted) if t == "0"})
        )
        if not failed:
            return
        if mine is not None and rail in failed:
            _abort(mine)
        for k in failed:
            formed.groups.pop(k, None)
        if attempt == 2:
            # Made again from the members that completed their pairs, and still no completion: the rail.
            dead = tuple(
                DeadPart(
                    "rail",
                    None,
                    k,
                    reasons=("its group made of the members that completed their pair probes did not complete either",),
                )
                for k in failed
            )
            live = tuple(() if k in failed else m for k, m in enumerate(formed.membership.live))
            formed.membership = replace(formed.membership, live=live, dead=formed.membership.dead + dead)
            return
        reports, made = _pair_probes(ctx, layout, formed, coord, failed, op_timeout_s)
        formed.made += made
        probed = {(r.node, r.rail): r for r in reports}
        formed.reports = [probed.get((r.node, r.rail), r) for r in formed.reports]
        decided = liveness.decide(reports, len(layout.nodes), layout.rails)
        live = tuple(decided.live[k] if k in failed else m for k, m in enumerate(formed.membership.live))
        dead = formed.membership.dead + tuple(d for d in decided.dead if d.rail in failed)
        out = formed.membership.unmeasured | {(n, k) for n, k in decided.unmeasured if k in failed}
        formed.membership = Membership(live, dead, frozenset(out))
        again, _ = make_rail_groups(layout, live, None, op_timeout_s, op_timeout_s, failed)
        formed.groups.update(again)
        formed.made += len(again)


def _pair_probes(
    ctx: DistContext, layout: RailLayout, formed: RailGroups, coord: Coord, rails: Sequence[int], op_timeout_s: float
) -> tuple[list[LinkReport], int]:
    """The members of each failed rail probed in disjoint pairs, round after round, each pair a two-rank group
    with one tiny all-reduce under :data:`PAIR_PROBE_S`; returns a report per member of those rails (its port as
    before, the peers it completed with and those it did not) and the groups made.

    The first round pairs the members in the circle method's first round; every later round pairs each member
    that has completed with nobody yet with a member that has (a known-good end), until every member has either
    completed once or failed with two known-good members (one, where there is only one).
    """

    rank = ctx.info.rank
    me, my_rail = layout.where(rank)
    good: dict[int, set[int]] = {k: set() for k in rails}
    results: dict[int, dict[int, dict[int, bool]]] = {k: {n: {} for n in formed.membership.live[k]} for k in rails}
    made = 0
    for index in range(2 * len(layout.nodes)):
        pairs: list[tuple[int, int, int]] = []
        for k in rails:
            pairs += [(k, a, b) for a, b in _next_pairs(formed.membership.live[k], results[k], good[k], index)]
        if not pairs:
            break
        mine = None
        # A round's pairs are disjoint (a rank probes one peer on its own rail): one split makes all of them.
        made_now = disjoint_groups(
            [[layout.ranks[a][k], layout.ranks[b][k]] for k, a, b in pairs], _seconds(op_timeout_s)
        )
        made += len(pairs)
        for (k, a, b), group in zip(pairs, made_now, strict=True):
            if k == my_rail and me in (a, b) and group is not None:
                mine = (group, b if a == me else a)
        said = _probe_pair(mine, ctx.device) if mine is not None else "-"
        # Every rank plans the next round from every probe's outcome, and only the probing ranks have one.
        for r, text in coord.agree(said, lambda posted: _spoken(posted, "-")):
            n, k = layout.where(r)
            other, completed = (int(x) for x in text.split())
            results[k][n][other] = bool(completed)
            if completed:
                good[k] |= {n, other}
    return _probed_reports(formed, rails, results), made


def _probe_pair(mine: tuple[ProcessGroup, int], device: torch.device) -> str:
    """This rank's pair probed: ``"peer 1"`` when it completed, ``"peer 0"`` when not."""
    group, peer = mine
    done = _probe(group, device, PAIR_PROBE_S)
    _abort(group)  # done with it either way; a completed one has nothing in flight
    return f"{peer} {int(done)}"


def _probed_reports(
    formed: RailGroups, rails: Sequence[int], results: dict[int, dict[int, dict[int, bool]]]
) -> list[LinkReport]:
    """A report per member of the probed rails: its port as before, the peers it completed with and those it
    did not (``results[rail][node][peer]``)."""
    reports = []
    by_key = {(r.node, r.rail): r for r in formed.reports}
    for k in rails:
        for n, tried in results[k].items():
            before = by_key[(n, k)]
            reached = tuple(sorted(p for p, done in tried.items() if done))
            failed = tuple(
                (p, f"a two-rank probe did not complete within {PAIR_PROBE_S:g} s")
                for p, done in sorted(tried.items())
                if not done
            )
            reports.append(replace(before, reached=reached, failed=failed))
    return reports


def _next_pairs(
    members: Sequence[int], tried: dict[int, dict[int, bool]], good: set[int], index: int
) -> list[tuple[int, int]]:
    """The next round's disjoint pairs of one rail's members (see ``_pair_probes``); empty when settled."""
    if index == 0:
        rounds, _ = circle_rounds(len(members))
        return [(members[int(a)], members[int(b)]) for a, b in rounds[0]] if len(rounds) else []
    open_ = [n for n in members if n not in good and _failed_with_good(tried[n], good) < min(2, len(good - {n}))]
    helpers = sorted(good)
    if not helpers:
        # Nobody has completed yet: the circle's next round, while it has one.
        rounds, _ = circle_rounds(len(members))
        if index >= len(rounds):
            return []
        return [(members[int(a)], members[int(b)]) for a, b in rounds[index]]
    out = []
    used: set[int] = set()
    for n in open_:
        helper = next((h for h in helpers if h not in used and h not in tried[n]), None)
        if helper is None:
            continue
        used.add(helper)
        out.append((min(n, helper), max(n, helper)))
    return out


def _failed_with_good(tried: dict[int, bool], good: set[int]) -> int:
    return sum(1 for peer, done in tried.items() if not done and peer in good)


def _seconds(s: float) -> timedelta:
    from datetime import timedelta

    return timedelta(seconds=s)
