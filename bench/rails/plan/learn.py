"""The plan learns from the cluster's own runs: what each phase took there, scaled to the shape being planned.

Every rails and accept run records, per phase, the seconds it took and the span its model projected for that
phase at its own shape (run.json ``plan``; the history's ``phase_times``). To plan a shape, each phase of the
model's plan is replaced by what the cluster's recent runs measured for it, each scaled by how the model says
the phase grows from that run's shape to this one, once with the model's quick end and once with its slow end
(they grow differently: a start-up that is mostly the launch hardly grows with the ranks, one that is mostly
communicator set-up grows with them). The learned span is the smallest to the largest of those figures over
the runs (up to ``LEARN_FROM_RUNS``, newest first), so it also shows how much this cluster's runs differ from
each other, and ``RUN_MARGIN`` beyond, for the next run's own difference. The end of a run is timed after the
history is written, so it is read from each run's run.json (``finish_s``). A phase none of them measured (the
world sweep after rails runs only) stays the model's. The plan says which runs it learned from.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from bench.exits import InfraError, UserError
from bench.history.phase_times import FINISH, PhaseTime, TimedRun, finish_of, phase_key, recent_runs
from bench.history.store import opened
from bench.rails.plan.acceptance import Adjust, Plan
from bench.rails.plan.model import Span
from bench.rails.plan.phases import Phase

RUN_MARGIN = 0.25
"""How far beyond the runs seen the next one may fall: repeated runs of one cluster differ from each other (on
the namespace testbed two accept runs at one load took 124 and 137 s, their start-ups 47 and 58 s); with one
run the spread is unknown, and with a few the next is outside their extremes one time in (n + 1) / 2."""

SCALES_FROM_S = 0.05
"""The least planned figure a run's measurement is scaled from: the history keeps the plan's figures to the
millisecond, so one under 50 ms is off by more than 1% (a phase whose quick end is one agreement, 1.6 ms on 4
nodes, stored as 2 ms, scaled a run's 0.35 s to 0.29 s); the phase's other end scales it."""


def measured(phase: str, run: TimedRun) -> PhaseTime | None:
    """What ``run`` measured of ``phase``: its history row, the finish step from its run.json."""
    took = run.phases.get(phase)
    if took is not None and took.measured_s is None and phase == FINISH:
        took = dataclasses.replace(took, measured_s=finish_of(run.run_dir))
    return took if took is not None and took.measured_s is not None else None


def scaled(phase: Phase, runs: Sequence[TimedRun]) -> tuple[Span, set[str]] | None:
    """``phase``'s seconds as the runs measured it, scaled to the plan's shape and widened by ``RUN_MARGIN``,
    with the runs that measured it; None when none did."""
    figures: list[float] = []
    used: set[str] = set()
    for run in runs:
        took = measured(phase_key(phase.name), run)
        if took is None or took.measured_s is None:
            continue
        for then, now in ((took.low_s, phase.seconds.low), (took.high_s, phase.seconds.high)):
            if then is not None and then >= SCALES_FROM_S:
                figures.append(took.measured_s * now / then)
                used.add(run.run_key)
    if not figures:
        return None
    return Span(min(figures) * (1 - RUN_MARGIN), max(figures) * (1 + RUN_MARGIN)), used


def learned(plan: Plan, runs: Sequence[TimedRun], source: str) -> Plan:
    """``plan`` with each phase the runs measured replaced by what they measured, scaled (module docstring)."""
    phases: list[Phase] = []
    used: set[str] = set()
    kept: list[str] = []
    for phase in plan.phases:
        found = scaled(phase, runs)
        if found is None:
            kept.append(phase_key(phase.name))
            phases.append(phase)
            continue
        seconds, by = found
        used |= by
        phases.append(dataclasses.replace(phase, seconds=seconds))
    if not used:
        return plan
    newest = runs[0]
    line = (
        f"learned from {len(used)} run(s) of cluster {newest.cluster!r} in {source} (newest: {newest.command} on "
        f"{newest.nnodes} nodes, {newest.nranks} ranks, {newest.time_utc}, {newest.run_dir}): each phase as they "
        f"measured it, scaled to this shape by the model, {RUN_MARGIN:.0%} either side for run-to-run spread"
        + (f"; from the model alone: {', '.join(kept)}" if kept else "")
    )
    keys = tuple(run.run_key for run in runs if run.run_key in used)
    return dataclasses.replace(plan, phases=tuple(phases), learned=line, learned_from=keys)


def from_history(history: Path, profile: str, cluster: str | None) -> tuple[Adjust | None, str | None]:
    """What ``history`` holds for the plan: the adjustment of every candidate plan to the cluster's recent runs
    (None when it holds none), and a line to say when the history could not be read (the plan then stands on
    the model alone)."""
    if not history.is_file():
        return None, None
    try:
        with opened(history, create=False) as conn:
            runs = recent_runs(conn, profile, cluster)
    except (UserError, InfraError, sqlite3.Error, OSError) as exc:
        return None, f"history {history} not read ({exc}): the plan stands on the model alone"
    if not runs:
        return None, None
    return (lambda plan: learned(plan, runs, str(history))), None
