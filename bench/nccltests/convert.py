"""A parsed nccl-tests log as a railbench run: results.csv rows and run.json metadata (pure functions).

The log's numbers are kept as printed (time, algbw, busbw): they are what nccl-tests measured. Each table
becomes rows of one communicator: the table with the most ranks is the world (scope ``world``, group
``world``); a smaller one on one host is scope ``node`` with the host as its group; any other is scope
``world`` with its hosts (``nodeA-nodeB``) or its size (``n8``) as the group. Two extra columns follow
RESULT_COLUMNS: ``table`` (1-based, in log order) and ``line`` (where the row is in the log).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bench import __version__
from bench.nccltests.model import NcclTestsLog, Table
from bench.rundir.files import FORMAT_VERSION, RESULT_COLUMNS
from bench.runtime.env import recorded_environment

EXTRA_COLUMNS = ("table", "line")
COLUMNS = (*RESULT_COLUMNS, *EXTRA_COLUMNS)


def world_table(log: NcclTestsLog) -> Table:
    """The table with the most ranks (the first of them): it names the run's hosts and nranks."""
    return max(log.tables, key=lambda t: t.nranks)


def table_nnodes(table: Table) -> int | None:
    """Nodes of a table; estimated from ranks per host when the device list was cut short."""
    if not table.hosts:
        return None
    if table.hosts_complete:
        return len(table.hosts)
    per_host = max(Counter(d.host for d in table.devices).values(), default=0)
    return max(len(table.hosts), math.ceil(table.nranks / per_host)) if per_host else len(table.hosts)


def communicator(table: Table, world: Table) -> tuple[str, str]:
    """(scope, group) of a table's communicator, relative to the log's world."""
    if table.nranks == world.nranks and (not table.hosts or not world.hosts or set(table.hosts) == set(world.hosts)):
        return "world", "world"
    if len(table.hosts) == 1 and table_nnodes(table) == 1:
        return "node", table.hosts[0]
    if table.hosts and table.hosts_complete:
        return "world", "-".join(table.hosts)
    return "world", f"n{table.nranks}"


def result_rows(log: NcclTestsLog) -> list[dict[str, Any]]:
    """results.csv rows (RESULT_COLUMNS + EXTRA_COLUMNS), one per row half, in log order."""
    world = world_table(log)
    rows: list[dict[str, Any]] = []
    for index, table in enumerate(log.tables, start=1):
        scope, group = communicator(table, world)
        for row in table.rows:
            for m in row.measurements:
                busbw = m.busbw_GBps.value
                rows.append(
                    {
                        "collective": table.collective,
                        "scope": scope,
                        "group": group,
                        "nranks": table.nranks,
                        "nnodes": table_nnodes(table),
                        "bytes": row.bytes,
                        "count": row.count,
                        "dtype": row.dtype,
                        "placement": m.placement,
                        "iters": table.header.iters if table.header else None,
                        "time_us": m.time_us.value,
                        "algbw_GBps": m.algbw_GBps.value,
                        "busbw_GBps": busbw,
                        "busbw_Gbps": round(busbw * 8, 6),
                        "wrong": m.wrong,
                        "redop": row.redop,
                        "root": row.root,
                        "table": index,
                        "line": row.line,
                    }
                )
    return rows


def _status(log: NcclTestsLog) -> tuple[str, str | None]:
    if log.failures:
        return "failed", "error"
    if log.truncated:
        return "incomplete", "error"
    wrong = any(m.wrong for t in log.tables for r in t.rows for m in r.measurements) or any(
        t.out_of_bounds for t in log.tables
    )
    # No targets are checked on import, so a clean log has no verdict rather than a pass.
    return "complete", "fail" if wrong else None


def run_meta(
    log: NcclTestsLog,
    *,
    cluster: str,
    started_utc: str,
    finished_utc: str,
    sha256: str,
) -> dict[str, Any]:
    """run.json for an imported log (the shape ``bench.rundir.files``'s readers expect, plus ``source``)."""
    world = world_table(log)
    status, verdict = _status(log)
    per_host: Counter[str] = Counter()
    ranks = []
    node_of = {host: i for i, host in enumerate(world.hosts)}
    for device in world.devices:
        ranks.append({"rank": device.rank, "host": device.host, "local_rank": per_host[device.host],
                      "node_rank": node_of[device.host]})  # fmt: skip
        per_host[device.host] += 1
    command = next((t.command for t in log.tables if t.command), None)
    header = world.header
    return {
        "format_version": FORMAT_VERSION,
        "tool": "railbench",
        "version": __version__,
        "command": "import",
        "cluster": cluster,
        "profile": None,
        "started_utc": started_utc,
        "finished_utc": finished_utc,
        "status": status,
        "verdict": verdict,
        "hosts": list(world.hosts),
        "nnodes": table_nnodes(world),
        "nranks": world.nranks,
        "ranks": ranks,
        "launcher": _launcher(command),
        "backend": "nccl",
        "versions": {
            "torch": None,
            "nccl": next((t.nccl_version for t in log.tables if t.nccl_version), None),
            "cuda": next((t.cuda_version for t in log.tables if t.cuda_version), None),
            "driver": None,
            "python": None,
            "railbench": __version__,
            "nccl_tests": next((t.nccl_tests_version for t in log.tables if t.nccl_tests_version), None),
        },
        "env": recorded_environment(log.env or _exported(command)),
        "sweep": {
            "collectives": list(dict.fromkeys(t.collective for t in log.tables)),
            "min_bytes": min(r.bytes for t in log.tables for r in t.rows),
            "max_bytes": max(r.bytes for t in log.tables for r in t.rows),
            "step_factor": header.step_factor if header else None,
            "iters": header.iters if header else None,
            "warmup": header.warmup_iters if header else None,
            "dtype": world.rows[0].dtype,
            "check": bool(header.validation) if header and header.validation is not None else None,
        },
        "counters": {},
        "nccl_evidence": None,
        "gpus": list(dict.fromkeys(g for t in log.tables for g in t.gpus)),
        "source": {
            "path": log.source,
            "sha256": sha256,
            "format": log.format,
            "truncated": log.truncated,
            "failures": list(log.failures),
            "command": command,
            "tables": [_table_summary(t) for t in log.tables],
        },
    }


def _table_summary(t: Table) -> Mapping[str, Any]:
    return {
        "collective": t.collective,
        "collective_source": t.collective_source,
        "nranks": t.nranks,
        "nranks_source": t.nranks_source,
        "rows": len(t.rows),
        "first_line": t.first_line,
        "complete": t.complete,
        "out_of_bounds": t.out_of_bounds,
        "avg_busbw_GBps": t.avg_busbw_GBps,  # read, never used as the headline
        "hosts": list(t.hosts),
        "gpus": list(t.gpus),
        "notes": list(t.notes),
    }


def _exported(command: str | None) -> dict[str, str]:
    """``-x NAME=VALUE`` (mpirun) and ``--export=NAME=VALUE`` settings on a text log's command line."""
    found = re.findall(r"(?:-x\s+|--export=(?:ALL,)?)([A-Z][A-Z0-9_]*)=(\S+)", command or "")
    return dict(found)


def _launcher(command: str | None) -> str | None:
    words = set((command or "").split())
    for launcher in ("mpirun", "srun", "torchrun", "kubectl"):
        if launcher in words or any(w.endswith("/" + launcher) for w in words):
            return launcher
    return None


def utc_stamp_of(epoch_s: float) -> str:
    """ISO 8601 UTC with Z, as run.json writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
