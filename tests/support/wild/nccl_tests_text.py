"""railbench's reading of one nccl-tests text log (``bench.nccltests.read_log``), as plain data.

Per table: the collective and where it was taken from, the ranks, the hosts and GPU models of the device lines,
whether that list is the whole run, each row as ``[bytes, busbw out-of-place, busbw in-place, #wrong
out-of-place, #wrong in-place]`` (``"N/A"`` where the table printed ``N/A``; old tables' ``error`` column, the
largest error, rounded: 1e+00 reads 1, 1e-07 reads 0), the footer (out-of-bounds count, average bus
bandwidth) and whether the table ended. A log railbench refuses reads as ``{"refused": <the message, the
file's name for its path>}``.
"""

from __future__ import annotations

from pathlib import Path

from bench.exits import UserError
from bench.nccltests import Row, Table, read_log


def _row(row: Row) -> list[object]:
    busbw: list[object] = [m.busbw_GBps.value for m in row.measurements]
    wrong: list[object] = ["N/A" if m.wrong is None else m.wrong for m in row.measurements]
    return [row.bytes, *busbw, *wrong]


def _table(table: Table) -> dict[str, object]:
    printed = table.printed
    out: dict[str, object] = {
        "collective": table.collective.value,
        "collective_from": table.collective.source,
        "nranks": table.nranks.value if table.nranks.value is not None else "not said",
        "hosts": list(table.hosts),
        "hosts_complete": table.hosts_complete,
        "gpus": list(printed.gpus),
        "rows": [_row(r) for r in printed.rows],
        "complete": printed.complete,
    }
    if printed.out_of_bounds is not None:
        out["out_of_bounds"] = printed.out_of_bounds
    if printed.avg_busbw_GBps is not None:
        out["avg_busbw"] = printed.avg_busbw_GBps
    if printed.failures:
        out["failures"] = list(printed.failures)
    return out


def read(path: Path) -> dict[str, object]:
    try:
        log = read_log(path)
    except UserError as exc:
        return {"refused": str(exc).replace(str(path), path.name)}
    return {"tables": [_table(t) for t in log.tables]}
