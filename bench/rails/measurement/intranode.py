"""The rank side of the intra-node pair matrix: every pair of local ranks on every node, all nodes at once.

GPU i and GPU j of one node exchange over NVLink (through the NVSwitch) on GPUs, over loopback on CPU.
Every rank of the run takes part, at the same point of the program:

* one process group per node holding that node's local ranks: on NCCL bound to a device one split of the world
  gives every node its group (``bench.runtime.subgroups``), else ``new_group`` is called by every rank for every
  node, in node order, as torch requires. Pairs run inside it as batched point-to-point, never with a
  communicator of their own: 8 GPUs would otherwise need 28 per node. On gloo the node's group binds
  loopback, since all its members share the host;
* the local ranks are paired round-robin by the circle method (``bench.rails.plan.schedule``): 7 rounds of 4
  disjoint pairs on 8 GPUs, every node running the same round in its own group at once;
* each direction is timed on its own by the one timing loop at both ends
(``bench.rails.measurement.exchanges.one_way``),
  and the slower end counts, as for the node pairs on a rail;
* rank 0 finds the suspects (local pairs with a slow sample) and every rank re-measures them, ``confirm``
  passes of the rounds that hold one, each suspect with its partner in the round that found it, as the rails
  matrix confirms its suspects (``bench.rails.plan.schedule.confirmation_rounds``, with a suspect's node where a
  rails cell has its rail): one slow sample under a busy host names nothing;
* rank 0 gathers the times and every GPU's PCI bus id and localises (``bench.rails.diagnosis.gpu_pairs``).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict

from bench.backends import ResolvedBackend
from bench.measure import device as device_ops
from bench.measure.timing import reduce_times, time_region
from bench.rails.diagnosis.gpu_outcome import IntraNodeOutcome
from bench.rails.diagnosis.gpu_pairs import LocalMatrix, LocalPairTime, localise_gpus, suspect_cells
from bench.rails.diagnosis.matrix import flatten
from bench.rails.diagnosis.rails_outcome import RailsOutcome
from bench.rails.measurement.exchanges import gloo_interface, one_way, pair_align, pair_buffers
from bench.rails.measurement.writer import LiveWriter
from bench.rails.plan.acceptance import intra_planned
from bench.rails.plan.config import RailsSettings
from bench.rails.plan.layout import RailLayout, rail_layout
from bench.rails.plan.schedule import Round, confirmation_rounds, schedule
from bench.runtime.coord import Coord, GroupCoord
from bench.runtime.dist import DistContext, gpu_bus_id, torch_timeout_s
from bench.runtime.subgroups import disjoint_groups
from bench.runtime.watchdog import Watchdog

if TYPE_CHECKING:
    import torch
    from torch.distributed import ProcessGroup

LOOPBACK = "lo"


def wanted(settings: RailsSettings, backend: ResolvedBackend) -> bool:
    """Whether to run the matrix: as asked, else (``None``) on NCCL, where local ranks are GPUs on NVLink; the
    plan's own rule (``bench.rails.plan.acceptance.intra_planned``), so that it prices what runs."""
    return intra_planned(settings, backend)


def make_node_groups(layout: RailLayout, backend: str, timeout_s: float) -> list[ProcessGroup | None]:
    """One process group per node, of its local ranks in local-rank order (every rank makes every one; on NCCL
    bound to a device all of them in one split of the world, ``bench.runtime.subgroups``)."""
    with gloo_interface(LOOPBACK if backend == "gloo" else None):
        return disjoint_groups([list(per_node) for per_node in layout.ranks], timedelta(seconds=timeout_s))


