"""The acceptance plan: what a rails (or accept) run will do on a cluster's shape, and how long it will take.

Before anything starts, ``railbench accept --plan`` (and ``rails --plan``) lays out the run for N nodes of R
ranks (GPUs, rails) from the settings the run would use: its phases, each with its rounds, cells, bytes and
projected seconds. The projection is built from the same pieces the run is: the round-robin schedule
(``bench.rails.schedule``), the cell budgets (``bench.rails.budget``), the confirmation passes over the rounds
that hold suspects. Rates and fixed costs come from the profile: the rail's line rate (or ``[plan]
rate_gbps`` where sysfs gives none), and the ``[plan]`` table:

===================  ======  ================================================================================
key                  default what it is
===================  ======  ================================================================================
``pair_efficiency``  0.96    a healthy pair's rate as a fraction of the line rate (NDR sendrecv: 46-49 GB/s)
``rail_efficiency``  0.94    a rail group's busbw as a fraction of the line rate
``startup_s``        30      launch, imports, the world's and the rail groups' set-up
``step_s``           0.005   one synchronised step: a barrier, a pair's align, a gather over the world
``latency_us``       30      one collective call's latency (small sizes of accept's sweep)
``suspect_fraction`` 0.01    cells a healthy fabric's noise makes suspect, each re-measured ``confirm`` times
``cell_overhead_s``  0.01    one sweep point's or rail-group measurement's cost beyond its messages
``finish_s``         10      the end: rails.json and results, JUnit, the report and its charts, the history
``rate_gbps``        -       the rail rate to plan with where the profile and sysfs give none (sockets)
``world_gbps``       -       accept's world collectives' busbw (default: the node target x rail_efficiency)
===================  ======  ================================================================================

``--max-minutes M`` fits the plan into M minutes by cutting, in this order and only as far as needed: repeats
to 1, confirmation passes to 1, pair and rail-group messages halved down to 16 MiB, iterations down to 3,
accept's sweep down to 64 MiB; one line says what was cut and what that costs in detection.

Pure arithmetic; nothing here talks to a rank.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from bench.jsondoc import JSONObject
from bench.measure.collectives import get_collective
from bench.rails.budget import cell_budget, chunks_per_message
from bench.rails.config import RailsSettings
from bench.rails.plan_model import PlanModel
from bench.rails.schedule import round_count
from bench.units import format_size

MIN_CUT_BYTES = 16 << 20
"""Messages are not cut below this: at 400 Gb/s 16 MiB still takes 0.3 ms, far above a call's latency."""
MIN_CUT_ITERS = 3
MIN_CUT_SWEEP_BYTES = 64 << 20


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
    cells: int
    """Measurements: pair directions, rail-group collectives, sweep points."""
    bytes: int
    """Bytes each rank sends in the phase, at most."""
    seconds: float

    def as_dict(self) -> JSONObject:
        return dataclasses.asdict(self)


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

    @property
    def total_s(self) -> float:
        return sum(p.seconds for p in self.phases)

    def lines(self) -> list[str]:
        s = self.settings
        model = s.plan_model
        budget = ""
        if model is not None:
            _, cell = _pair_cell(s, model)
            budget = f"; a pair cell may take {cell:.2g} s (healthy: {_pair_cell(s, model)[0]:.2g} s)"
        out = [
            f"# plan: {self.nodes} nodes x {self.ranks_per_node} ranks; pairs {format_size(s.pair_bytes)}B x "
            f"{s.iters} iters (+{s.warmup} warm-up), {s.repeats} repeat(s), {s.confirm} confirmation pass(es); "
            f"rail groups {format_size(s.rail_bytes)}B{budget}",
            f"  {'phase':<34} {'rounds':>7} {'cells':>9} {'bytes/rank':>11} {'seconds':>9}",
        ]
        for p in self.phases:
            out.append(f"  {p.name:<34} {p.rounds:>7} {p.cells:>9} {format_size(p.bytes) + 'B':>11} {p.seconds:>9.1f}")
        out.append(f"# projected wall time: {self.total_s:.0f} s = {self.total_s / 60:.1f} min")
        if self.cut:
            out.append(f"# cut to fit: {self.cut}")
        return out

    def as_dict(self) -> JSONObject:
        return {
            "nodes": self.nodes,
            "ranks_per_node": self.ranks_per_node,
            "phases": [p.as_dict() for p in self.phases],
            "projected_s": round(self.total_s, 3),
            "cut": self.cut,
        }


def cell_seconds(nbytes: int, messages: int, rate_Gbps: float, budget_s: float | None = None) -> float:
    """One measured cell: a probe chunk, then ``messages`` messages at ``rate_Gbps``, within its budget."""
    probe = 1 / chunks_per_message(nbytes)
    seconds = (messages + probe) * nbytes * 8 / (rate_Gbps * 1e9) if rate_Gbps > 0 else math.inf
    return min(seconds, budget_s) if budget_s is not None else seconds


