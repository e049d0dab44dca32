"""The phases of the acceptance plan (``bench.rails.plan.acceptance``): what each part of a rails or accept run does on
a cluster's shape, its rounds, cells and bytes, and its seconds as a range over ``bench.rails.plan.model``.

Each phase is built from the same pieces the run is: the start-up's communicators, the rail groups and each rail
alone, the pair matrix's rounds and the confirmation passes over its suspects, the intra-node pairs, accept's
world sweep, and the end. Pure arithmetic; nothing here talks to a rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.jsondoc import JSONObject
from bench.measure.collectives import get_collective
from bench.rails.plan.budget import cell_budget, chunks_per_message
from bench.rails.plan.config import RailsSettings, planned_units
from bench.rails.plan.model import PlanModel, Span
from bench.rails.plan.remeasure import QUIET_PER_LEAF, QUIET_REPEATS, quiet_units
from bench.rails.plan.schedule import Units, round_count, unit_rounds

GROUP_STEPS = 4
"""Small collectives inside the rail group around each direction of a pair
(``bench.rails.measurement.exchanges.pair_round``): the barrier before it, the pair's align, the agreement on a cell's
chunked plan, the gather of every end's time."""
PAIR_RECORD_BYTES = 160
"""One pair time as the ranks send it to rank 0 (``bench.rails.diagnosis.matrix.PairTime``, pickled)."""


@dataclass(frozen=True)
class Sweep:
    """What accept's world sweep runs, for its phase of the plan."""

    sizes: list[int]
    collectives: tuple[str, ...]
    iters: int
    warmup: int
    check: bool
    max_bytes: int
    judge_min_bytes: int | None = None
    """The smallest size judged against a target (the profile's ``judge_min_bytes``); None: none judged."""


@dataclass(frozen=True)
class Phase:
    """One phase of the run as planned."""

    name: str
    rounds: int
    """Rounds at most (confirmation: when every round holds a suspect)."""
    cells: int
    """Measurements at most: pair directions, rail-group collectives, sweep points."""
    bytes: int
    """Bytes each rank sends in the phase, at most."""
    seconds: Span

    def to_json(self) -> JSONObject:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "cells": self.cells,
            "bytes": self.bytes,
            "low_s": round(self.seconds.low, 3),
            "high_s": round(self.seconds.high, 3),
        }


def cell_seconds(nbytes: int, messages: int, rate_Gbps: Span, budget_s: float | None = None) -> Span:
    """One measured cell: a probe chunk, then ``messages`` messages at ``rate_Gbps``, within its budget."""
    probe = 1 / chunks_per_message(nbytes)
    seconds = Span.point((messages + probe) * nbytes * 8 / 1e9).over(rate_Gbps)
    if budget_s is None:
        return seconds
    return Span(min(seconds.low, budget_s), min(seconds.high, budget_s))


def pair_round_seconds(
    cell: Span, model: PlanModel, world: int, *, new_peer: bool, gather: bool, agree: bool = False
) -> Span:
    """One round of a pair matrix: each direction in turn, after its slowest cell and the group's small
    collectives (``agree``: and the budget's fastest probe agreed over the world, where no line rate is
    known); a new peer's connection (``new_peer``); the round's times gathered over the world (``gather``)."""
    direction = cell + model.step_s * GROUP_STEPS
    if agree:
        direction = direction + model.sync(world)
    seconds = direction * 2
    if new_peer:
        seconds = seconds + model.connect_s
    if gather:
        seconds = seconds + model.sync(world)
    return seconds


def pair_cell(settings: RailsSettings, model: PlanModel) -> tuple[Span, float]:
    """(seconds of a healthy pair cell, its budget: the most a dead-slow one costs)."""
    messages = settings.test.warmup + settings.test.iters
    budget = cell_budget(settings.test.pair_bytes, messages, model.rate_Gbps.low, settings.config.cell_budget_s)
    return cell_seconds(settings.test.pair_bytes, messages, model.pair_Gbps, budget), budget


INIT_ALLGATHERS = Span(2, 3)
"""NCCL's bootstrap all-gathers in one communicator's initialisation: three (NVIDIA/nccl#251), two since 2.23
packed two of them into one (NVIDIA/nccl#1155; ``initTransportsRank`` calls ``bootstrapAllGather`` twice)."""


