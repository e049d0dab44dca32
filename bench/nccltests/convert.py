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
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TypedDict

from bench.bounded import Where, finite
from bench.nccltests.model import Header, NcclTestsLog, Table
from bench.rundir.files import FORMAT_VERSION
from bench.rundir.results_csv import RESULT_COLUMNS, Row
from bench.runtime.env import recorded_environment
from bench.version import __version__

EXTRA_COLUMNS = ("table", "line")
COLUMNS = (*RESULT_COLUMNS, *EXTRA_COLUMNS)
_NUMERIC = ("time_us", "algbw_GBps", "busbw_GBps")


def _ranks(table: Table | Shape) -> int:
    """For choosing the world: a table whose rank count the log never gave counts as the smallest."""
    nranks = table.nranks.value if isinstance(table, Table) else table.nranks
    return nranks or 0


def world_table(log: NcclTestsLog) -> Table:
    """The table with the most ranks (the first of them): it names the run's hosts and nranks."""
    return max(log.tables, key=_ranks)


def table_nnodes(table: Table) -> int | None:
    """Nodes of a table; estimated from ranks per host when the device list was cut short."""
    if not table.hosts:
        return None
    if table.hosts_complete:
        return len(table.hosts)
    # A host drives at least as many GPUs as it lists, and at least its highest device index + 1: a list cut
    # to ``Rank 71 ... device 3`` (a GB200 tray's fourth GPU) says 4 per host, not 1.
    devices = table.printed.devices
    per_host = max((*Counter(d.host for d in devices).values(), *(d.device + 1 for d in devices)), default=0)
    nranks = table.nranks.value
    if not per_host or nranks is None:
        return len(table.hosts)
    return max(len(table.hosts), math.ceil(nranks / per_host))


@dataclass(frozen=True)
class Shape:
    """What decides a table's communicator (scope and group): kept per table when its rows are gone."""

    nranks: int | None
    hosts: tuple[str, ...]
    hosts_complete: bool
    nnodes: int | None

    @classmethod
    def of(cls, table: Table) -> Shape:
        return cls(table.nranks.value, table.hosts, table.hosts_complete, table_nnodes(table))


def communicator(table: Table | Shape, world: Table | Shape) -> tuple[str, str]:
    """(scope, group) of a table's communicator, relative to the log's world."""
    table = table if isinstance(table, Shape) else Shape.of(table)
    world = world if isinstance(world, Shape) else Shape.of(world)
    if table.nranks == world.nranks and (not table.hosts or not world.hosts or set(table.hosts) == set(world.hosts)):
        return "world", "world"
    if len(table.hosts) == 1 and table.nnodes == 1:
        return "node", table.hosts[0]
    if table.hosts and table.hosts_complete:
        return "world", "-".join(table.hosts)
    return "world", f"n{table.nranks}" if table.nranks is not None else "nranks-unknown"