def pair_round_seconds(cell_s: float, step_s: float) -> float:
    """One round of the pair matrix: each direction in turn (its group barrier, the pair's align, the gather of
    every end's time) after its slowest cell, then the gather of the round's rates over the world."""
    return 2 * (cell_s + 3 * step_s) + step_s


def _pair_cell(settings: RailsSettings, model: PlanModel) -> tuple[float, float]:
    """(seconds of a healthy pair cell, its budget)."""
    messages = settings.warmup + settings.iters
    budget = cell_budget(settings.pair_bytes, messages, model.rate_Gbps, settings.cell_budget_s)
    return cell_seconds(settings.pair_bytes, messages, model.pair_Gbps, budget), budget


def rails_phases(nodes: int, ranks: int, settings: RailsSettings, model: PlanModel, intra: bool) -> list[Phase]:
    """The phases of the rails test on ``nodes`` x ``ranks``."""
    step = model.step_s
    rail_rate = model.rate_Gbps * model.rail_efficiency
    messages = settings.warmup + settings.iters
    phases = [Phase("start-up and rail groups", 0, 0, 0, model.startup_s + (ranks + 2) * step)]
    if nodes >= 2:
        rail_s, rail_bytes, alone_s = 0.0, 0, 0.0
        for name in settings.collectives:
            factor = max(1.0, get_collective(name).busbw_factor(nodes))
            wire = int(settings.rail_bytes * factor)
            budget = cell_budget(wire, messages, model.rate_Gbps, settings.cell_budget_s)
            rail_s += cell_seconds(wire, messages, rail_rate, budget) + 2 * step + model.cell_overhead_s
            rail_bytes += wire * (messages + 1)
            alone = messages if settings.isolation else 1
            alone_s += cell_seconds(wire, alone, rail_rate, budget) + 2 * step
        phases.append(
            Phase("rail groups, every rail at once", 1, ranks * len(settings.collectives), rail_bytes, rail_s)
        )
        windows = ranks * (alone_s if settings.isolation else alone_s / len(settings.collectives))
        phases.append(Phase("each rail alone (counter windows)", ranks, ranks, 0, windows + ranks * 2 * step))
    if settings.pairs and nodes >= 2:
        rounds = round_count(nodes) * settings.repeats
        pairs = nodes // 2
        cell_s, _ = _pair_cell(settings, model)
        cells = 2 * rounds * pairs * ranks
        # A rank sends in one direction of its pair each round: (warm-up + iters) messages and a probe chunk.
        per_round = settings.pair_bytes * (messages + 1)
        phases.append(
            Phase("pair matrix", rounds, cells, rounds * per_round, rounds * pair_round_seconds(cell_s, step))
        )
        if settings.confirm:
            # Each pass re-runs the rounds that hold a suspect, with only their suspects.
            suspect = model.suspect_fraction
            hit = 1 - (1 - suspect) ** (pairs * ranks)
            again = settings.confirm * max(1, round(rounds * hit)) if suspect > 0 else 0
            cells_again = round(2 * settings.confirm * suspect * rounds * pairs * ranks)
            phases.append(
                Phase(
                    f"confirmation ({settings.confirm} pass(es))",
                    again,
                    cells_again,
                    math.ceil(cells_again / (nodes * ranks)) * per_round,  # a rank's share of the suspects
                    again * pair_round_seconds(cell_s, step),
                )
            )
    if intra and ranks >= 2:
        local_rounds = round_count(ranks) * settings.repeats
        rate = model.nvlink_Gbps or model.pair_Gbps
        cell_s = cell_seconds(settings.pair_bytes, messages, rate)
        phases.append(
            Phase(
                "intra-node pairs",
                local_rounds,
                2 * local_rounds * (ranks // 2) * nodes,
                local_rounds * 2 * settings.pair_bytes * messages,
                local_rounds * pair_round_seconds(cell_s, step),
            )
        )
    return phases


def sweep_phase(
    sizes: list[int],
    collectives: tuple[str, ...],
    iters: int,
    warmup: int,
    check: bool,
    world: int,
    model: PlanModel,
    ranks: int,
) -> Phase:
    """accept's world sweep: every collective at every size over every rank."""
    rate = model.world_Gbps or model.rate_Gbps * ranks * model.rail_efficiency
    calls = iters + warmup + (1 if check else 0)
    seconds, moved = 0.0, 0
    for name in collectives:
        factor = get_collective(name).busbw_factor(world) or 1.0
        for size in sizes:
            transfer = calls * (model.latency_us * 1e-6 + size * factor * 8 / (rate * 1e9))
            seconds += transfer + 2 * model.step_s + model.cell_overhead_s
            moved += calls * size
    return Phase("world sweep", 0, len(sizes) * len(collectives), moved, seconds)


def build(
    nodes: int,
    ranks: int,
    settings: RailsSettings,
    model: PlanModel,
    *,
    intra: bool,
    sweep: Sweep | None = None,
    check_s: float = 0.0,
    cut: str | None = None,
) -> Plan:
    """The plan of a rails run (``sweep`` None) or an accept run (check, sweep, then rails)."""
    phases = rails_phases(nodes, ranks, settings, model, intra)
    if sweep is not None:
        head = [phases[0], Phase("check", 0, nodes, 0, check_s)]
        sizes = [size for size in sweep.sizes if size <= sweep.max_bytes]
        world = nodes * ranks
        head.append(sweep_phase(sizes, sweep.collectives, sweep.iters, sweep.warmup, sweep.check, world, model, ranks))
        phases = head + phases[1:]
    phases.append(Phase("finish", 0, 0, 0, model.finish_s))
    return Plan(nodes, ranks, settings, tuple(phases), cut, sweep)


def fit(
    nodes: int,
    ranks: int,
    settings: RailsSettings,
    model: PlanModel,
    max_minutes: float,
    *,
    intra: bool,
    sweep: Sweep | None = None,
    check_s: float = 0.0,
) -> Plan:
    """The plan cut, in the module's order and only as far as needed, to fit ``max_minutes``. Its ``cut`` says
    in one line what was cut and what that costs in detection; it still says so when even the smallest plan
    does not fit (the caller refuses to run it)."""
    limit = max_minutes * 60
    said: list[str] = []

    def plan() -> Plan:
        return build(nodes, ranks, settings, model, intra=intra, sweep=sweep, check_s=check_s)

    def fits() -> bool:
        return plan().total_s <= limit

    if not fits() and settings.repeats > 1:
        said.append(
            f"repeats {settings.repeats} -> 1 (a part slow in one pass of {settings.repeats} has one chance to "
            f"be caught, not {settings.repeats})"
        )
        settings = dataclasses.replace(settings, repeats=1)
    if not fits() and settings.confirm > 1:
        said.append(
            f"confirmation {settings.confirm} -> 1 pass (a suspect slow half the time reproduces 50% of the time, "
            f"not {100 * (1 - 0.5**settings.confirm):.0f}%)"
        )
        settings = dataclasses.replace(settings, confirm=1)
    for name in ("pair_bytes", "rail_bytes"):
        was = getattr(settings, name)
        while not fits() and getattr(settings, name) // 2 >= MIN_CUT_BYTES:
            settings = dataclasses.replace(settings, **{name: getattr(settings, name) // 2})
        now = getattr(settings, name)
        if now != was:
            what = "pair" if name == "pair_bytes" else "rail-group"
            said.append(
                f"{what} messages {format_size(was)}B -> {format_size(now)}B (each sample {was // now}x shorter: a "
                "part that slows only under sustained load has less time to show it)"
            )
    was_iters = settings.iters
    while not fits() and settings.iters > MIN_CUT_ITERS:
        settings = dataclasses.replace(settings, iters=max(MIN_CUT_ITERS, settings.iters // 2))
    if settings.iters != was_iters:
        noisier = math.sqrt(was_iters / settings.iters)
        said.append(
            f"iterations {was_iters} -> {settings.iters} (a sample averages fewer messages: its noise grows up to "
            f"{noisier:.1f}x, and so does the smallest slowdown told from noise)"
        )
    if sweep is not None:
        was_bytes = sweep.max_bytes
        while not fits() and sweep.max_bytes // 2 >= MIN_CUT_SWEEP_BYTES:
            sweep = dataclasses.replace(sweep, max_bytes=sweep.max_bytes // 2)
        if sweep.max_bytes != was_bytes:
            said.append(
                f"world sweep up to {format_size(sweep.max_bytes)}B, not {format_size(was_bytes)}B (larger "
                "messages are not measured)"
            )
    final = plan()
    text = "; ".join(said) or None
    if final.total_s > limit:
        text = (text + "; " if text else "") + (
            f"still {final.total_s / 60:.1f} min: nothing more can be cut to fit {max_minutes:g} min"
        )
    return dataclasses.replace(final, cut=text)


def intra_planned(settings: RailsSettings, gpus: bool) -> bool:
    """Whether the intra-node matrix runs: as asked, else on GPUs (NCCL), as ``bench.rails.intranode`` decides."""
    return settings.intra_node if settings.intra_node is not None else gpus


def for_run(
    nodes: int,
    ranks: int,
    settings: RailsSettings,
    *,
    intra: bool,
    sweep: Sweep | None = None,
    check_s: float = 0.0,
) -> Plan | None:
    """The run's plan, fitted into ``settings.max_minutes`` when given; None where no rate is known to plan with."""
    model = settings.plan_model
    if model is None:
        return None
    if settings.max_minutes is not None:
        return fit(nodes, ranks, settings, model, settings.max_minutes, intra=intra, sweep=sweep, check_s=check_s)
    return build(nodes, ranks, settings, model, intra=intra, sweep=sweep, check_s=check_s)