def local_round(
    rnd: Round,
    layout: RailLayout,
    rank: int,
    group: ProcessGroup,
    buffers: tuple[torch.Tensor, torch.Tensor],
    *,
    iters: int,
    warmup: int,
) -> list[LocalPairTime]:
    """This rank's part of one round on its node: each direction of each local pair, the lower local rank
    sending first; a direction took as long as its slower end, known after one gather over the node."""
    import torch.distributed as dist

    node, gpu = layout.where(rank)
    send_buf, recv_buf = buffers
    device = send_buf.device
    # A confirmation round's cells are (node, low, high): the node where the rails matrix has its rail.
    partner = rnd.partner(gpu, node)
    peer_rank = layout.ranks[node][partner] if partner is not None else None
    nbytes = send_buf.numel() * send_buf.element_size()
    times: list[LocalPairTime] = []
    for sender_is_low in (True, False):
        sending = partner is not None and (gpu < partner) == sender_is_low
        step = one_way(send_buf, recv_buf, peer_rank, sending, group)
        align = pair_align(peer_rank, group, device)
        mine = time_region(step, group=group, device=device, iters=iters, warmup=warmup, align=align)
        everyone, _ = reduce_times(mine, 0, group, device)
        if sending and peer_rank is not None and partner is not None:
            theirs = everyone[dist.get_group_rank(group, peer_rank)]
            took = max(mine, theirs)
            times.append(LocalPairTime(node, gpu, partner, rnd.repeat, rnd.index, nbytes, took, rnd.confirm))
    return times


class IntraNodeReport(TypedDict):
    """What each rank sends rank 0 at the end of the intra-node pairs."""

    times: list[LocalPairTime]
    bus_id: str | None


def _bus_id(device: torch.device) -> str | None:
    return gpu_bus_id(device.index) if device_ops.is_cuda(device) and device.index is not None else None


@dataclasses.dataclass(frozen=True)
class _NodeRounds:
    """What every round on this rank's node runs with: its node's group, the pair buffers, the timing loop."""

    settings: RailsSettings
    layout: RailLayout
    rank: int
    group: ProcessGroup
    buffers: tuple[torch.Tensor, torch.Tensor]

    def run(self, rnd: Round) -> list[LocalPairTime]:
        test = self.settings.test
        return local_round(rnd, self.layout, self.rank, self.group, self.buffers, iters=test.iters, warmup=test.warmup)


def intra_node_phase(
    settings: RailsSettings,
    ctx: DistContext,
    watchdog: Watchdog,
    live: LiveWriter | None = None,
    coord: Coord | None = None,
) -> IntraNodeOutcome | None:
    """Every local pair of every node; the outcome on rank 0, None elsewhere. Each round's times reach rank 0
    after the round, and ``live`` (rank 0) writes them down at once. ``coord``: how the world agrees
    (``bench.runtime.coord``; default the world group)."""
    coord = coord or GroupCoord(None)
    layout = rail_layout(ctx.hosts)
    rank, local = ctx.info.rank, layout.rails
    if local < 2:
        if rank != 0:
            return None
        return IntraNodeOutcome(layout.nodes, local, skipped="1 local rank per node: no local pair to measure")
    watchdog.enter("creating the node groups")
    # Past the watchdog's timeout (bench.runtime.dist.torch_timeout_s): a step that overruns is railbench's
    # to report, never torch's.
    groups = make_node_groups(layout, ctx.backend, torch_timeout_s(settings.timeout_s))
    watchdog.leave()
    node, _ = layout.where(rank)
    # The profile's NVLink figure says nothing about loopback between CPU ranks.
    target = settings.local_pair_target_gbps if device_ops.is_cuda(ctx.device) else None
    mine = groups[node]
    if mine is None:  # every rank is a member of its own node's group; torch broke that promise
        raise RuntimeError(f"rank {rank} got no group for its own node {layout.nodes[node]}")
    on_node = _NodeRounds(settings, layout, rank, mine, pair_buffers(settings.test.pair_bytes, ctx.device))
    rounds = schedule(local, settings.test.repeats, settings.config.seed)
    times, heard = _matrix(on_node, rounds, watchdog, live, coord)
    if settings.test.confirm:
        times += _confirm(on_node, rounds, heard, target, watchdog, coord)
    del on_node  # the pair buffers: a GPU's memory is the sweep's after this phase
    watchdog.enter("gathering the intra-node results")
    sent: IntraNodeReport = {"times": times, "bus_id": _bus_id(ctx.device)}
    gathered = coord.gather(sent)
    watchdog.leave()
    if gathered is None:
        return None
    return _judged(settings, layout, gathered, target, process_groups=len(groups))