def table_rows(table: Table, index: int, scope: str = "", group: str = "") -> Iterator[Row]:
    """results.csv rows (RESULT_COLUMNS + EXTRA_COLUMNS) of one table, one per row half, in log order.

    Every number is checked once more here: nothing that is not finite and non-negative reaches results.csv.
    """
    nnodes = table_nnodes(table)
    header = table.printed.header
    iters = header.iters if header else None
    for row in table.printed.rows:
        for m in row.measurements:
            busbw = m.busbw_GBps.value
            out: Row = {
                "collective": table.collective.value,
                "scope": scope,
                "group": group,
                "nranks": table.nranks.value,
                "nnodes": nnodes,
                "bytes": row.bytes,
                "count": row.count,
                "dtype": row.dtype,
                "placement": m.placement,
                "iters": iters,
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
            for key in _NUMERIC:
                value = out[key]
                if isinstance(value, (int, float)) and not 0 <= value < math.inf:  # NaN fails both comparisons
                    finite(float(value), Where("log", key, row.line))  # raises, naming the line
            yield out


def result_rows(log: NcclTestsLog) -> list[Row]:
    """results.csv rows of a whole parsed log (scope and group filled in), in log order."""
    world = Shape.of(world_table(log))
    rows: list[Row] = []
    for index, table in enumerate(log.tables, start=1):
        scope, group = communicator(table, world)
        rows.extend(table_rows(table, index, scope, group))
    return rows


class TableSummary(TypedDict):
    """One table of the log as run.json's ``source.tables`` lists it."""

    collective: str
    collective_source: str
    nranks: int | None
    nranks_source: str
    rows: int
    first_line: int
    complete: bool
    out_of_bounds: int | None
    avg_busbw_GBps: float | None
    hosts: list[str]
    gpus: list[str]
    notes: list[str]


@dataclass
class LogSummary:
    """What run.json needs from a log, gathered table by table; no row is kept."""

    source: str = ""
    format: str = "text"
    shapes: list[Shape] = field(default_factory=list)
    summaries: list[TableSummary] = field(default_factory=list)
    world: Table | None = None
    """The first table with the most ranks, without its rows."""
    world_dtype: str | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    wrong: bool = False
    truncated: bool = False
    failures: list[str] = field(default_factory=list)
    firsts: dict[str, str] = field(default_factory=dict)
    """The first table's value of each of nccl_version, cuda_version, nccl_tests_version, command."""
    collectives: dict[str, None] = field(default_factory=dict)
    gpus: dict[str, None] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def add(self, table: Table) -> None:
        """Take in one table's facts (its rows are read here and not kept)."""
        self.shapes.append(Shape.of(table))
        self.summaries.append(_table_summary(table))
        printed = table.printed
        if self.world is None or _ranks(table) > _ranks(self.world):
            self.world, self.world_dtype = replace(table, printed=replace(printed, rows=())), printed.rows[0].dtype
        sizes = [r.bytes for r in printed.rows]
        self.min_bytes = min(sizes) if self.min_bytes is None else min(self.min_bytes, *sizes)
        self.max_bytes = max(sizes) if self.max_bytes is None else max(self.max_bytes, *sizes)
        self.wrong |= bool(printed.out_of_bounds) or any(m.wrong for r in printed.rows for m in r.measurements)
        self.truncated |= not printed.complete
        self.failures.extend(printed.failures[: max(0, 100 - len(self.failures))])
        for key in ("nccl_version", "cuda_version", "nccl_tests_version", "command"):
            value = getattr(printed.quoted, key)
            if value and key not in self.firsts:
                self.firsts[key] = value
        self.collectives.setdefault(table.collective.value, None)
        for gpu in printed.gpus:
            self.gpus.setdefault(gpu, None)

    def scopes(self) -> list[tuple[str, str]]:
        """(scope, group) of each table, in order, once every table is in."""
        world = max(self.shapes, key=_ranks)
        return [communicator(shape, world) for shape in self.shapes]

    @classmethod
    def of(cls, log: NcclTestsLog) -> LogSummary:
        summary = cls(source=log.source, format=log.format, env=dict(log.env))
        for table in log.tables:
            summary.add(table)
        summary.failures = list(log.failures)
        return summary


def _status(log: LogSummary) -> tuple[str, str, list[str]]:
    """run.json's status, verdict word and reasons for an imported log (docs/design.md, "One verdict")."""
    if log.failures:
        return "failed", "error", [f"the nccl-tests log records a failure: {log.failures[0]}"]
    if log.truncated:
        return "incomplete", "error", ["the nccl-tests log ends in the middle of its sweep"]
    if log.wrong:
        return "complete", "fail", ["the nccl-tests log counts wrong elements (#wrong above 0)"]
    # No targets are checked on import: a clean log was measured, never judged.
    return "complete", "measured", ["imported from an nccl-tests log: no target is checked on import"]


def run_meta(
    log: NcclTestsLog | LogSummary,
    *,
    cluster: str,
    started_utc: str,
    finished_utc: str,
    sha256: str,
) -> dict[str, object]:
    """run.json for an imported log (the shape ``bench.rundir.files``'s readers expect, plus ``source``)."""
    log = log if isinstance(log, LogSummary) else LogSummary.of(log)
    world = log.world
    if world is None:
        raise ValueError("run_meta needs a log with at least one table")
    status, verdict, reasons = _status(log)
    command = log.firsts.get("command")
    guessed = [i for i, t in enumerate(log.summaries, start=1) if t["collective_source"] == "file name"]
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
        "reasons": reasons,
        "hosts": list(world.hosts),
        "nnodes": table_nnodes(world),
        "nranks": world.nranks.value,
        "ranks": _rank_entries(world),
        "launcher": _launcher(command),
        "backend": "nccl",
        "versions": _versions(log),
        "env": recorded_environment(log.env or _exported(command)),
        "sweep": _sweep(log, world.printed.header),
        "counters": {},
        "nccl_evidence": None,
        "gpus": list(log.gpus),
        "source": {
            "path": log.source,
            "sha256": sha256,
            "format": log.format,
            "truncated": log.truncated,
            "failures": list(log.failures),
            "command": command,
            # Tables (1-based) whose collective only the file's name gave: a guess the reader should check.
            "collective_from_file_name": guessed,
            "tables": log.summaries,
        },
    }


def _rank_entries(world: Table) -> list[dict[str, object]]:
    """run.json's ``ranks``: each device's rank, host, local rank (its order on the host) and node rank."""
    per_host: Counter[str] = Counter()
    ranks: list[dict[str, object]] = []
    node_of = {host: i for i, host in enumerate(world.hosts)}
    for device in world.printed.devices:
        ranks.append(
            {
                "rank": device.rank,
                "host": device.host,
                "local_rank": per_host[device.host],
                "node_rank": node_of[device.host],
            }
        )
        per_host[device.host] += 1
    return ranks


def _versions(log: LogSummary) -> dict[str, object]:
    """run.json's ``versions``: what the log says, None for what an imported log cannot know."""
    return {
        "torch": None,
        "nccl": log.firsts.get("nccl_version"),
        "cuda": log.firsts.get("cuda_version"),
        "driver": None,
        "python": None,
        "railbench": __version__,
        "nccl_tests": log.firsts.get("nccl_tests_version"),
    }


def _sweep(log: LogSummary, header: Header | None) -> dict[str, object]:
    """run.json's ``sweep``: the sizes and settings the log's tables ran with."""
    return {
        "collectives": list(log.collectives),
        "min_bytes": log.min_bytes,
        "max_bytes": log.max_bytes,
        "step_factor": header.step_factor if header else None,
        "iters": header.iters if header else None,
        "warmup": header.warmup_iters if header else None,
        "dtype": log.world_dtype,
        "check": bool(header.validation) if header and header.validation is not None else None,
    }


def _table_summary(t: Table) -> TableSummary:
    printed = t.printed
    return {
        "collective": t.collective.value,
        "collective_source": t.collective.source,
        "nranks": t.nranks.value,
        "nranks_source": t.nranks.source,
        "rows": len(printed.rows),
        "first_line": printed.first_line,
        "complete": printed.complete,
        "out_of_bounds": printed.out_of_bounds,
        "avg_busbw_GBps": printed.avg_busbw_GBps,  # read, never used as the headline
        "hosts": list(t.hosts),
        "gpus": list(printed.gpus),
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
