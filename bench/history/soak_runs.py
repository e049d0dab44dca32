"""What a soak leaves for the operator and the history: its windows summed up (docs/design.md, "Soak").

A soak's run directory holds run.json's ``soak`` section (what was asked and how far it got) and
``windows.jsonl`` (one aggregate per window, ``bench.rundir.soak_windows``). :func:`summarise` reads the windows
once, as a stream, and keeps only totals: the windows, the duration, every error counter's rises over the soak
summed (a clean soak says 0, never nothing), the flaps, the median busbw of each world collective over the
windows, and every part a window or a soak finding named with how often. The certificate, OpenMetrics and the
history all say these same numbers.

Nothing here judges: the soak's judges (``bench.soak``) convict; this counts what the windows and the findings
say. A soak finding is read from run.json's ``soak.findings``, the judges' records whole
(``bench.rundir.soak_records.SoakFound``), with its part, duty cycle and windows from the record's own fields.

The history keeps one row per soak (migration 6, ``soak_runs``) and one per world collective and size
(``soak_collectives``), so ``compare`` and the nightly can set one soak beside the last.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import codec
from bench.codec import present
from bench.exits import UserError
from bench.jsondoc import INT_MAX
from bench.rundir.findings import soak_finding
from bench.rundir.part import Part
from bench.rundir.runjson import RunDoc, read_run_json
from bench.rundir.soak_records import ErrorGate, Intermittent, SoakFound
from bench.rundir.soak_windows import SoakSection, SoakWindow, iter_windows


@dataclass(frozen=True)
class SoakPart:
    """A part the soak named: in ``windows_named`` of its ``windows``, from ``first`` to ``last``."""

    part: Part
    symptom: str
    windows_named: int | None
    """None: its finding names no count of windows (a trend names a fall)."""
    windows: int
    first: int | None = None
    last: int | None = None
    action: str = ""
    severity: str = "fail"
    by_finding: bool = False
    """A soak finding named it (the judges convicted it); else only windows' own judgements did."""

    @property
    def duty(self) -> float | None:
        """The fraction of its windows the part was named in (None: no count of windows)."""
        if self.windows_named is None or not self.windows:
            return None
        return self.windows_named / self.windows


@dataclass(frozen=True)
class SoakCollective:
    """One world collective at one size over the soak: the median of its windows' busbw."""

    collective: str
    bytes: int
    windows: int
    median_busbw_GBps: float
    wrong: int = 0
    """Wrong elements over every window."""


@dataclass(frozen=True)
class PortRise:
    """One error counter of one link's port that rose over the soak: its rises summed, in how many windows."""

    node: str
    rail: int
    device: str | None
    counter: str
    total: int
    windows: int
    first: int
    last: int


@dataclass(frozen=True)
class WorldPoint:
    """One world collective at one size in one window."""

    window: int
    collective: str
    bytes: int
    busbw_Gbps: float
    target_Gbps: float | None = None


@dataclass(frozen=True)
class WindowRise:
    """An error counter of a port that rose in one window (``flaps``: the link's down events there, counter
    ``flaps``)."""

    window: int
    node: str
    rail: int
    device: str | None
    counter: str
    rise: int


@dataclass(frozen=True)
class SoakSummary:
    """A soak in a few numbers."""

    windows: int
    elapsed_s: float
    planned_s: float | None = None
    window_s: float | None = None
    cover_every: int | None = None
    stopped: str | None = None
    resumed: tuple[int, ...] = ()
    errors: int = 0
    """Every link error counter's rises over every window, summed: 0 for a clean soak."""
    counters: Mapping[str, int] = field(default_factory=dict)
    """The same by counter name (only those that rose)."""
    rises: tuple[PortRise, ...] = ()
    """The same by port and counter (only those that rose), in order of their first rise."""
    flaps: int = 0
    gpu_xid: int = 0
    """Xid events the kernel logs said over the soak."""
    gpu_ecc_uncorrected: int = 0
    links: int = 0
    """The most (node, rail) links one window measured."""
    counters_read: bool = False
    """Some window knew a link's port, so its error counters were read there; else ``errors`` and ``flaps`` say
    nothing (0 of nothing read is not "no error accumulated")."""
    gpus_read: bool = False
    """Some window read its GPUs' state (nvidia-smi, the kernel log); else the GPU counts say nothing."""
    collectives: tuple[SoakCollective, ...] = ()
    named: tuple[SoakPart, ...] = ()
    world: tuple[WorldPoint, ...] = ()
    """Every world collective's busbw in every window (windows x sizes: a few thousand for a day's soak)."""
    window_rises: tuple[WindowRise, ...] = ()
    """Every rise of a port's counter in a window, and every window's flaps of a link (counter ``flaps``): one
    per event, none for a clean soak."""


