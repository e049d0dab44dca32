"""Reading the nightly history: the runs it lists, the runs comparable with tonight's, their metrics.

Pure queries over a connection from ``bench.history.store.open_store`` (or ``opened``, which also turns a
SQLite error met here into one line). ``bench.history.store`` re-exports every name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from bench import jsondoc
from bench.history.records import MetricRecord, RunIdentity


@dataclass(frozen=True)
class StoredRun(RunIdentity):
    """A run as the history lists it: the identity, its place in the history and its metric count, and the
    environment and hosts as they are stored (JSON)."""

    id: int = 0
    metrics: int = 0
    kind: str | None = None
    environment: str | None = None
    """JSON (``bench.history.runfacts.run_environment``); None for runs added before schema 3."""
    hosts: str = "[]"

    @property
    def host_names(self) -> tuple[str, ...]:
        names = _stored_json(self.hosts or "[]", self.id, "hosts")
        return tuple(str(h) for h in names) if isinstance(names, list) else ()

    @property
    def environment_facts(self) -> dict[str, object]:
        """The stored environment; runs added before schema 3 know their NCCL version and hosts only."""
        facts = _stored_json(self.environment or "{}", self.id, "environment")
        if not isinstance(facts, dict):
            facts = {}
        facts.setdefault("nccl", self.nccl)
        facts.setdefault("hosts", list(self.host_names))
        return facts


def _stored_json(text: str, run_id: int, column: str) -> object:
    """A JSON column of the store, read with ``bench.jsondoc``'s limits: ``integrity_check`` sees the pages,
    not what a value holds, so a damaged value is one line (UserError), never a RecursionError."""
    return jsondoc.loads(text, f"history run {run_id} {column}", "the history is damaged: restore it or rebuild it")


_RUN_COLUMNS = (
    "id, run_key, run_dir, time_utc, cluster, profile, command, status, verdict, node_hash, nnodes, nranks, nccl"
)
_MORE_COLUMNS = "kind, environment, hosts"
_NAMES = (*_RUN_COLUMNS.split(", "), "metrics", *_MORE_COLUMNS.split(", "))

"""A listing's columns by name: ``SELECT {_RUN_COLUMNS}, <metric count>, {_MORE_COLUMNS}``."""


def list_runs(conn: sqlite3.Connection, *, cluster: str | None = None, limit: int | None = None) -> list[StoredRun]:
    """Runs, newest first, with their metric counts."""
    where, params = ("WHERE cluster = ?", [cluster]) if cluster else ("", [])
    sql = (
        f"SELECT {_RUN_COLUMNS}, (SELECT COUNT(*) FROM metrics WHERE run_id = runs.id), {_MORE_COLUMNS} "
        f"FROM runs {where} "
        "ORDER BY time_utc DESC, id DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [StoredRun(**dict(zip(_NAMES, row, strict=True))) for row in conn.execute(sql, params)]


def run_id_of(conn: sqlite3.Connection, run_key: str) -> int | None:
    """The id of a stored run (its place in the import order), None when it is not in the history."""
    row = conn.execute("SELECT id FROM runs WHERE run_key = ?", (run_key,)).fetchone()
    return None if row is None else int(row[0])


def comparable_runs(
    conn: sqlite3.Connection,
    *,
    cluster: str,
    nranks: int,
    nnodes: int,
    kind: str,
    command: str,
    before_utc: str,
    before_id: int | None = None,
    node_hash: str | None = None,
    exclude_key: str = "",
) -> list[StoredRun]:
    """Runs of the same kind on the same cluster, nnodes and nranks, before tonight, newest first.

    "Before" is an earlier start time, or the same start time and an earlier place in the history (``id``);
    a run not in the history yet (``before_id`` None) comes after every run with its start time. The node
    set matters only when ``node_hash`` is given. Runs added before schema 3 (no kind) match by command.
    Runs whose status is ``failed`` are left out: they measured nothing trustworthy.
    """
    sql = (
        f"SELECT {_RUN_COLUMNS}, 0, {_MORE_COLUMNS} FROM runs WHERE cluster = ? AND nranks = ? AND nnodes = ? "
        "AND (kind = ? OR (kind IS NULL AND command = ?)) "
        "AND (time_utc < ? OR (time_utc = ? AND (? IS NULL OR id < ?))) "
        "AND run_key != ? AND status != 'failed'"
    )
    params: list[object] = [cluster, nranks, nnodes, kind, command, before_utc, before_utc, before_id, before_id]
    params.append(exclude_key)
    if node_hash is not None:
        sql += " AND node_hash = ?"
        params.append(node_hash)
    rows = conn.execute(sql + " ORDER BY time_utc DESC, id DESC", params)
    return [StoredRun(**dict(zip(_NAMES, row, strict=True))) for row in rows]


def other_shapes(
    conn: sqlite3.Connection, *, cluster: str, kind: str, command: str, nranks: int, nnodes: int
) -> list[str]:
    """The rank and node counts of this cluster's runs of the same kind that are not tonight's
    (``"16 ranks on 2 nodes (3 runs)"``): why no run is comparable, when none is."""
    rows = conn.execute(
        "SELECT nranks, nnodes, COUNT(*) FROM runs WHERE cluster = ? AND (kind = ? OR (kind IS NULL AND command = ?)) "
        "AND NOT (nranks = ? AND nnodes = ?) AND status != 'failed' GROUP BY nranks, nnodes ORDER BY COUNT(*) DESC",
        (cluster, kind, command, nranks, nnodes),
    )
    return [f"{r} ranks on {n} node(s) ({c} run(s))" for r, n, c in rows]


def metrics_of(conn: sqlite3.Connection, run_ids: Sequence[int]) -> dict[int, list[MetricRecord]]:
    """The metrics of the given runs, by run id."""
    out: dict[int, list[MetricRecord]] = {run_id: [] for run_id in run_ids}
    for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = list(run_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT run_id, collective, scope, grp, bytes, nranks, busbw_GBps, algbw_GBps, time_us, wrong, failed, "
            f"samples FROM metrics WHERE run_id IN ({marks})",
            chunk,
        ):
            collective, scope, group, size, nranks, busbw, algbw, time_us, wrong = row[1:10]
            out[row[0]].append(
                MetricRecord(
                    collective,
                    scope,
                    group,
                    size,
                    nranks,
                    busbw,
                    algbw,
                    time_us,
                    wrong,
                    failed=bool(row[10]),
                    samples=row[11],
                )
            )
    return out