def _matrix(
    on_node: _NodeRounds, rounds: tuple[Round, ...], watchdog: Watchdog, live: LiveWriter | None, coord: Coord
) -> tuple[list[LocalPairTime], list[LocalPairTime]]:
    """Every round of the matrix: (this rank's times, every rank's as rank 0 heard them after each round)."""
    times: list[LocalPairTime] = []
    heard_all: list[LocalPairTime] = []  # rank 0: every rank's matrix times, to find the suspects in
    for rnd in rounds:
        watchdog.enter(f"intra-node pairs: repeat {rnd.repeat + 1}, round {rnd.index + 1}")
        mine = on_node.run(rnd)
        times += mine
        heard = coord.gather(mine)  # a few small records per rank, outside the timed region, to rank 0
        watchdog.leave()
        if heard is not None:
            heard_all += flatten(heard)
            if live is not None:
                live.add_local(flatten(heard))
    return times, heard_all


def _confirm(
    on_node: _NodeRounds,
    rounds: tuple[Round, ...],
    heard: list[LocalPairTime],
    target: float | None,
    watchdog: Watchdog,
    coord: Coord,
) -> list[LocalPairTime]:
    """The suspects rank 0 found in ``heard``, re-measured by every rank in the rounds that hold one."""
    settings, layout = on_node.settings, on_node.layout
    found = None
    if on_node.rank == 0:
        found = suspect_cells(
            heard,
            layout.nodes,
            layout.rails,
            target_Gbps=target,
            pass_fraction=settings.profile.pass_fraction,
            relative_fraction=settings.test.relative_fraction,
        )
    times: list[LocalPairTime] = []
    for rnd in confirmation_rounds(rounds, coord.broadcast(found), settings.test.confirm):
        watchdog.enter(
            f"intra-node re-measurements: pass {rnd.confirm}, repeat {rnd.repeat + 1}, round {rnd.index + 1}"
        )
        times += on_node.run(rnd)
        watchdog.leave()
    return times


def _judged(
    settings: RailsSettings,
    layout: RailLayout,
    gathered: list[IntraNodeReport],
    target: float | None,
    *,
    process_groups: int,
) -> IntraNodeOutcome:
    """Rank 0's outcome from every rank's times and bus id: the GPUs localised over the matrix and its
    re-measurements, named before their conviction (``bench.rails.diagnosis.corroborate``)."""
    local = layout.rails
    all_times = sorted(
        flatten([g["times"] for g in gathered]), key=lambda t: (t.confirm, t.repeat, t.round, t.node, t.gpu)
    )
    bus_ids = {name: tuple(gathered[r]["bus_id"] for r in layout.ranks[k]) for k, name in enumerate(layout.nodes)}
    named = localise_gpus(
        LocalMatrix.from_times(all_times, layout.nodes, local),
        target_Gbps=target,
        pass_fraction=settings.profile.pass_fraction,
        relative_fraction=settings.test.relative_fraction,
        bus_ids=bus_ids,
    )
    return IntraNodeOutcome(
        layout.nodes,
        local,
        tuple(t for t in all_times if not t.confirm),
        bus_ids,
        target,
        named=named,
        process_groups=process_groups,
        remeasured=tuple(t for t in all_times if t.confirm),
    )


def attach(outcome: RailsOutcome | None, intra: IntraNodeOutcome | None) -> RailsOutcome | None:
    """The rails outcome with the intra-node matrix and its node groups counted (rank 0; None elsewhere)."""
    if outcome is None or intra is None:
        return outcome
    groups = (outcome.process_groups or 1) + intra.process_groups  # a skipped rails test made the world only
    return dataclasses.replace(
        outcome, intra_node=intra, written=dataclasses.replace(outcome.written, process_groups=groups)
    )