def ring_steps(members: int) -> Span:
    """Steps of one bootstrap all-gather around ``members`` ranks, each a ~100-byte TCP message to the next rank
    that waits for the one before: ``members / 2`` on NCCL's two-way ring (2.28.7 on, NVIDIA/nccl#1791 and
    ROCm/rocm-systems#5644), ``members - 1`` on the one-way ring before it."""
    return Span(members // 2, max(members - 1, 0))


def communicator_seconds(model: PlanModel, members: int) -> Span:
    """One communicator's set-up on its ``members``: its fixed part (topology, graphs, buffers: ``comm_s``) and
    its bootstrap all-gathers around its members (NCCL; gloo connects each member to every other one in turn)."""
    if not model.splits:
        return model.comm_s + model.comm_rank_s * max(members - 1, 0)
    return model.comm_s + model.comm_rank_s * ring_steps(members) * INIT_ALLGATHERS


def groups_seconds(model: PlanModel, world: int, members: int, count: int) -> Span:
    """``count`` groups of ``members`` ranks each (``new_group``, every rank calling each in turn), as a rank of
    ``world`` waits for them. On NCCL with the world bound to a device (``bench.runtime.dist.init_distributed``)
    torch splits every group from the world (``ncclCommSplit``): every rank of the world takes part in each
    split's colour all-gather, member or not (NCCL's ``commGetSplitInfo``), and the next split waits for the
    members' own set-up (pytorch/pytorch#130407: 32 groups of 8 are 32 splits on every rank), unless torch makes
    them all in one split (``model.at_once``: one ring over the world, then every group's set-up at once). On gloo
    only the members of a group take part, so a rank waits for its own group alone."""
    if not model.splits:
        return communicator_seconds(model, members)
    one = model.comm_rank_s * ring_steps(world) + communicator_seconds(model, members)
    return one if model.at_once else one * count


def startup_seconds(nodes: int, ranks: int, model: PlanModel) -> Span:
    """The launch, then the world's communicator and one group per rail (:func:`groups_seconds`: one split of the
    world for all of them, or one per rail in turn), and the agreements around them (each rail link probed, a
    barrier, each group's probe)."""
    world = nodes * ranks
    groups = groups_seconds(model, world, nodes, ranks)
    return model.launch_s + communicator_seconds(model, world) + groups + model.sync(world) * 3


def matrix_shape(nodes: int, ranks: int, settings: RailsSettings) -> tuple[int, float]:
    """(rounds of one repeat, pairs per round on average) of the schedule the run will use: the unit schedule
    where the cabling gives units (``bench.rails.plan.config.planned_units``), else the full circle matrix."""
    units = planned_units(settings, nodes)
    by_unit = unit_rounds(units, ranks) if units is not None else None
    if by_unit is None:
        return round_count(nodes), nodes // 2
    return len(by_unit), sum(len(r) for r in by_unit) / len(by_unit)


def schedule_line(nodes: int, ranks: int, settings: RailsSettings) -> str | None:
    """The plan's line on the unit schedule where the run will use it; where a cabling was given and the plan still
    prices the full matrix, why (None: the full matrix, asked for or with no cabling, said nowhere)."""
    units = planned_units(settings, nodes) if settings.config.pairs else None
    by_unit = unit_rounds(units, ranks) if units is not None else None
    if units is None or by_unit is None:
        return _full_matrix_why(nodes, settings)
    unit_of = units.of
    inside = sum(1 for r in by_unit if all(unit_of[a] == unit_of[b] for a, b in r.tolist()))
    full = round_count(nodes)
    return (
        f"pairs: the unit schedule from the cabling, {inside} rounds inside the units and {len(by_unit) - inside} "
        f"between them, not the full matrix's {full} (--full-matrix pairs every two nodes)"
    )


def _full_matrix_why(nodes: int, settings: RailsSettings) -> str | None:
    """Why a plan given the cabling prices the full matrix: a file for a smaller fabric than ``--nodes`` (a cabling
    of one unit, or of last month's cluster) would otherwise price the full matrix's rounds without a word."""
    topology = settings.topology
    if topology is None or settings.config.full_matrix or not settings.config.pairs:
        return None
    if not topology.fabric.rail_optimised:
        return "pairs: the full matrix: the cabling (--topology) shows no rails, so it gives no units to schedule by"
    hosts = sum(len(unit) for unit in topology.fabric.units)
    if hosts < nodes:
        return (
            f"pairs: the full matrix: the cabling (--topology) holds {hosts} hosts, fewer than the plan's {nodes} "
            "nodes; give the whole fabric's cabling for the unit schedule"
        )
    return None


def confirmation_rounds(rounds: int, pairs: float, ranks: int, passes: int, share: float) -> tuple[int, int]:
    """(rounds, cells) the confirmation passes re-run when a share ``share`` of samples is suspect: each pass
    re-runs every round that holds a suspect cell (a cell: a pair on a rail, suspect when either direction
    is), with only those cells, both directions."""
    if passes <= 0 or share <= 0:
        return 0, 0
    cell = 1 - (1 - share) ** 2
    held = 1 - (1 - cell) ** (pairs * ranks)
    return passes * math.ceil(rounds * held - 1e-9), round(2 * passes * cell * rounds * pairs * ranks)


def quiet_pass(units: Units | None, ranks: int) -> tuple[int, int]:
    """(rounds, cells) of the quiet pass and its repeats at most (``bench.rails.plan.remeasure.quiet_rounds``,
    ``quiet_repeat_rounds``): where the cabling gives two units or more, up to ``QUIET_PER_LEAF`` flows between
    units at each leaf, one a round, both directions; packed first fit, about as many rounds as that and at most
    twice (tests/test_rails_remeasure.py). Then each of them that read low measured alone ``QUIET_REPEATS`` more
    times, packed the same way: priced as if every one did, though a healthy fabric's read low a few in a hundred;
    and those held low ``QUIET_REPEATS`` times more, a cell or none a leaf on a healthy fabric (about one run in a
    thousand holds one: ``bench.rails.diagnosis.alone``), priced as two rounds a pass."""
    count = quiet_units(units)
    if not count:
        return 0, 0
    rounds = 2 * QUIET_PER_LEAF * (1 + QUIET_REPEATS) + 2 * QUIET_REPEATS
    return rounds, count * ranks * (QUIET_PER_LEAF * (1 + QUIET_REPEATS) + QUIET_REPEATS)


def quiet_pass_alone(units: Units | None, ranks: int) -> tuple[int, int]:
    """(rounds, cells) of the quiet pass at its least: every leaf's flows between units are measured whatever the
    suspects (``bench.rails.diagnosis.quiet_fill``), ``QUIET_PER_LEAF`` a leaf where it has that many partners in
    other units, one a round: a healthy fabric's pass, with none of them read low."""
    count = quiet_units(units)
    if not count or units is None:
        return 0, 0
    smallest = min(units.of.count(u) for u in set(units.of))
    flows = min(QUIET_PER_LEAF, len(units.of) - smallest)
    return flows, count * ranks * flows


def rails_phases(nodes: int, ranks: int, settings: RailsSettings, model: PlanModel, intra: bool) -> list[Phase]:
    """The phases of the rails test on ``nodes`` x ``ranks``."""
    phases = [Phase("start-up and rail groups", 0, 0, 0, startup_seconds(nodes, ranks, model))]
    if nodes >= 2:
        phases += _rail_phases(nodes, ranks, settings, model)
    follows: list[Phase] = []
    if settings.config.pairs and nodes >= 2:
        matrix, gathering = _matrix_phases(nodes, ranks, settings, model)
        phases += matrix
        follows = [gathering] if gathering is not None else []
    again = rails_again_phase(nodes, ranks, settings, model)
    phases += [again] if again is not None else []
    if intra and ranks >= 2:
        # The pair times are gathered while the intra-node phase runs its own rounds: one lap, as the ranks
        # time it.
        phases.append(_intra_phase(nodes, ranks, settings, model, sum((p.seconds for p in follows), Span.point(0.0))))
        follows = []
    return phases + follows


def _rail_phases(nodes: int, ranks: int, settings: RailsSettings, model: PlanModel) -> list[Phase]:
    """Every rail's group at once (each collective of the test), then each rail alone in its counter window."""
    world = nodes * ranks
    messages = settings.test.warmup + settings.test.iters
    rail_s, rail_bytes, measured_alone = Span.point(0.0), 0, []
    for name in settings.test.collectives:
        factor = max(1.0, get_collective(name).busbw_factor(nodes))
        wire = int(settings.test.rail_bytes * factor)
        budget = cell_budget(wire, messages, model.rate_Gbps.low, settings.config.cell_budget_s)
        rail_s += cell_seconds(wire, messages, model.rail_Gbps, budget) + model.step_s * 2 + model.cell_overhead_s
        rail_bytes += wire * (messages + 1)
        measured_alone.append(cell_seconds(wire, messages if settings.config.isolation else 1, model.rail_Gbps, budget))
    # Each rail's window: every collective alone (--isolation) or one call of the first, a barrier on either
    # side, and every node's counters read at its edge.
    alone = sum(measured_alone, Span.point(0.0)) if settings.config.isolation else measured_alone[0]
    windows = (alone + model.sync(world) * 2 + model.cell_overhead_s) * ranks
    return [
        Phase("rail groups, every rail at once", 1, ranks * len(settings.test.collectives), rail_bytes, rail_s),
        Phase("each rail alone (counter windows)", ranks, ranks, 0, windows),
    ]


def rails_again_phase(nodes: int, ranks: int, settings: RailsSettings, model: PlanModel) -> Phase | None:
    """A rail group under its mark measured again, every rail at once, up to ``--confirm`` times, and with
    ``--isolation`` each rail alone again (``bench.rails.measurement.steps.rails_again``): rank 0's answer (which
    calls are short) always, then at most every collective each time. Its seconds are a healthy cluster's, as every
    phase's: none short at the low end, at the high end one pass (a healthy rail group that read low once reads at
    its level again); its rounds, cells and bytes are the most it can run."""
    passes = settings.test.confirm
    if not passes or nodes < 2:
        return None
    once, alone = _rail_phases(nodes, ranks, settings, model)
    sync = model.sync(nodes * ranks)
    # A pass: the collectives (each a budget's agreement at most, where no line rate is given), with --isolation
    # each rail alone again as it first ran, and the gather of the new results with their counter window.
    agreements = len(settings.test.collectives) + 1
    high = once.seconds.high + (alone.seconds.high if settings.config.isolation else 0.0)
    seconds = Span(sync.low, sync.high + high + agreements * sync.high)
    return Phase(f"rail groups again (up to {passes})", passes, once.cells * passes, once.bytes * passes, seconds)


def _matrix_phases(
    nodes: int, ranks: int, settings: RailsSettings, model: PlanModel
) -> tuple[list[Phase], Phase | None]:
    """The pair matrix and its confirmation passes; and, without confirmation, the gathering of the pair times
    as a phase of its own (None with it: the passes gather them)."""
    world = nodes * ranks
    messages = settings.test.warmup + settings.test.iters
    agree = not settings.rail_rate_gbps and settings.config.cell_budget_s is None
    per_repeat, pairs = matrix_shape(nodes, ranks, settings)
    rounds = per_repeat * settings.test.repeats
    cell, _ = pair_cell(settings, model)
    # A rank sends in one direction of its pair each round: (warm-up + iters) messages and a probe chunk.
    per_round = settings.test.pair_bytes * (messages + 1)
    matrix_round = pair_round_seconds(cell, model, world, new_peer=True, gather=True, agree=agree)
    cells = round(2 * rounds * pairs * ranks)
    matrix = Phase("pair matrix", rounds, cells, rounds * per_round, matrix_round * rounds)
    # Then every rank's pair times reach rank 0, the suspects go out, and their re-measurements come back.
    gathered = Span.point(world * rounds * PAIR_RECORD_BYTES / 1e6).over(model.store_MBps) + model.sync(world) * 3
    if not settings.test.confirm:
        return [matrix], Phase("gathering the pair times", 0, 0, 0, gathered)
    share = model.suspect_share(suspect_threshold(settings))
    quick = confirmation_rounds(rounds, pairs, ranks, settings.test.confirm, share.low)
    slow = confirmation_rounds(rounds, pairs, ranks, settings.test.confirm, share.high)
    planned = planned_units(settings, nodes)
    quiet, least = quiet_pass(planned, ranks), quiet_pass_alone(planned, ranks)
    quick = (quick[0] + max(least[0], min(quiet[0], quick[0])), quick[1] + max(least[1], min(quiet[1], quick[1])))
    slow = (slow[0] + quiet[0], slow[1] + quiet[1])
    again = pair_round_seconds(cell, model, world, new_peer=False, gather=False, agree=agree)
    seconds = Span(again.low * quick[0], again.high * slow[0]) + gathered
    share_bytes = math.ceil(slow[1] / world) * per_round  # a rank's share of the suspects
    confirmation = Phase(f"confirmation ({settings.test.confirm} pass(es))", slow[0], slow[1], share_bytes, seconds)
    return [matrix, confirmation], None


def _intra_phase(nodes: int, ranks: int, settings: RailsSettings, model: PlanModel, beside: Span) -> Phase:
    """Every local pair of every node at once, and its confirmation passes; ``beside``: what runs inside the
    same lap (the pair times' gathering)."""
    world = nodes * ranks
    messages = settings.test.warmup + settings.test.iters
    local_rounds = round_count(ranks) * settings.test.repeats
    rate = Span.point(model.nvlink_Gbps) if model.nvlink_Gbps else model.pair_Gbps
    cell = cell_seconds(settings.test.pair_bytes, messages, rate)
    local_round = pair_round_seconds(cell, model, world, new_peer=True, gather=True)
    cells = 2 * local_rounds * (ranks // 2) * nodes
    startup = groups_seconds(model, world, ranks, nodes)  # one group per node (bench.rails.measurement.intranode)
    seconds = local_round * local_rounds + startup + beside
    again_rounds = 0
    if settings.test.confirm:
        # Suspect local pairs are re-measured as the rails' are (bench.rails.measurement.intranode), inside this phase
        # (one lap): the same passes over the rounds that hold one, each node's GPUs in the place of a rail's
        # nodes. The share of suspect samples is the fabric's noise model's: loopback and NVLink have none
        # of their own here.
        share = model.suspect_share(suspect_threshold(settings))
        quick = confirmation_rounds(local_rounds, ranks // 2, nodes, settings.test.confirm, share.low)
        slow = confirmation_rounds(local_rounds, ranks // 2, nodes, settings.test.confirm, share.high)
        again = pair_round_seconds(cell, model, world, new_peer=False, gather=False)
        seconds += Span(again.low * quick[0], again.high * slow[0]) + model.sync(world) * 2
        again_rounds, cells = slow[0], cells + slow[1]
    moved = local_rounds * 2 * settings.test.pair_bytes * messages
    return Phase("intra-node pairs", local_rounds + again_rounds, cells, moved, seconds)


def suspect_threshold(settings: RailsSettings) -> float:
    """What makes a sample suspect, as a fraction of a healthy pair's level: the pass line where the line rate
    is known (judged against it), else the relative test alone."""
    if settings.rail_rate_gbps:
        return max(settings.profile.pass_fraction, settings.test.relative_fraction)
    return settings.test.relative_fraction


def sweep_phase(sweep: Sweep, nodes: int, ranks: int, model: PlanModel, confirm: int = 0) -> Phase:
    """accept's world sweep: every collective at every size over every rank, each at its own rate. With
    ``confirm`` (``bench.sweep.rank.measured_again``) each judged size waits on rank 0's answer, and at the high end
    the dearest judged size is measured once more: a healthy cluster's measurement that read low once reads at its
    level again (the rail groups' rule, :func:`rails_again_phase`)."""
    world = nodes * ranks
    sizes = [size for size in sweep.sizes if size <= sweep.max_bytes]
    calls = sweep.iters + sweep.warmup + (1 if sweep.check else 0)
    latency = model.latency_us * 1e-6
    seconds, moved, again = Span.point(0.0), 0, 0.0
    for name in sweep.collectives:
        factor = get_collective(name).busbw_factor(world) or 1.0
        for size in sizes:
            rate = model.world_rate(name, nodes, ranks, size) or model.rail_Gbps * ranks
            transfer = latency + Span.point(size * factor * 8 / 1e9).over(rate)
            once = transfer * calls + model.step_s * 2 + model.cell_overhead_s  # the world's barriers
            seconds += once
            moved += calls * size
            if confirm and sweep.judge_min_bytes is not None and size >= sweep.judge_min_bytes:
                seconds += model.step_s  # rank 0's answer, one scalar all-reduce over the world
                again = max(again, (once + model.step_s).high)
    seconds += Span(0.0, again)
    return Phase("world sweep", 0, len(sizes) * len(sweep.collectives), moved, seconds)


def finish_phase(rows: int, model: PlanModel) -> Phase:
    """The end: rails.json, JUnit, the history, and the report drawn over ``rows`` results."""
    return Phase("finish", 0, 0, 0, model.finish_s + model.row_s * rows)
