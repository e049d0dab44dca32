"""Error counters per rail as nightly metrics: what the history keeps of them, and when compare flags a rise.

A rails (or accept) run's ``rails.json`` holds, per node and device, every error counter's delta over the rails
test (``counters``) and which device carried each rail (``rails[k].devices``). The metric of rail k and one
counter is the sum over the nodes of that rail's devices: errors per rails test. A counter that sat saturated
on any node has no count that night (``saturated``), never a guessed one.

The noise rule. Error counts are not Gaussian: a healthy fabric reads 0 night after night, and a rail that
always shows a few symbol errors is no news when it shows one more. So tonight's count rises when it is above
both ``baseline + error_allowance`` and ``error_factor x baseline`` (the baseline is the median of the
comparable runs' counts): from a clean baseline any count is flagged (zero to nonzero); from a baseline of 5,
only more than 10 (with the defaults 0 and 2). Only the counters of the profile's ``[errors] fail_on_rise``
are judged (link downs, symbol errors...); every counter is kept.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.jsondoc import INT_MAX, JSONObject
from bench.rundir.railsdoc import RailsDoc, read_rails_doc


@dataclass(frozen=True)
class RailErrorCount:
    """One counter of one rail over one rails test, summed over the nodes."""

    rail: int
    counter: str
    count: int | None
    """None when it was saturated on some node: it cannot say how many arrived."""
    nodes: int
    """Nodes whose device for this rail was read."""

    @property
    def saturated(self) -> bool:
        return self.count is None


def from_rails_doc(doc: RailsDoc) -> list[RailErrorCount]:
    """The per-rail error metrics of a rails.json record (none when it predates error counters)."""
    out = []
    for rail in doc.rails:
        sums: dict[str, int | None] = {}
        nodes: dict[str, int] = {}
        for node, device in rail.devices.items():
            entry = doc.counters.get(node, {}).get(device) if device is not None else None
            if entry is None or entry.errors is None:
                continue
            for name, count in entry.errors.items():
                before = sums.get(name, 0)
                total = None if before is None else before + count
                # a sum past the store's 64-bit integers is no count anyone can use: kept as saturated
                sums[name] = None if total is None or total > INT_MAX else total
                nodes[name] = nodes.get(name, 0) + 1
            for name in entry.errors_saturated or ():
                sums[name] = None
                nodes[name] = nodes.get(name, 0) + 1
        out += [RailErrorCount(rail.rail, name, count, nodes[name]) for name, count in sorted(sums.items())]
    return out


def read_run_dir(run_dir: Path | str) -> list[RailErrorCount]:
    """The per-rail error metrics of a run directory (none without rails.json); UserError when it is damaged."""
    doc = read_rails_doc(run_dir)
    return [] if doc is None else from_rails_doc(doc)


# --- the store's table ---------------------------------------------------------------------------------


def create_table(conn: sqlite3.Connection) -> None:
    """The history's ``rail_errors`` table (migration 4)."""
    conn.execute(
        """CREATE TABLE rail_errors (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            rail INTEGER NOT NULL,
            counter TEXT NOT NULL,
            count INTEGER,
            nodes INTEGER NOT NULL,
            PRIMARY KEY (run_id, rail, counter)
        ) WITHOUT ROWID"""
    )


def write(conn: sqlite3.Connection, run_id: int, errors: Iterable[RailErrorCount]) -> None:
    """Replace one run's rows (inside the caller's transaction)."""
    conn.execute("DELETE FROM rail_errors WHERE run_id = ?", (run_id,))
    conn.executemany(
        "INSERT INTO rail_errors VALUES (?, ?, ?, ?, ?)",
        [(run_id, e.rail, e.counter, e.count, e.nodes) for e in errors],
    )


def of_runs(conn: sqlite3.Connection, run_ids: Sequence[int]) -> dict[int, list[RailErrorCount]]:
    """The per-rail error metrics of the given runs, by run id."""
    out: dict[int, list[RailErrorCount]] = {run_id: [] for run_id in run_ids}
    for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = list(run_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        query = f"SELECT run_id, rail, counter, count, nodes FROM rail_errors WHERE run_id IN ({marks})"
        for run_id, rail, counter, count, nodes in conn.execute(query, chunk):
            out[run_id].append(RailErrorCount(rail, counter, count, nodes))
    return out


# --- compare -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRise:
    """A rail whose error counter rose tonight beyond the noise rule (or sat saturated)."""

    rail: int
    counter: str
    count: int | None
    """Tonight's count; None when saturated."""
    baseline: float | None
    """Median count of the baseline runs that read it; None without any."""
    runs: int
    """Baseline runs that read it."""

    def describe(self) -> str:
        tonight = "saturated (no count)" if self.count is None else f"{self.count:,}"
        before = "no baseline" if self.baseline is None else f"baseline median {self.baseline:,.4g}"
        return f"rail {self.rail}: {self.counter} {tonight} per rails test ({before} over {self.runs} runs) → rose"

    def to_json(self) -> JSONObject:
        return {
            "rail": self.rail,
            "counter": self.counter,
            "count": self.count,
            "baseline": self.baseline,
            "baseline_runs": self.runs,
            "text": self.describe(),
        }


def judge(
    tonight: Sequence[RailErrorCount],
    baseline: Sequence[Sequence[RailErrorCount]],
    watched: Iterable[str],
    allowance: int,
    factor: float,
) -> list[ErrorRise]:
    """Tonight's rails whose ``watched`` counters rose beyond the noise rule (see the module docstring)."""
    watched = set(watched)
    past: dict[tuple[int, str], list[int]] = {}
    for run in baseline:
        for e in run:
            if e.count is not None:
                past.setdefault((e.rail, e.counter), []).append(e.count)
    out = []
    for e in tonight:
        if e.counter not in watched:
            continue
        counts = past.get((e.rail, e.counter), [])
        median = statistics.median(counts) if counts else None
        if e.count is None:
            if counts:  # it went saturated since the baseline (one saturated night after night is old news)
                out.append(ErrorRise(e.rail, e.counter, None, median, len(counts)))
            continue
        level = median or 0.0
        if e.count > max(level + allowance, factor * level):
            out.append(ErrorRise(e.rail, e.counter, e.count, median, len(counts)))
    return out
