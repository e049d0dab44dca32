"""Which collective a table measured and over how many ranks, from the best evidence in the log.

Both decide the busbw formula, so each comes with its source. Collective: the ``Collective test starting``
marker, then the command line (``.../all_gather_perf -b ...``), then ``--collective``, then the row shape
when only one collective fits it (redop, root, size/count ratio, busbw/algbw), then a name mentioned before
the table (``-t all_gather``), then the file name; a name is only taken from a hint if the rows fit it.
nranks: NCCL's own ``nranks N`` lines, then the device list (or the launcher's ``-np`` when the list is
cut short), then ``--nranks`` (which also counts when the collective is chosen), then size/count for
per-rank-count collectives, then inverting the all_reduce factor over every row fast enough to pin it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.exits import UserError
from bench.nccltests.model import (
    BUS_FACTOR,
    ELEMENT_SIZE,
    PER_RANK_COUNT,
    REDUCING,
    ROOTED,
    Device,
    Header,
    PlacementResult,
    Printed,
    Quoted,
    Row,
    Sourced,
    Table,
    busbw_factor,
    rank_free,
)

# Names as people write them in file names and wrapper flags (-t all_gather, nccl_allreduce.log).
_ALIASES = {name.replace("_", ""): name for name in BUS_FACTOR} | {name: name for name in BUS_FACTOR}
MAX_NOTES = 50
_NAME_MENTION = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(_ALIASES, key=len, reverse=True)) + r")(?![A-Za-z0-9])"
)


@dataclass
class TableEvidence:
    """What the lines of one table (or the lines before it) say, gathered while reading: the working state
    that ``printed`` freezes once the table is complete, and the hints (marker, mentions, NCCL INFO lines)
    that only ``finish`` reads."""

    first_line: int = 0
    marker: str | None = None
    header: Header | None = None
    devices: list[Device] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    closed: bool = False
    footer: bool = False
    out_of_bounds: int | None = None
    avg: float | None = None
    failures: list[str] = field(default_factory=list)
    first_failure_line: int | None = None
    """The log line of the first failure, to say where a run stopped."""
    notes: list[str] = field(default_factory=list)
    hashless: bool = False
    """The table's ``#`` lines came without their ``#`` (noted once)."""
    info_nranks: int | None = None
    """The largest ``nranks N`` NCCL INFO lines gave."""
    info_hosts: dict[str, None] = field(default_factory=dict)
    """Hosts of NCCL INFO line prefixes, in order of first appearance."""
    mentions: list[str] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    """The column header's names (``size count type redop root time ...``), when the table printed it."""
    quoted: Quoted = field(default_factory=Quoted)
    """Sticky: what the log said before this table, handed on to the tables that follow."""

    def note(self, text: str) -> None:
        """Add a note; a damaged log could give one per line, so past ``MAX_NOTES`` they are only counted."""
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        elif len(self.notes) == MAX_NOTES:
            self.notes.append("more notes left out")

    def fail(self, line: str, number: int | None = None) -> None:
        """Add a failure line (shortened; past ``MAX_NOTES`` only the first ones are kept)."""
        if self.first_failure_line is None:
            self.first_failure_line = number
        if len(self.failures) < MAX_NOTES:
            self.failures.append(line[:300])

    def mention(self, names: Sequence[str]) -> None:
        self.mentions = (self.mentions + list(names))[-MAX_NOTES:]

    @property
    def started(self) -> bool:
        return bool(self.header or self.devices or self.rows or self.marker)

    def printed(self) -> Printed:
        """The table as printed, frozen: the lists gathered line by line become the record ``Table`` holds."""
        return Printed(
            first_line=self.first_line,
            rows=tuple(self.rows),
            devices=tuple(self.devices),
            header=self.header,
            complete=self.footer,
            out_of_bounds=self.out_of_bounds,
            avg_busbw_GBps=self.avg,
            failures=tuple(self.failures),
            quoted=self.quoted,
        )

    def successor(self, first_line: int) -> TableEvidence:
        """A new table that inherits what the log quoted before it."""
        return TableEvidence(first_line=first_line, quoted=self.quoted)


def mentions(text: str) -> list[str]:
    """Collective names written in free text, in order."""
    return [_ALIASES[m] for m in _NAME_MENTION.findall(text.replace("-", "_"))]