@dataclass
class _Counts:
    """The running totals of one pass over the windows."""

    windows: int = 0
    last_end_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    ports: dict[tuple[str, int, str | None, str], list[int]] = field(default_factory=dict)
    """(node, rail, device, counter) -> [total, windows, first, last]."""
    flaps: int = 0
    xid: int = 0
    ecc: int = 0
    links: int = 0
    counters_read: bool = False
    gpus_read: bool = False
    busbw: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    wrong: dict[tuple[str, int], int] = field(default_factory=dict)
    named: dict[Part, tuple[str, str, list[int]]] = field(default_factory=dict)
    world: list[WorldPoint] = field(default_factory=list)
    window_rises: list[WindowRise] = field(default_factory=list)

    def add(self, window: SoakWindow) -> None:
        self.windows += 1
        self.last_end_s = max(self.last_end_s, window.end_s)
        self.links = max(self.links, len(window.links))
        self.counters_read = self.counters_read or any(link.device is not None for link in window.links)
        for link in window.links:
            for name, rise in link.errors.items():
                self.errors[name] = min(self.errors.get(name, 0) + max(rise, 0), INT_MAX)
                port = self.ports.setdefault((link.node, link.rail, link.device, name), [0, 0, window.index, 0])
                port[0], port[1], port[3] = min(port[0] + max(rise, 0), INT_MAX), port[1] + 1, window.index
                if rise > 0:
                    self.window_rises.append(WindowRise(window.index, link.node, link.rail, link.device, name, rise))
            self.flaps += link.flaps
            if link.flaps:
                flapped = WindowRise(window.index, link.node, link.rail, link.device, "flaps", link.flaps)
                self.window_rises.append(flapped)
        self.gpus_read = self.gpus_read or bool(window.gpus)
        for gpu in window.gpus:
            self.xid += len(gpu.xid)
            self.ecc += gpu.ecc_uncorrected
        for c in window.collectives:
            self.world.append(WorldPoint(window.index, c.collective, c.bytes, c.busbw_Gbps, c.target_Gbps))
            self.busbw.setdefault((c.collective, c.bytes), []).append(c.busbw_Gbps / 8.0)
            self.wrong[(c.collective, c.bytes)] = self.wrong.get((c.collective, c.bytes), 0) + c.wrong
        for said in window.named:
            seen = self.named.setdefault(said.part, (said.symptom, said.severity, []))[2]
            if not seen or seen[-1] != window.index:
                seen.append(window.index)


def summarise(
    windows: Iterable[SoakWindow], section: SoakSection | None, findings: Sequence[SoakPart] = ()
) -> SoakSummary:
    """The soak's numbers from its windows (read once), run.json's ``soak`` section and its soak findings."""
    counts = _Counts()
    for window in windows:
        counts.add(window)
    collectives = tuple(
        SoakCollective(name, size, len(values), statistics.median(values), counts.wrong[(name, size)])
        for (name, size), values in sorted(counts.busbw.items())
    )
    convicted = {f.part for f in findings}
    by_windows = tuple(
        SoakPart(part, symptom, len(seen), counts.windows, seen[0], seen[-1], severity=severity)
        for part, (symptom, severity, seen) in counts.named.items()
        if part not in convicted
    )
    return SoakSummary(
        windows=counts.windows,
        elapsed_s=section.elapsed_s if section is not None and section.elapsed_s else counts.last_end_s,
        planned_s=section.planned_s if section is not None else None,
        window_s=section.window_s if section is not None else None,
        cover_every=section.cover_every if section is not None else None,
        stopped=section.stopped if section is not None else None,
        resumed=section.resumed if section is not None else (),
        errors=min(sum(counts.errors.values()), INT_MAX),
        counters=dict(sorted(counts.errors.items())),
        rises=tuple(PortRise(*key, *numbers) for key, numbers in counts.ports.items()),
        flaps=counts.flaps,
        gpu_xid=counts.xid,
        gpu_ecc_uncorrected=counts.ecc,
        links=counts.links,
        counters_read=counts.counters_read,
        gpus_read=counts.gpus_read,
        collectives=collectives,
        named=(*findings, *by_windows),
        world=tuple(counts.world),
        window_rises=tuple(counts.window_rises),
    )


def named_part(found: SoakFound) -> SoakPart:
    """One soak finding (run.json's ``soak.findings``) as a named part, by its record's fields: an
    ``Intermittent`` says ``windows_named`` of ``windows_measured`` with ``first`` and ``last``; an ``ErrorGate``
    the ``windows_risen`` of its ``windows`` and its ``worst_window``; a ``Trend`` its series from ``first_window``
    to ``last_window`` over ``windows`` (no duty: it names a fall, not how often)."""
    finding = soak_finding(found.record, found.action)
    record = found.record
    named: int | None
    first: int | None
    last: int | None
    if isinstance(record, Intermittent):
        named, windows, first, last = record.windows_named, record.windows_measured, record.first, record.last
    elif isinstance(record, ErrorGate):
        named, windows, first, last = record.windows_risen, record.windows, record.worst_window, record.worst_window
    else:
        named, windows, first, last = None, record.windows, record.first_window, record.last_window
    return SoakPart(
        finding.part, finding.symptom, named, windows, first, last, found.action, finding.severity, by_finding=True
    )


