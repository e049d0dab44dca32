"""The acceptance plan: what a rails (or accept) run will do on a cluster's shape, and how long it will take.

Before anything starts, ``railbench accept --plan`` (and ``rails --plan``) lays out the run for N nodes of R
ranks (GPUs, rails) from the settings the run would use: its phases, each with its rounds, cells, bytes and
seconds. The seconds are a range, never one guess: every rate and fixed cost of ``bench.rails.plan_model`` is
a span, the low figure is the run where every one of them is at its quick end, the high figure the run where
every one is as slow as a healthy cluster gets. The projection is built from the same pieces the run is:

* start-up: the launch, then every communicator (the world and one group per rail), each made by every rank
  of the world (torch makes a group with the whole world taking part), at a cost per member rank;
* each pair round: both directions in turn, each its slowest cell (``bench.rails.budget``) and the rail
  group's small collectives around it; on NCCL a new peer's connection on its first send (every round pairs
  each rank with a node it has not met); the round's times gathered over the world through the store;
* confirmation: each pass re-runs the rounds that hold a suspect, with only their suspects; the share of
  suspect cells comes from the fabric's noise against the pass line (``PlanModel.suspect_share``), so a
  healthy but noisy fabric re-runs nearly every round and a calm one almost none; then every pair time is
  gathered to rank 0;
* accept's world sweep: each collective at each size, at a busbw between its target (what a passing run
  reaches) and its bound, plus each call's latency;
* the end: rails.json, JUnit, the history, and a report whose drawing grows with its rows.

Once the cluster has run, ``bench.rails.plan_learn`` scales what its runs measured to the planned shape.

``--max-minutes M`` fits the plan's high figure into M minutes by cutting, in this order and only as far as
needed: repeats to 1, confirmation passes to 1, pair and rail-group messages halved down to 16 MiB,
iterations down to 3, accept's sweep down to 64 MiB; one line says what was cut and what that costs in
detection.

Pure arithmetic; nothing here talks to a rank.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.jsondoc import JSONObject
from bench.measure.collectives import get_collective
from bench.rails.budget import cell_budget, chunks_per_message
from bench.rails.config import RailsSettings
from bench.rails.plan_model import PlanModel, Span
from bench.rails.schedule import round_count
from bench.units import format_size

MIN_CUT_BYTES = 16 << 20
"""Messages are not cut below this: at 400 Gb/s 16 MiB still takes 0.3 ms, far above a call's latency."""
MIN_CUT_ITERS = 3
MIN_CUT_SWEEP_BYTES = 64 << 20
GROUP_STEPS = 4
"""Small collectives inside the rail group around each direction of a pair (``bench.rails.measure.pair_round``):
the barrier before it, the pair's align, the agreement on a cell's chunked plan, the gather of every end's
time."""
PAIR_RECORD_BYTES = 160
"""One pair time as the ranks send it to rank 0 (``bench.rails.measure.PairTime``, pickled)."""


@dataclass(frozen=True)
class Sweep:
    """What accept's world sweep runs, for its phase of the plan."""

    sizes: list[int]
    collectives: tuple[str, ...]
    iters: int
    warmup: int
    check: bool
    max_bytes: int


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