# ---------------------------------------------------------------------------------- collective, nranks


def _count_ratio(rows: Sequence[Row]) -> int | None:
    """size / (count x element size) of the first non-empty row: nranks for per-rank-count collectives."""
    for row in rows:
        elsize = ELEMENT_SIZE.get(row.dtype)
        if elsize and row.count > 0 and row.bytes > 0:
            ratio = row.bytes / (row.count * elsize)
            return int(ratio) if ratio == int(ratio) else None
    return None


def _measurement_bounds(m: PlacementResult) -> tuple[float, float]:
    """busbw/algbw of one measurement, as printed, widened by half a printed unit each side."""
    a, b = m.algbw_GBps, m.busbw_GBps
    return max(b.value - b.half_unit, 0.0) / (a.value + a.half_unit), (b.value + b.half_unit) / max(
        a.value - a.half_unit, 1e-12
    )


def _bus_bounds(rows: Sequence[Row]) -> tuple[float, float] | None:
    """The busbw/algbw bounds every measurement with a non-zero algbw agrees with: nccl-tests multiplies every
    row of a table by the same factor, so each row narrows it by what its printed decimals allow (0.81 and
    0.81 pin 0.988-1.012: all_reduce over 2 ranks, not 3). None when every row printed algbw 0. Rows that
    disagree (a damaged table) give the bounds of the most precise one alone."""
    fast = [m for r in rows for m in r.measurements if m.algbw_GBps.value > m.algbw_GBps.half_unit]
    if not fast:
        return None
    lo, hi = 0.0, math.inf
    for m in fast:
        m_lo, m_hi = _measurement_bounds(m)
        lo, hi = max(lo, m_lo), min(hi, m_hi)
    if lo <= hi:
        return lo, hi
    return _measurement_bounds(max(fast, key=lambda m: m.algbw_GBps.value))


def _shape_fits(collective: str, rows: Sequence[Row], nranks: int | None, columns: Sequence[str] = ()) -> bool:
    """Whether the rows' redop, root, columns and size/count are those ``collective`` prints."""
    if not _columns_fit(collective, rows[0], columns):
        return False
    ratio = _count_ratio(rows)
    if ratio is None:
        return True
    if collective in PER_RANK_COUNT:
        return ratio == (nranks or ratio)
    return ratio == 1


def _fits(collective: str, rows: Sequence[Row], nranks: int | None, columns: Sequence[str] = ()) -> bool:
    """Whether the rows could come from ``collective`` (redop, root, count/size and busbw/algbw)."""
    if not _shape_fits(collective, rows, nranks, columns):
        return False
    if collective in PER_RANK_COUNT and nranks is None:
        nranks = _count_ratio(rows)
    if nranks is not None and busbw_factor(collective, nranks) == 0.0:
        # One rank moves nothing over the bus: nccl-tests prints busbw 0 at every size.
        return all(m.busbw_GBps.value == 0.0 for r in rows for m in r.measurements)
    bus = _bus_bounds(rows)
    if bus is None:
        return True
    lo, hi = bus
    if nranks is not None:
        return lo <= busbw_factor(collective, nranks) <= hi
    return _some_factor_fits(collective, lo, hi)


def _columns_fit(collective: str, first: Row, columns: Sequence[str]) -> bool:
    """Whether the first row's redop and root (and the table's columns) are those ``collective`` prints."""
    if first.redop in ("none", "") and collective in REDUCING:
        return False
    if columns and "redop" not in columns and collective in REDUCING:
        return False
    # Every nccl-tests version prints a root column for the rooted collectives (the old format too), and no
    # row that has one says -1 for them.
    if collective in ROOTED and (first.root is None or first.root < 0 or (columns and "root" not in columns)):
        return False
    return not (first.root is not None and first.root >= 0 and collective not in ROOTED)


def _some_factor_fits(collective: str, lo: float, hi: float) -> bool:
    """Whether busbw/algbw in [lo, hi] is ``collective``'s factor at some rank count. The factors over every
    rank count: 0 for one rank, then all_reduce's 2(n-1)/n in [1, 2), the ring's (n-1)/n in [0.5, 1), and 1
    for the rest."""
    if collective == "all_reduce":
        return lo <= 0.0 or (hi >= 1.0 and lo < 2.0)
    if collective in PER_RANK_COUNT:
        return lo <= 0.0 or (hi >= 0.5 and lo < 1.0)
    return lo <= 1.0 <= hi


