"""The acceptance plan: what a rails (or accept) run will do on a cluster's shape, and how long it will take.

Before anything starts, ``railbench accept --plan`` (and ``rails --plan``) lays out the run for N nodes of R
ranks (GPUs, rails) from the settings the run would use: its phases, each with its rounds, cells, bytes and
seconds. The seconds are a range, never one guess: every rate and fixed cost of ``bench.rails.plan.model`` is
a span, the low figure is the run where every one of them is at its quick end, the high figure the run where
every one is as slow as a healthy cluster gets. The projection is built from the same pieces the run is:

* start-up: the launch, then every communicator (the world and one group per rail) as NCCL makes it: a fixed
  set-up and bootstrap all-gathers around its members, and on a device-bound world each group a split whose
  colour all-gather runs around the whole world (``bench.rails.plan.phases.groups_seconds``);
* each pair round: both directions in turn, each its slowest cell (``bench.rails.plan.budget``) and the rail
  group's small collectives around it; on NCCL a new peer's connection on its first send (every round pairs
  each rank with a node it has not met); the round's times gathered over the world through the store;
* confirmation: each pass re-runs the rounds that hold a suspect, with only their suspects; the share of
  suspect cells comes from the fabric's noise against the pass line (``PlanModel.suspect_share``), so a
  healthy but noisy fabric re-runs nearly every round and a calm one almost none; then every pair time is
  gathered to rank 0;
* accept's world sweep: each collective at each size, at a busbw between its target (what a passing run
  reaches) and its bound, plus each call's latency;
* the end: rails.json, JUnit, the history, and a report whose drawing grows with its rows.

Each phase is priced in ``bench.rails.plan.phases``; this module puts them together, fits them and says them.
Once the cluster has run, ``bench.rails.plan.learn`` scales what its runs measured to the planned shape.

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

from bench.backends import ResolvedBackend
from bench.jsondoc import JSONObject
from bench.rails.plan.config import RailsSettings
from bench.rails.plan.model import PlanModel, Span
from bench.rails.plan.phases import (
    Phase,
    Sweep,
    finish_phase,
    pair_cell,
    rails_phases,
    schedule_line,
    sweep_phase,
)
from bench.units import format_size

MIN_CUT_BYTES = 16 << 20
"""Messages are not cut below this: at 400 Gb/s 16 MiB still takes 0.3 ms, far above a call's latency."""
MIN_CUT_ITERS = 3
MIN_CUT_SWEEP_BYTES = 64 << 20


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
    """Where the figures come from when this cluster's runs set them (``bench.rails.plan.learn``), one line."""
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
            healthy, cell = pair_cell(s, model)
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
        said = schedule_line(self.nodes, self.ranks_per_node, s)
        if said:
            out.append(f"# {said}")
        if model is not None and model.splits and not model.at_once and self.nodes > 1:
            out.append(f"# {IN_TURN_LINE}")
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


IN_TURN_LINE = (
    "groups: this torch has no split_group, so every rank of the world takes part in one ncclCommSplit per rail "
    "group and per node group, one after another (a torch with split_group makes each set in one)"
)
MODEL_LINE = (
    "low: every cost at its quick end; high: every cost as slow as a healthy cluster gets (no runs of this "
    "cluster in the history to learn from)"
)


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
        swept = sweep_phase(sweep, nodes, ranks, model, settings.test.confirm)
        rows += swept.cells
        phases = [*head, *phases[1:], swept]
    phases.append(finish_phase(rows, model))
    return Plan(nodes, ranks, settings, tuple(phases), cut, sweep)


Adjust = Callable[[Plan], Plan]
"""What ``fit`` projects each candidate with beyond the model (``bench.rails.plan.learn``: the cluster's runs)."""


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


def intra_planned(settings: RailsSettings, backend: ResolvedBackend) -> bool:
    """Whether the intra-node matrix runs: as asked (``--intra-node``), else on NCCL only, where the local ranks
    are GPUs on NVLink; on gloo they share one host's loopback, and the run skips them. The run asks this same
    rule (``bench.rails.measurement.intranode.wanted``), so the plan prices only what the run will do."""
    return settings.config.intra_node if settings.config.intra_node is not None else backend == "nccl"


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
    with. ``adjust``: the cluster's own runs (``bench.rails.plan.learn``), applied to every candidate."""
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
