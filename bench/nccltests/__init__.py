"""Read nccl-tests output: the text table (old and new formats) and the JSON that ``-J`` writes.

A log may hold several tables (one per ``*_perf`` run). Each becomes a ``Table`` with its rows, its devices
(hosts, GPU models), its header (nThread, nGpus, minBytes, ...) and what the log says about failures. The
parser is forgiving in the ways real logs need: srun's ``N:`` labels, NCCL INFO lines inside the table,
markdown around the output, ``N/A`` in ``#wrong``, exponent-form numbers (``1.0e+07``), an empty redop
(old alltoall), a missing root column (old format), per-iteration columns and ``-S`` timestamps. A log
that stops mid-table keeps its rows and says it was truncated.

Which collective and how many ranks a table measured are facts the busbw formula depends on, so each is
taken from the best evidence available and the source is recorded (``Table.collective.source``,
``Table.nranks.source``): see ``bench.nccltests.infer``. What the table printed is one record,
``Table.printed``.

The ``# Avg bus bandwidth`` line is kept (``Printed.avg_busbw_GBps``) but is not a headline: it averages every size,
tiny ones included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.exits import UserError
from bench.nccltests.jsonfile import MAX_JSON_BYTES, parse_json
from bench.nccltests.model import (
    BUS_FACTOR,
    Device,
    Header,
    NcclTestsLog,
    Number,
    PlacementResult,
    Printed,
    Row,
    Sourced,
    Table,
    busbw_factor,
    collective_from_program,
    nccl_version_from_code,
)
from bench.nccltests.text import iter_tables, parse_row, parse_text
from bench.textlines import numbered_lines, open_text

__all__ = [
    "BUS_FACTOR",
    "Device",
    "Header",
    "LogStream",
    "NcclTestsLog",
    "Number",
    "PlacementResult",
    "Printed",
    "Row",
    "Sourced",
    "Table",
    "busbw_factor",
    "collective_from_program",
    "nccl_version_from_code",
    "open_log",
    "parse_json",
    "parse_log",
    "parse_row",
    "parse_text",
    "read_log",
]


def parse_log(text: str, *, source: str = "", collective: str | None = None, nranks: int | None = None) -> NcclTestsLog:
    """Text or JSON, told apart by the first character."""
    if text.lstrip().startswith("{"):
        return parse_json(text, source=source, collective=collective, nranks=nranks)
    return parse_text(text, source=source, collective=collective, nranks=nranks)


def read_log(path: Path | str, *, collective: str | None = None, nranks: int | None = None) -> NcclTestsLog:
    """Read and parse one nccl-tests output file; UserError if it cannot be read or holds no table."""
    with open_log(Path(path), collective=collective, nranks=nranks) as stream:
        tables = tuple(stream.tables)
        failures = (*(f for t in tables for f in t.printed.failures), *stream.loose_failures)
        return NcclTestsLog(
            stream.source, stream.format, tables, failures, stream.env, stream.start_time, stream.end_time
        )


@dataclass
class LogStream:
    """One log being read: its tables come one at a time, so a log of any size is read in bounded memory."""

    source: str
    format: Literal["text", "json"]
    tables: Iterator[Table]
    loose_failures: list[str] = field(default_factory=list)
    """Failure lines that belong to no table; complete once ``tables`` is exhausted."""
    env: dict[str, str] = field(default_factory=dict)
    start_time: str | None = None
    end_time: str | None = None


@contextmanager
def open_log(path: Path, *, collective: str | None = None, nranks: int | None = None) -> Iterator[LogStream]:
    """``path`` opened as a stream of tables (text), or parsed whole (a -J file, at most ``MAX_JSON_BYTES``)."""
    with open_text(path) as handle:
        head = handle.read(4096)
        if head.lstrip().startswith("{"):
            rest = handle.read(MAX_JSON_BYTES)
            if handle.read(1):
                raise UserError(f"{path} is over {MAX_JSON_BYTES >> 20} MiB, larger than any nccl-tests -J file")
            log = parse_json(head + rest, source=str(path), collective=collective, nranks=nranks)
            yield LogStream(log.source, "json", iter(log.tables), [], log.env, log.start_time, log.end_time)
            return
        handle.seek(0)
        loose: list[str] = []
        tables = iter_tables(
            numbered_lines(handle), source=str(path), collective=collective, nranks=nranks, failures=loose
        )
        yield LogStream(str(path), "text", tables, loose)