def _row_shape(t: TableEvidence) -> str:
    """What the rows look like, for a message that says why no collective fits them."""
    first = t.rows[0]
    parts = [f"redop {first.redop or '(none)'}", f"root {'(no column)' if first.root is None else first.root}"]
    if (ratio := _count_ratio(t.rows)) is not None:
        parts.append(f"size/count {ratio} element{'s' if ratio != 1 else ''}")
    if (bus := _bus_bounds(t.rows)) is not None:
        parts.append(f"busbw/algbw {(bus[0] + bus[1]) / 2:.3f}")
    return ", ".join(parts)


def _choose_collective(
    t: TableEvidence, nranks: int | None, file_hint: Sequence[str], given: str | None
) -> tuple[str, str]:
    if t.marker:
        if t.marker not in BUS_FACTOR:
            raise UserError(
                f"table at line {t.first_line} measured {t.marker}, which has no busbw formula in railbench: "
                f"import logs of {', '.join(BUS_FACTOR)}"
            )
        return t.marker, "marker"
    fits = [c for c in BUS_FACTOR if _fits(c, t.rows, nranks, t.columns)]
    ranked = [
        ("command", [t.quoted.command_collective] if t.quoted.command_collective else []),
        ("given", [given] if given else []),
        ("row shape", fits if len(fits) == 1 else []),
        ("mention", list(reversed(t.mentions))),
        ("file name", list(file_hint)),
    ]
    for source, names in ranked:
        for name in names:
            if name in fits or (source == "given" and name in BUS_FACTOR):
                return name, source
    named = t.quoted.command_collective
    if named in BUS_FACTOR and _shape_fits(named, t.rows, nranks, t.columns):
        # The command line names the program and the rows have its shape; only busbw/algbw disagrees, as in
        # nccl-tests of early 2020, whose all_gather printed busbw = algbw. The log's own word stands.
        t.note(f"busbw/algbw ({_row_shape(t)}) is not {named}'s factor: busbw read as printed")
        return named, "command"
    if not fits:
        counted = f" over {nranks} ranks" if nranks else ""
        raise UserError(
            f"table at line {t.first_line}: its rows fit no collective nccl-tests runs{counted} ({_row_shape(t)}): "
            "pass --collective NAME (and --nranks N) if you know them"
        )
    raise UserError(
        f"table at line {t.first_line}: cannot tell which collective it measured (rows fit {' or '.join(fits)}): "
        "pass --collective NAME"
    )


def _list_cut(t: TableEvidence) -> bool:
    """Whether the device list names a rank past the lines it holds (-J lists one line per process, so a
    process's nThread x nGpus ranks count per line)."""
    per_line = (t.header.nthreads * t.header.ngpus) if t.header else 1
    return bool(t.devices) and max(d.rank for d in t.devices) + 1 > len(t.devices) * per_line


def _direct_nranks(t: TableEvidence) -> tuple[int | None, str, list[str]]:
    """nranks from NCCL's own lines, the device list and the launcher's -np, with notes."""
    notes: list[str] = []
    if t.info_nranks:
        return t.info_nranks, "NCCL INFO", notes
    per_process = (t.header.nthreads * t.header.ngpus) if t.header else 1
    launched = t.quoted.launcher_np * per_process if t.quoted.launcher_np else None
    if t.devices:
        group0 = t.devices[0].group
        in_group = [d for d in t.devices if d.group == group0]
        listed = max(d.rank for d in t.devices) + 1
        if launched and launched > listed:
            notes.append(f"device list shows {listed} of {launched} ranks; nranks from the launcher's -np")
            return launched, "launcher -np", notes
        if _list_cut(t):
            # Rank 71 alone (a paste that kept the list's last line) says 72 ranks or more, not 1.
            notes.append(f"device list is cut: it shows {len(t.devices)} line(s) up to rank {listed - 1}")
            return None, "", notes
        if len(in_group) < len(t.devices):
            notes.append(f"{len({d.group for d in t.devices})} communicators side by side (NCCL_TESTS_SPLIT)")
        return len(in_group), "device lines", notes
    if launched:
        return launched, "launcher -np", notes
    if t.quoted.command_ranks:
        # nThread x nGpus of the header is what ran; the command line's flags are the fallback.
        return (per_process if t.header else t.quoted.command_ranks), "command line", notes
    return None, "", notes


