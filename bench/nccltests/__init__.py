"""Read nccl-tests output: the text table (old and new formats) and the JSON that ``-J`` writes.

A log may hold several tables (one per ``*_perf`` run). Each becomes a ``Table`` with its rows, its devices
(hosts, GPU models), its header (nThread, nGpus, minBytes, ...) and what the log says about failures. The
parser is forgiving in the ways real logs need: srun's ``N:`` labels, NCCL INFO lines inside the table,
markdown around the output, ``N/A`` in ``#wrong``, exponent-form numbers (``1.0e+07``), an empty redop
(old alltoall), a missing root column (old format), per-iteration columns and ``-S`` timestamps. A log
that stops mid-table keeps its rows and says it was truncated.

Which collective and how many ranks a table measured are facts the busbw formula depends on, so each is
taken from the best evidence available and the source is recorded (``collective_source``,
``nranks_source``): see ``bench.nccltests.infer``.

The ``# Avg bus bandwidth`` line is kept (``avg_busbw_GBps``) but is not a headline: it averages every size,
tiny ones included.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UserError
from bench.nccltests.jsonfile import parse_json
from bench.nccltests.model import (
    BUS_FACTOR,
    Device,
    Header,
    Measurement,
    NcclTestsLog,
    Number,
    Row,
    Table,
    busbw_factor,
    collective_from_program,
    nccl_version_from_code,
)
from bench.nccltests.text import parse_row, parse_text

__all__ = [
    "BUS_FACTOR",
    "Device",
    "Header",
    "Measurement",
    "NcclTestsLog",
    "Number",
    "Row",
    "Table",
    "busbw_factor",
    "collective_from_program",
    "nccl_version_from_code",
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
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}: check the path") from None
    return parse_log(text, source=str(path), collective=collective, nranks=nranks)