@dataclass(frozen=True)
class Plan:
    """The projected run."""

    nodes: int
    ranks_per_node: int
    settings: RailsSettings
    phases: tuple[Phase, ...]
    cut: str | None = None
    """What ``--max-minutes`` cut and what that costs in detection, in one line; None when nothing was."""
    sweep: Sweep | None = None
    """accept's world sweep as planned (its largest size cut to fit), None for a rails run."""
    learned: str | None = None
    """Where the figures come from when this cluster's runs set them (``bench.rails.plan_learn``), one line."""
    learned_from: tuple[str, ...] = ()
    """The run keys (history) whose measurements set the figures."""

    @property
    def total(self) -> Span:
        return sum((p.seconds for p in self.phases), Span.point(0.0))

    def lines(self) -> list[str]:
        s = self.settings
        model = s.plan_model
        budget = ""
        if model is not None:
            healthy, cell = _pair_cell(s, model)
            budget = f"; a pair cell may take {cell:.2g} s (healthy: {healthy.low:.2g}-{healthy.high:.2g} s)"
        test = s.test
        out = [
            f"# plan: {self.nodes} nodes x {self.ranks_per_node} ranks; pairs {format_size(test.pair_bytes)}B x "
            f"{test.iters} iters (+{test.warmup} warm-up), {test.repeats} repeat(s), {test.confirm} confirmation "
            f"pass(es); rail groups {format_size(test.rail_bytes)}B{budget}",
            f"  {'phase':<34} {'rounds':>7} {'cells':>9} {'bytes/rank':>11} {'low s':>9} {'high s':>9}",
        ]
        for p in self.phases:
            out.append(
                f"  {p.name:<34} {p.rounds:>7} {p.cells:>9} {format_size(p.bytes) + 'B':>11} "
                f"{p.seconds.low:>9.1f} {p.seconds.high:>9.1f}"
            )
        total = self.total
        out.append(
            f"# projected wall time: {total.low:.0f}-{total.high:.0f} s = "
            f"{total.low / 60:.1f}-{total.high / 60:.1f} min"
        )
        out.append(f"# {self.learned}" if self.learned else f"# {MODEL_LINE}")
        if self.cut:
            out.append(f"# cut to fit: {self.cut}")
        return out

    def to_json(self) -> JSONObject:
        total = self.total
        return {
            "nodes": self.nodes,
            "ranks_per_node": self.ranks_per_node,
            "phases": [p.to_json() for p in self.phases],
            "projected_low_s": round(total.low, 3),
            "projected_high_s": round(total.high, 3),
            "cut": self.cut,
            "learned_from": list(self.learned_from),
        }


MODEL_LINE = (
    "low: every cost at its quick end; high: every cost as slow as a healthy cluster gets (no runs of this "
    "cluster in the history to learn from)"
)


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


def _pair_cell(settings: RailsSettings, model: PlanModel) -> tuple[Span, float]:
    """(seconds of a healthy pair cell, its budget: the most a dead-slow one costs)."""
    messages = settings.test.warmup + settings.test.iters
    budget = cell_budget(settings.test.pair_bytes, messages, model.rate_Gbps.low, settings.config.cell_budget_s)
    return cell_seconds(settings.test.pair_bytes, messages, model.pair_Gbps, budget), budget


def startup_seconds(nodes: int, ranks: int, model: PlanModel) -> Span:
    """The launch, then the world and one group per rail, every one made with the whole world taking part,
    and the agreements around them (each rail link probed, a barrier, each group's probe)."""
    world = nodes * ranks
    communicators = 1 + ranks
    return model.launch_s + model.comm_rank_s * (world * communicators) + model.sync(world) * 3


def confirmation_rounds(rounds: int, pairs: int, ranks: int, passes: int, share: float) -> tuple[int, int]:
    """(rounds, cells) the confirmation passes re-run when a share ``share`` of samples is suspect: each pass
    re-runs every round that holds a suspect cell (a cell: a pair on a rail, suspect when either direction
    is), with only those cells, both directions."""
    if passes <= 0 or share <= 0:
        return 0, 0
    cell = 1 - (1 - share) ** 2
    held = 1 - (1 - cell) ** (pairs * ranks)
    return passes * math.ceil(rounds * held - 1e-9), round(2 * passes * cell * rounds * pairs * ranks)


