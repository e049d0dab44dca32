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
``rate_gbps``        -       the rail rate to plan with where the profile and sysfs give none (sockets)
===================  ======  ================================================================================

``--max-minutes M`` fits the plan into M minutes by cutting, in this order and only as far as needed: repeats
to 1, confirmation passes to 1, pair and rail-group messages halved down to 16 MiB, iterations down to 3,
accept's sweep down to 64 MiB; one line says what was cut and what that costs in detection.

Pure arithmetic; nothing here talks to a rank.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.errors import UserError
from bench.measure.collectives import get_collective
from bench.rails.budget import cell_budget, chunks_per_message
from bench.rails.config import RailsSettings
from bench.rails.schedule import round_count
from bench.units import format_size

PLAN_KEYS: Mapping[str, float] = {
    "pair_efficiency": 0.96,
    "rail_efficiency": 0.94,
    "startup_s": 30.0,
    "step_s": 0.005,
    "latency_us": 30.0,
    "suspect_fraction": 0.01,
}
MIN_CUT_BYTES = 16 << 20
"""Messages are not cut below this: at 400 Gb/s 16 MiB still takes 0.3 ms, far above a call's latency."""
MIN_CUT_ITERS = 3
MIN_CUT_SWEEP_BYTES = 64 << 20


@dataclass(frozen=True)
class PlanModel:
    """The rates and fixed costs a projection uses."""

    rate_Gbps: float
    """A rail's line rate (or the planning rate)."""
    pair_efficiency: float = PLAN_KEYS["pair_efficiency"]
    rail_efficiency: float = PLAN_KEYS["rail_efficiency"]
    startup_s: float = PLAN_KEYS["startup_s"]
    step_s: float = PLAN_KEYS["step_s"]
    latency_us: float = PLAN_KEYS["latency_us"]
    suspect_fraction: float = PLAN_KEYS["suspect_fraction"]
    nvlink_Gbps: float | None = None
    """An intra-node pair's rate (the profile's NVLink sendrecv target), for the intra-node matrix."""
    world_Gbps: float | None = None
    """World collectives' busbw (the profile's node target), for accept's sweep."""

    @property
    def pair_Gbps(self) -> float:
        return self.rate_Gbps * self.pair_efficiency

    @classmethod
    def from_profile(cls, raw: Mapping[str, Any], rate_Gbps: float | None, source: str, **extra: Any) -> PlanModel:
        """The model of a profile's ``[plan]`` table; UserError naming the key when one is wrong."""
        table = raw.get("plan", {}) if isinstance(raw, Mapping) else {}
        unknown = sorted(set(table) - set(PLAN_KEYS) - {"rate_gbps"})
        if unknown:
            known = ", ".join(sorted([*PLAN_KEYS, "rate_gbps"]))
            raise UserError(f"{source}: unknown [plan] key {unknown[0]!r}; known keys: {known}")
        values: dict[str, float] = {}
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
                raise UserError(f"{source}: [plan] {key} = {value!r} must be a positive number")
            values[key] = float(value)
        rate = rate_Gbps or values.pop("rate_gbps", None)
        values.pop("rate_gbps", None)
        if not rate:
            raise UserError(
                f"{source} gives no rail rate to plan with: pass --rail-rate-gbps, or set [rails] rate_gbps "
                "or [plan] rate_gbps in the profile"
            )
        for key in ("pair_efficiency", "rail_efficiency", "suspect_fraction"):
            if key in values and values[key] > 1:
                raise UserError(f"{source}: [plan] {key} = {values[key]:g} is a fraction: at most 1")
        return cls(rate, **values, **extra)


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


@dataclass(frozen=True)
class Plan:
    """The projected run."""

    nodes: int
    ranks_per_node: int
    settings: RailsSettings
    phases: tuple[Phase, ...]
    cut: str | None = None
    """What ``--max-minutes`` cut and what that costs in detection, in one line; None when nothing was."""

    @property
    def total_s(self) -> float:
        return sum(p.seconds for p in self.phases)

    def lines(self) -> list[str]:
        s = self.settings
        out = [
            f"# plan: {self.nodes} nodes x {self.ranks_per_node} ranks; pairs {format_size(s.pair_bytes)}B x "
            f"{s.iters} iters (+{s.warmup} warm-up), {s.repeats} repeat(s), {s.confirm} confirmation pass(es); "
            f"rail groups {format_size(s.rail_bytes)}B",
            f"  {'phase':<34} {'rounds':>7} {'cells':>9} {'bytes/rank':>11} {'seconds':>9}",
        ]
        for p in self.phases:
            out.append(f"  {p.name:<34} {p.rounds:>7} {p.cells:>9} {format_size(p.bytes) + 'B':>11} {p.seconds:>9.1f}")
        out.append(f"# projected wall time: {self.total_s:.0f} s = {self.total_s / 60:.1f} min")
        if self.cut:
            out.append(f"# cut to fit: {self.cut}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "ranks_per_node": self.ranks_per_node,
            "phases": [dataclasses.asdict(p) for p in self.phases],
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
            rail_s += cell_seconds(wire, messages, rail_rate, budget) + 2 * step
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
        per_round = nodes // 2
        cell_s, _ = _pair_cell(settings, model)
        cells = 2 * rounds * per_round * ranks
        phases.append(
            Phase(
                "pair matrix",
                rounds,
                cells,
                rounds * 2 * settings.pair_bytes * (messages + 1),
                rounds * pair_round_seconds(cell_s, step),
            )
        )
        if settings.confirm:
            # Each pass re-runs the rounds that hold a suspect, with only their suspects.
            suspect = model.suspect_fraction
            hit = 1 - (1 - suspect) ** (per_round * ranks)
            again = settings.confirm * max(1, round(rounds * hit)) if suspect > 0 else 0
            phases.append(
                Phase(
                    f"confirmation ({settings.confirm} pass(es))",
                    again,
                    round(2 * settings.confirm * suspect * rounds * per_round * ranks),
                    again * 2 * settings.pair_bytes * (messages + 1),
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
