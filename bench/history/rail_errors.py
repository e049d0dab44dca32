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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.exits import UserError
from bench.rundir.files import read_json_object
from bench.rundir.railsjson import check_rails_json

MAX_RAILS_JSON_BYTES = 512 << 20
"""rails.json of 4,096 nodes x 8 rails is tens of MiB; a larger file is not one railbench wrote."""


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


def from_rails_json(doc: Mapping[str, Any]) -> list[RailErrorCount]:
    """The per-rail error metrics of a rails.json document (none when it predates error counters)."""
    counters = doc.get("counters")
    counters = counters if isinstance(counters, Mapping) else {}
    out = []
    for rail in doc.get("rails") or []:
        if not isinstance(rail, Mapping) or not isinstance(rail.get("rail"), int):
            continue
        sums: dict[str, int | None] = {}
        nodes: dict[str, int] = {}
        devices = rail.get("devices")
        devices = devices if isinstance(devices, Mapping) else {}
        for node, device in devices.items():
            entry = (counters.get(node) or {}).get(device) if isinstance(device, str) else None
            if not isinstance(entry, Mapping) or not isinstance(entry.get("errors"), Mapping):
                continue
            for name, count in entry["errors"].items():
                if isinstance(count, int) and not isinstance(count, bool):
                    before = sums.get(name, 0)
                    sums[name] = None if before is None else before + count
                    nodes[name] = nodes.get(name, 0) + 1
            for name in entry.get("errors_saturated") or ():
                if isinstance(name, str):
                    sums[name] = None
                    nodes[name] = nodes.get(name, 0) + 1
        out += [RailErrorCount(rail["rail"], name, count, nodes[name]) for name, count in sorted(sums.items())]
    return out


def read_run_dir(run_dir: Path | str) -> list[RailErrorCount]:
    """The per-rail error metrics of a run directory (none without rails.json); UserError when it is damaged."""
    path = Path(run_dir) / "rails.json"
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_RAILS_JSON_BYTES:
        raise UserError(f"{path} is over {MAX_RAILS_JSON_BYTES >> 20} MiB: not a rails.json railbench wrote")
    doc = read_json_object(path, "re-run railbench rails")
    check_rails_json(doc, path)
    return from_rails_json(doc)


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

    def as_dict(self) -> dict[str, Any]:
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