def rails_phases(nodes: int, ranks: int, settings: RailsSettings, model: PlanModel, intra: bool) -> list[Phase]:
    """The phases of the rails test on ``nodes`` x ``ranks``."""
    world = nodes * ranks
    messages = settings.test.warmup + settings.test.iters
    agree = not settings.rail_rate_gbps and settings.config.cell_budget_s is None
    phases = [Phase("start-up and rail groups", 0, 0, 0, startup_seconds(nodes, ranks, model))]
    pair_cells = 0
    if nodes >= 2:
        rail_s, rail_bytes, measured_alone = Span.point(0.0), 0, []
        for name in settings.test.collectives:
            factor = max(1.0, get_collective(name).busbw_factor(nodes))
            wire = int(settings.test.rail_bytes * factor)
            budget = cell_budget(wire, messages, model.rate_Gbps.low, settings.config.cell_budget_s)
            rail_s += cell_seconds(wire, messages, model.rail_Gbps, budget) + model.step_s * 2 + model.cell_overhead_s
            rail_bytes += wire * (messages + 1)
            measured_alone.append(
                cell_seconds(wire, messages if settings.config.isolation else 1, model.rail_Gbps, budget)
            )
        phases.append(
            Phase("rail groups, every rail at once", 1, ranks * len(settings.test.collectives), rail_bytes, rail_s)
        )
        # Each rail's window: every collective alone (--isolation) or one call of the first, a barrier on either
        # side, and every node's counters read at its edge.
        alone = sum(measured_alone, Span.point(0.0)) if settings.config.isolation else measured_alone[0]
        windows = (alone + model.sync(world) * 2 + model.cell_overhead_s) * ranks
        phases.append(Phase("each rail alone (counter windows)", ranks, ranks, 0, windows))
    follows: list[Phase] = []
    if settings.config.pairs and nodes >= 2:
        rounds = round_count(nodes) * settings.test.repeats
        pairs = nodes // 2
        cell, _ = _pair_cell(settings, model)
        pair_cells = 2 * rounds * pairs * ranks
        # A rank sends in one direction of its pair each round: (warm-up + iters) messages and a probe chunk.
        per_round = settings.test.pair_bytes * (messages + 1)
        matrix_round = pair_round_seconds(cell, model, world, new_peer=True, gather=True, agree=agree)
        phases.append(Phase("pair matrix", rounds, pair_cells, rounds * per_round, matrix_round * rounds))
        # Then every rank's pair times reach rank 0, the suspects go out, and their re-measurements come back.
        gathered = Span.point(world * rounds * PAIR_RECORD_BYTES / 1e6).over(model.store_MBps) + model.sync(world) * 3
        if settings.test.confirm:
            share = model.suspect_share(_suspect_threshold(settings))
            quick = confirmation_rounds(rounds, pairs, ranks, settings.test.confirm, share.low)
            slow = confirmation_rounds(rounds, pairs, ranks, settings.test.confirm, share.high)
            again = pair_round_seconds(cell, model, world, new_peer=False, gather=False, agree=agree)
            seconds = Span(again.low * quick[0], again.high * slow[0]) + gathered
            pair_cells += slow[1]
            share_bytes = math.ceil(slow[1] / world) * per_round  # a rank's share of the suspects
            phases.append(
                Phase(f"confirmation ({settings.test.confirm} pass(es))", slow[0], slow[1], share_bytes, seconds)
            )
        else:
            follows.append(Phase("gathering the pair times", 0, 0, 0, gathered))
    if intra and ranks >= 2:
        local_rounds = round_count(ranks) * settings.test.repeats
        rate = Span.point(model.nvlink_Gbps) if model.nvlink_Gbps else model.pair_Gbps
        cell = cell_seconds(settings.test.pair_bytes, messages, rate)
        local_round = pair_round_seconds(cell, model, world, new_peer=True, gather=True)
        cells = 2 * local_rounds * (ranks // 2) * nodes
        startup = model.comm_rank_s * world  # one group per node, the whole world taking part
        seconds = local_round * local_rounds + startup + sum(p.seconds for p in follows)
        again_rounds = 0
        if settings.test.confirm:
            # Suspect local pairs are re-measured as the rails' are (bench.rails.intranode), inside this phase
            # (one lap): the same passes over the rounds that hold one, each node's GPUs in the place of a rail's
            # nodes. The share of suspect samples is the fabric's noise model's: loopback and NVLink have none
            # of their own here.
            share = model.suspect_share(_suspect_threshold(settings))
            quick = confirmation_rounds(local_rounds, ranks // 2, nodes, settings.test.confirm, share.low)
            slow = confirmation_rounds(local_rounds, ranks // 2, nodes, settings.test.confirm, share.high)
            again = pair_round_seconds(cell, model, world, new_peer=False, gather=False)
            seconds += Span(again.low * quick[0], again.high * slow[0]) + model.sync(world) * 2
            again_rounds, cells = slow[0], cells + slow[1]
        pair_cells += cells
        phases.append(
            Phase(
                "intra-node pairs",
                local_rounds + again_rounds,
                cells,
                local_rounds * 2 * settings.test.pair_bytes * messages,
                seconds,
            )
        )
        follows = []
    return phases + follows


def _suspect_threshold(settings: RailsSettings) -> float:
    """What makes a sample suspect, as a fraction of a healthy pair's level: the pass line where the line rate
    is known (judged against it), else the relative test alone."""
    if settings.rail_rate_gbps:
        return max(settings.profile.pass_fraction, settings.test.relative_fraction)
    return settings.test.relative_fraction


def sweep_phase(sweep: Sweep, nodes: int, ranks: int, model: PlanModel) -> Phase:
    """accept's world sweep: every collective at every size over every rank, each at its own rate."""
    world = nodes * ranks
    sizes = [size for size in sweep.sizes if size <= sweep.max_bytes]
    calls = sweep.iters + sweep.warmup + (1 if sweep.check else 0)
    latency = model.latency_us * 1e-6
    seconds, moved = Span.point(0.0), 0
    for name in sweep.collectives:
        factor = get_collective(name).busbw_factor(world) or 1.0
        for size in sizes:
            rate = model.world_rate(name, nodes, ranks, size) or model.rail_Gbps * ranks
            transfer = latency + Span.point(size * factor * 8 / 1e9).over(rate)
            seconds += transfer * calls + model.step_s * 2 + model.cell_overhead_s  # the world's barriers
            moved += calls * size
    return Phase("world sweep", 0, len(sizes) * len(sweep.collectives), moved, seconds)


def finish_phase(rows: int, model: PlanModel) -> Phase:
    """The end: rails.json, JUnit, the history, and the report drawn over ``rows`` results."""
    return Phase("finish", 0, 0, 0, model.finish_s + model.row_s * rows)


def build(
    nodes: int,
    ranks: int,
    settings: RailsSettings,
    model: PlanModel,
    *,
    intra: bool,
    sweep: Sweep | None = None,
    check_window_s: float = 0.0,
    cut: str | None = None,
) -> Plan:
    """The plan of a rails run (``sweep`` None) or an accept run (check, rails, then the world sweep: accept knows
    every link before any world collective, ``bench.accept.rank``)."""
    phases = rails_phases(nodes, ranks, settings, model, intra)
    rows = sum(p.cells for p in phases)
    if sweep is not None:
        # check reads every rail's error counters twice, window_s apart, on every node at once, then runs each
        # node's checks over its sysfs and gathers the reports.
        check = Span.point(check_window_s) + model.cell_overhead_s + model.sync(nodes * ranks) * 2
        head = [phases[0], Phase("check", 0, nodes, 0, check)]
        swept = sweep_phase(sweep, nodes, ranks, model)
        rows += swept.cells
        phases = [*head, *phases[1:], swept]
    phases.append(finish_phase(rows, model))
    return Plan(nodes, ranks, settings, tuple(phases), cut, sweep)


Adjust = Callable[[Plan], Plan]
"""What ``fit`` projects each candidate with beyond the model (``bench.rails.plan_learn``: the cluster's runs)."""


# The cuts ``fit`` makes, in its order: each takes the settings and whether a candidate fits, and returns
# the settings it leaves and what it cut, said in a line with what that costs in detection.
_Fits = Callable[[RailsSettings], bool]


def _fewer_passes(settings: RailsSettings, fits: _Fits) -> tuple[RailsSettings, list[str]]:
    """One repeat of the matrix, then one confirmation pass."""
    said = []
    if not fits(settings) and settings.test.repeats > 1:
        said.append(
            f"repeats {settings.test.repeats} -> 1 (a part slow in one pass of {settings.test.repeats} has one "
            f"chance to be caught, not {settings.test.repeats})"
        )
        settings = dataclasses.replace(settings, test=dataclasses.replace(settings.test, repeats=1))
    if not fits(settings) and settings.test.confirm > 1:
        said.append(
            f"confirmation {settings.test.confirm} -> 1 pass (a suspect slow half the time reproduces 50% of the time, "
            f"not {100 * (1 - 0.5**settings.test.confirm):.0f}%)"
        )
        settings = dataclasses.replace(settings, test=dataclasses.replace(settings.test, confirm=1))
    return settings, said


def _shorter_messages(settings: RailsSettings, fits: _Fits) -> tuple[RailsSettings, list[str]]:
    """The pair messages halved, then the rail groups', down to ``MIN_CUT_BYTES``."""
    said = []
    for name in ("pair_bytes", "rail_bytes"):
        was = getattr(settings.test, name)
        while not fits(settings) and getattr(settings.test, name) // 2 >= MIN_CUT_BYTES:
            halved = dataclasses.replace(settings.test, **{name: getattr(settings.test, name) // 2})
            settings = dataclasses.replace(settings, test=halved)
        now = getattr(settings.test, name)
        if now != was:
            what = "pair" if name == "pair_bytes" else "rail-group"
            said.append(
                f"{what} messages {format_size(was)}B -> {format_size(now)}B (each sample {was // now}x shorter: a "
                "part that slows only under sustained load has less time to show it)"
            )
    return settings, said


def _fewer_iterations(settings: RailsSettings, fits: _Fits) -> tuple[RailsSettings, list[str]]:
    """The iterations halved, down to ``MIN_CUT_ITERS``."""
    was_iters = settings.test.iters
    while not fits(settings) and settings.test.iters > MIN_CUT_ITERS:
        test = dataclasses.replace(settings.test, iters=max(MIN_CUT_ITERS, settings.test.iters // 2))
        settings = dataclasses.replace(settings, test=test)
    if settings.test.iters == was_iters:
        return settings, []
    noisier = math.sqrt(was_iters / settings.test.iters)
    return settings, [
        f"iterations {was_iters} -> {settings.test.iters} (a sample averages fewer messages: its noise grows up to "
        f"{noisier:.1f}x, and so does the smallest slowdown told from noise)"
    ]


def _smaller_sweep(sweep: Sweep, fits: Callable[[Sweep], bool]) -> tuple[Sweep, list[str]]:
    """The world sweep's largest message halved, down to ``MIN_CUT_SWEEP_BYTES``."""
    was_bytes = sweep.max_bytes
    while not fits(sweep) and sweep.max_bytes // 2 >= MIN_CUT_SWEEP_BYTES:
        sweep = dataclasses.replace(sweep, max_bytes=sweep.max_bytes // 2)
    if sweep.max_bytes == was_bytes:
        return sweep, []
    return sweep, [
        f"world sweep up to {format_size(sweep.max_bytes)}B, not {format_size(was_bytes)}B (larger "
        "messages are not measured)"
    ]


def fit(
    nodes: int,
    ranks: int,
    settings: RailsSettings,
    model: PlanModel,
    max_minutes: float,
    *,
    intra: bool,
    sweep: Sweep | None = None,
    check_window_s: float = 0.0,
    adjust: Adjust | None = None,
) -> Plan:
    """The plan cut, in the module's order and only as far as needed, until its high figure fits
    ``max_minutes``. Its ``cut`` says in one line what was cut and what that costs in detection; it still says
    so when even the smallest plan does not fit (the caller refuses to run it)."""
    limit = max_minutes * 60

    def plan(candidate: RailsSettings, swept: Sweep | None) -> Plan:
        built = build(nodes, ranks, candidate, model, intra=intra, sweep=swept, check_window_s=check_window_s)
        return adjust(built) if adjust is not None else built

    def fits(candidate: RailsSettings) -> bool:
        return plan(candidate, sweep).total.high <= limit

    said: list[str] = []
    for cut in (_fewer_passes, _shorter_messages, _fewer_iterations):
        settings, lines = cut(settings, fits)
        said += lines
    if sweep is not None:
        chosen = settings
        sweep, lines = _smaller_sweep(sweep, lambda smaller: plan(chosen, smaller).total.high <= limit)
        said += lines
    final = plan(settings, sweep)
    text = "; ".join(said) or None
    if final.total.high > limit:
        text = (text + "; " if text else "") + (
            f"still up to {final.total.high / 60:.1f} min: nothing more can be cut to fit {max_minutes:g} min"
        )
    return dataclasses.replace(final, cut=text)


def intra_planned(settings: RailsSettings, gpus: bool) -> bool:
    """Whether the intra-node matrix runs: as asked, else on GPUs (NCCL), as ``bench.rails.intranode`` decides."""
    return settings.config.intra_node if settings.config.intra_node is not None else gpus


def for_run(
    nodes: int,
    ranks: int,
    settings: RailsSettings,
    *,
    intra: bool,
    sweep: Sweep | None = None,
    check_window_s: float = 0.0,
    adjust: Adjust | None = None,
) -> Plan | None:
    """The run's plan, fitted into ``settings.config.max_minutes`` when given; None where no rate is known to plan
    with. ``adjust``: the cluster's own runs (``bench.rails.plan_learn``), applied to every candidate."""
    model = settings.plan_model
    if model is None:
        return None
    if settings.config.max_minutes is not None:
        return fit(
            nodes,
            ranks,
            settings,
            model,
            settings.config.max_minutes,
            intra=intra,
            sweep=sweep,
            check_window_s=check_window_s,
            adjust=adjust,
        )
    built = build(nodes, ranks, settings, model, intra=intra, sweep=sweep, check_window_s=check_window_s)
    return adjust(built) if adjust is not None else built