def _infer_nranks(collective: str, rows: Sequence[Row], at_least: int = 1) -> int | None:
    """nranks from the numbers alone: the count ratio, or inverting the all_reduce busbw factor over the
    counts from ``at_least`` (the highest rank a cut device list shows, plus one)."""
    if collective in PER_RANK_COUNT:
        return _count_ratio(rows)
    bus = _bus_bounds(rows)
    if collective == "all_reduce" and bus:
        lo, hi = bus
        fits = [n for n in range(at_least, 4097) if lo <= busbw_factor("all_reduce", n) <= hi]
        return fits[0] if len(fits) == 1 else None
    return None


def _reading_notes(t: TableEvidence, collective: str, collective_source: str) -> list[str]:
    """What the reader should know of how the table was read: a collective guessed from the file's name, a
    table cut short."""
    notes = []
    if collective_source == "file name":
        notes.append(
            f"collective {collective} taken from the file name: the log names it nowhere else (no command line, "
            "no 'Collective test starting' marker); pass --collective to be sure"
        )
    if not t.footer:
        notes.append("table has no footer: the run stopped or the log was cut (truncated)")
    return notes


def finish(
    t: TableEvidence, file_hint: Sequence[str], given: str | None, given_nranks: int | None, source: str
) -> Table:
    """The frozen ``Table`` for what was read: collective and nranks chosen, notes and failures attached."""
    nranks, nranks_source, notes = _direct_nranks(t)
    if nranks is None and given_nranks:
        # What the user knows beats what the numbers suggest: busbw/algbw pins all_reduce's count only as
        # closely as two printed decimals allow.
        nranks, nranks_source = given_nranks, "given"
    collective, collective_source = _choose_collective(t, nranks, file_hint, given)
    if collective in PER_RANK_COUNT and (ratio := _count_ratio(t.rows)) and ratio != nranks:
        if nranks is not None:
            notes.append(f"{nranks_source} says {nranks} ranks but sizes/counts say {ratio}; using {ratio}")
        nranks, nranks_source = ratio, "count per rank"
    at_least = max((d.rank for d in t.devices), default=0) + 1
    if nranks is None and (inferred := _infer_nranks(collective, t.rows, at_least)):
        nranks, nranks_source = inferred, "busbw/algbw"
    if nranks_source == "given" and (inferred := _infer_nranks(collective, t.rows)) and inferred != nranks:
        notes.append(f"--nranks says {nranks} ranks but busbw/algbw says {inferred}; using {nranks}")
    if nranks is None and rank_free(collective):
        # busbw = algbw x 1 at any rank count: the numbers stand as printed, and the count stays unknown
        notes.append(
            f"the log does not say how many ranks ran; {collective}'s busbw is algbw at any rank count, so its "
            "numbers stand as printed and nranks is left blank (pass --nranks N to record it)"
        )
        nranks_source = "unknown"
    elif nranks is None:
        raise UserError(
            f"{source or 'log'}: table at line {t.first_line} ({collective}) does not say how many ranks ran: "
            "pass --nranks N"
        )
    if nranks_source == "command line" and (inferred := _infer_nranks(collective, t.rows)) and inferred != nranks:
        notes.append(f"the command line says {nranks} ranks but busbw/algbw says {inferred}; using {inferred}")
        nranks, nranks_source = inferred, "busbw/algbw"
    notes += _reading_notes(t, collective, collective_source)
    hosts = tuple(dict.fromkeys(d.host for d in t.devices)) or tuple(t.info_hosts)
    return Table(
        printed=t.printed(),
        collective=Sourced(collective, collective_source),
        nranks=Sourced(nranks, nranks_source),
        hosts=hosts,
        hosts_complete=bool(t.devices) and nranks_source != "launcher -np" and not _list_cut(t),
        notes=tuple(t.notes + notes),
    )
