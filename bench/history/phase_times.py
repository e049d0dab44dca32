"""How long each phase of a rails or accept run took, kept in the history so that the next plan can learn from it.

run.json's ``plan`` section (``bench.rails.plan.laps``) holds, per phase, the seconds measured and, when the run had
a plan, the span its model projected for that phase at that run's shape (``low_s``, ``high_s``) with the rounds
and cells planned. The history keeps one row per run and phase (migration 5, ``phase_times``);
``bench.rails.plan.learn`` reads the recent runs of a cluster back and scales what they measured to the shape
being planned. A phase the run never reached has no row; a value of the wrong type in a hand-made run.json is
left out, never guessed.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.codec import present
from bench.exits import UserError
from bench.rundir.runjson import read_run_json
from bench.rundir.sections import PlanSection

MAX_PHASES = 64
"""More phases than any run has (accept has ten): a longer list is not railbench's."""
LEARN_FROM_RUNS = 5
"""The most recent runs a plan learns from: enough to see run-to-run spread, recent enough to be this cluster
as it is now."""


FINISH = "finish"
"""The phase the frame times itself, after the run's other records (run.json ``finish_s``)."""


def phase_key(name: str) -> str:
    """A phase's name without its detail: ``confirmation (2 pass(es))`` is the ``confirmation`` phase."""
    return name.split(" (", 1)[0]


@dataclass(frozen=True)
class PhaseTime:
    """One phase of one run."""

    phase: str
    measured_s: float | None
    low_s: float | None = None
    """What the run's model projected for it, quick end (None: the run had no plan)."""
    high_s: float | None = None
    rounds: int | None = None
    cells: int | None = None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def from_plan_section(section: PlanSection | None, finish_s: float | None = None) -> list[PhaseTime]:
    """The phase times in run.json's ``plan`` section (none when it is absent), the ``finish`` phase measured by
    ``finish_s`` (run.json's own field, written once the finish step is done)."""
    out: dict[str, PhaseTime] = {}
    for entry in section.phases[:MAX_PHASES] if section is not None else ():
        key = phase_key(entry.name)[:80]
        measured = entry.measured_s
        out[key] = PhaseTime(
            key,
            _number(finish_s if key == FINISH and measured is None else measured),
            _number(present(entry.low_s)),
            _number(present(entry.high_s)),
            _count(present(entry.rounds)),
            _count(present(entry.cells)),
        )
    return list(out.values())


def read_run_dir(run_dir: Path | str) -> list[PhaseTime]:
    """The phase times of a run directory's run.json (UserError when it is damaged)."""
    run = read_run_json(run_dir)
    return from_plan_section(present(run.plan), present(run.finish_s))


def finish_of(run_dir: str) -> float | None:
    """How long a run's finish step took, from its run.json: the history is written during that step, so its
    own rows cannot say (None when the run directory is gone or does not say)."""
    try:
        return _number(present(read_run_json(run_dir).finish_s))
    except (UserError, OSError):
        return None


# --- the store's table ---------------------------------------------------------------------------------


def create_table(conn: sqlite3.Connection) -> None:
    """The history's ``phase_times`` table (migration 5)."""
    conn.execute(
        """CREATE TABLE phase_times (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            phase TEXT NOT NULL,
            measured_s REAL,
            low_s REAL,
            high_s REAL,
            rounds INTEGER,
            cells INTEGER,
            PRIMARY KEY (run_id, phase)
        ) WITHOUT ROWID"""
    )


def write(conn: sqlite3.Connection, run_id: int, phases: Iterable[PhaseTime]) -> None:
    """Replace one run's rows (inside the caller's transaction)."""
    conn.execute("DELETE FROM phase_times WHERE run_id = ?", (run_id,))
    conn.executemany(
        "INSERT INTO phase_times VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(run_id, p.phase, p.measured_s, p.low_s, p.high_s, p.rounds, p.cells) for p in phases],
    )


@dataclass(frozen=True)
class TimedRun:
    """A run of the history with its phase times: what a plan learns from."""

    run_key: str
    run_dir: str
    time_utc: str
    cluster: str
    command: str
    nnodes: int
    nranks: int
    phases: Mapping[str, PhaseTime]


def recent_runs(
    conn: sqlite3.Connection, profile: str, cluster: str | None = None, limit: int = LEARN_FROM_RUNS
) -> list[TimedRun]:
    """The newest complete rails and accept runs of ``profile`` (and ``cluster``; without one, the cluster of the
    newest such run) that recorded phase times against a plan, newest first."""
    where = (
        "command IN ('rails', 'accept') AND status = 'complete' AND profile = ? AND EXISTS (SELECT 1 FROM "
        "phase_times p WHERE p.run_id = runs.id AND p.measured_s IS NOT NULL AND p.high_s IS NOT NULL)"
    )
    params: list[object] = [profile]
    if cluster is None:
        newest = conn.execute(f"SELECT cluster FROM runs WHERE {where} ORDER BY time_utc DESC, id DESC LIMIT 1", params)
        row = newest.fetchone()
        if row is None:
            return []
        cluster = str(row[0])
    rows = conn.execute(
        f"SELECT id, run_key, run_dir, time_utc, cluster, command, nnodes, nranks FROM runs WHERE {where} "
        "AND cluster = ? ORDER BY time_utc DESC, id DESC LIMIT ?",
        [*params, cluster, int(limit)],
    ).fetchall()
    out = []
    for run_id, key, run_dir, time_utc, name, command, nnodes, nranks in rows:
        phases = {
            str(phase): PhaseTime(str(phase), _number(took), _number(low), _number(high), _count(rounds), _count(cells))
            for phase, took, low, high, rounds, cells in conn.execute(
                "SELECT phase, measured_s, low_s, high_s, rounds, cells FROM phase_times WHERE run_id = ?", (run_id,)
            )
        }
        out.append(TimedRun(key, run_dir, time_utc, name, command, int(nnodes), int(nranks), phases))
    return out