def soak_findings(section: SoakSection | None) -> tuple[SoakPart, ...]:
    """The soak findings of run.json's ``soak`` section, each part and symptom once (a port over its limit in a
    window and over the soak is one row of ``errors``; the same port intermittent is another)."""
    out: dict[tuple[Part, str], SoakPart] = {}
    for found in section.findings if section is not None else ():
        named = named_part(found)
        out.setdefault((named.part, named.symptom), named)
    return tuple(out.values())


def windows_of(run_dir: Path) -> Iterator[SoakWindow]:
    """The windows of ``run_dir`` one at a time; a line that does not read is bad input (UserError, exit 2), said
    in one line with its number, never a traceback."""
    try:
        yield from iter_windows(run_dir)
    except codec.Refused as exc:
        raise UserError(f"{exc}: the run directory is damaged; run the soak again") from None


def read_soak(run_dir: Path | str, run: RunDoc | None = None) -> SoakSummary | None:
    """The soak of a run directory, or None when it is not a soak (no ``soak`` section, no windows.jsonl)."""
    run_dir = Path(run_dir)
    doc = run if run is not None else read_run_json(run_dir)
    section = present(doc.soak)
    if section is None and not (run_dir / "windows.jsonl").is_file():
        return None
    return summarise(windows_of(run_dir), section, soak_findings(section))


# --- the store's tables ----------------------------------------------------------------------------------


def create_tables(conn: sqlite3.Connection) -> None:
    """The history's ``soak_runs`` and ``soak_collectives`` (migration 6)."""
    conn.execute(
        """CREATE TABLE soak_runs (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            windows INTEGER NOT NULL,
            elapsed_s REAL NOT NULL,
            planned_s REAL,
            stopped TEXT,
            errors INTEGER,
            flaps INTEGER,
            counters TEXT NOT NULL,
            named TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE soak_collectives (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            collective TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            windows INTEGER NOT NULL,
            median_busbw_GBps REAL NOT NULL,
            wrong INTEGER NOT NULL,
            PRIMARY KEY (run_id, collective, bytes)
        ) WITHOUT ROWID"""
    )


def _named_json(named: Sequence[SoakPart]) -> str:
    """The parts named, as JSON the nightly reads: where, the part's fields, the duty and the windows."""
    return json.dumps(
        [
            {
                "where": n.part.where,
                "part": codec.encode(n.part),
                "symptom": n.symptom,
                "windows_named": n.windows_named,
                "windows": n.windows,
                "first": n.first,
                "last": n.last,
                "by_finding": n.by_finding,
            }
            for n in named
        ],
        separators=(",", ":"),
    )


def write(conn: sqlite3.Connection, run_id: int, soak: SoakSummary | None) -> None:
    """Replace one run's soak rows (inside the caller's transaction); a run that is no soak has none."""
    conn.execute("DELETE FROM soak_runs WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM soak_collectives WHERE run_id = ?", (run_id,))
    if soak is None:
        return
    conn.execute(
        "INSERT INTO soak_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            soak.windows,
            soak.elapsed_s,
            soak.planned_s,
            soak.stopped,
            soak.errors if soak.counters_read else None,
            soak.flaps if soak.counters_read else None,
            json.dumps(dict(soak.counters), separators=(",", ":")),
            _named_json(soak.named),
        ),
    )
    conn.executemany(
        "INSERT INTO soak_collectives VALUES (?, ?, ?, ?, ?, ?)",
        [(run_id, c.collective, c.bytes, c.windows, c.median_busbw_GBps, c.wrong) for c in soak.collectives],
    )


@dataclass(frozen=True)
class StoredSoak:
    """A soak as the history holds it."""

    windows: int
    elapsed_s: float
    planned_s: float | None
    stopped: str | None
    errors: int | None
    """None: no window read a link's error counters."""
    flaps: int | None
    counters: Mapping[str, int]
    named: tuple[str, ...]
    """Where each named part is (``Part.where``)."""
    collectives: tuple[SoakCollective, ...]


def of_runs(conn: sqlite3.Connection, run_ids: Sequence[int]) -> dict[int, StoredSoak]:
    """The soaks among the given runs, by run id (a run that is no soak is left out)."""
    out: dict[int, StoredSoak] = {}
    for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = list(run_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        collectives: dict[int, list[SoakCollective]] = {}
        query = f"SELECT * FROM soak_collectives WHERE run_id IN ({marks}) ORDER BY run_id, collective, bytes"
        for run_id, collective, nbytes, windows, median, wrong in conn.execute(query, chunk):
            collectives.setdefault(run_id, []).append(SoakCollective(collective, nbytes, windows, median, wrong))
        query = f"SELECT * FROM soak_runs WHERE run_id IN ({marks})"
        for run_id, windows, elapsed, planned, stopped, errors, flaps, counters, named in conn.execute(query, chunk):
            out[run_id] = StoredSoak(
                windows,
                elapsed,
                planned,
                stopped,
                errors,
                flaps,
                json.loads(counters),
                # each part once, whatever it was named for (a port's error gate and its duty cycle)
                tuple(dict.fromkeys(str(n.get("where", "")) for n in json.loads(named))),
                tuple(collectives.get(run_id, ())),
            )
    return out
