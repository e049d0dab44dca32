"""The nightly history: a SQLite file (``reports/history.sqlite`` unless ``--history PATH``).

Tables: ``runs`` (one row per run: time, cluster, profile, node-set hash, nnodes, nranks, torch/NCCL/CUDA/
driver versions, status, verdict) and ``metrics`` (one row per key metric of a run, see
``bench.history.records``).

Schema history (``PRAGMA user_version``; each step is a named migration, applied in order, each in its own
transaction, and recorded in ``schema_migrations``):

* 1 ``runs_and_metrics`` — the two tables.
* 2 ``comparable_runs_index`` — an index on (cluster, node_hash, nranks, time_utc), which ``compare`` walks.
* 3 ``run_kind_and_environment`` — ``runs.kind`` (the command and the shape of its sweep: what makes runs
  comparable) and ``runs.environment`` (JSON: versions, node set, NCCL_* variables, named when they change),
  and an index on (cluster, nranks, kind, time_utc). Rows added before it have NULL there and are matched by
  their command alone.

Order: runs are ordered by start time, ties by the order they were added (``id``), so a backlog of logs
imported within one second still lines up one after another.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction and the file is in WAL mode, so two nightly
jobs adding runs at once both land (the second waits for the first), readers never block writers, and a job
killed mid-write leaves the last committed state. WAL needs shared memory between the processes, which a
network filesystem (NFS, Lustre, ...) cannot give; there the store uses a rollback journal instead.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.errors import InfraError, UserError
from bench.history.records import MetricRecord, RunRecord, read_run

BUSY_TIMEOUT_S = 120.0
"""How long a writer waits for another one (a big run's metrics take well under a second to write)."""

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "9p")


def default_history_path() -> Path:
    """``reports/history.sqlite`` (relative to the working directory, like ``reports/runs``)."""
    return Path("reports") / "history.sqlite"


@dataclass(frozen=True)
class Migration:
    """One named step of the schema history."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _runs_and_metrics(conn: sqlite3.Connection) -> None:
    conn.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            run_key TEXT NOT NULL UNIQUE,
            run_dir TEXT NOT NULL,
            time_utc TEXT NOT NULL,
            cluster TEXT NOT NULL,
            profile TEXT,
            command TEXT NOT NULL,
            status TEXT NOT NULL,
            verdict TEXT,
            hosts TEXT NOT NULL,
            node_hash TEXT NOT NULL,
            nnodes INTEGER NOT NULL,
            nranks INTEGER NOT NULL,
            torch TEXT, nccl TEXT, cuda TEXT, driver TEXT,
            added_utc TEXT NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE metrics (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            collective TEXT NOT NULL,
            scope TEXT NOT NULL,
            grp TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            nranks INTEGER,
            busbw_GBps REAL,
            algbw_GBps REAL,
            time_us REAL,
            wrong INTEGER,
            failed INTEGER NOT NULL,
            samples INTEGER NOT NULL,
            PRIMARY KEY (run_id, collective, scope, grp, bytes)
        ) WITHOUT ROWID"""
    )


def _comparable_runs_index(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX runs_comparable ON runs(cluster, node_hash, nranks, time_utc)")


def _run_kind_and_environment(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE runs ADD COLUMN kind TEXT")
    conn.execute("ALTER TABLE runs ADD COLUMN environment TEXT")
    conn.execute("CREATE INDEX runs_by_kind ON runs(cluster, nranks, kind, time_utc)")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs_and_metrics", _runs_and_metrics),
    Migration(2, "comparable_runs_index", _comparable_runs_index),
    Migration(3, "run_kind_and_environment", _run_kind_and_environment),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def journal_mode_for(path: Path, mounts: str) -> str:
    """``"wal"``, or ``"delete"`` when ``path`` lies on a network filesystem per ``mounts`` (/proc/mounts)."""
    resolved = str(path.resolve())
    best, fstype = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, fields[2]
    network = fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse.")
    return "delete" if network else "wal"


def _mounts() -> str:
    try:
        return Path("/proc/mounts").read_text()
    except OSError:  # not Linux: assume a local disk
        return ""


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; IMMEDIATE takes the write lock up front, so two writers queue, never deadlock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    for migration in MIGRATIONS:
        if conn.execute("PRAGMA user_version").fetchone()[0] >= migration.version:
            continue
        with transaction(conn):
            # Re-read inside the lock: another process may have migrated while we waited.
            if conn.execute("PRAGMA user_version").fetchone()[0] >= migration.version:
                continue
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_utc TEXT NOT NULL)"
            )
            migration.apply(conn)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (migration.version, migration.name, _now()))
            conn.execute(f"PRAGMA user_version = {migration.version}")
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise UserError(
            f"{path} has history schema {found}; this railbench knows up to {SCHEMA_VERSION}: upgrade railbench"
        )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def open_store(path: Path | str, *, create: bool = True) -> sqlite3.Connection:
    """A connection to the history at ``path``, created and migrated as needed. Close it when done."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise UserError(f"no history at {path}: add runs with 'railbench history add RUN_DIR' or pass --history")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see ``transaction``).
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.OperationalError as exc:
        raise UserError(f"cannot open history {path} ({exc}): check the path and its permissions") from None
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA journal_mode = {journal_mode_for(path, _mounts()).upper()}")
        conn.execute("PRAGMA synchronous = FULL")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise InfraError(f"history {path} stayed locked for {BUSY_TIMEOUT_S:.0f} s by another writer") from None
        raise UserError(f"{path} is not a railbench history ({exc}): pass another --history") from None
    except BaseException:
        conn.close()
        raise
    return conn


def write_run(conn: sqlite3.Connection, run: RunRecord, metrics: Sequence[MetricRecord]) -> int:
    """Insert or replace one run and all its metrics in one transaction; returns the run id."""
    with transaction(conn):
        return _write_run_rows(conn, run, metrics)


def _write_run_rows(conn: sqlite3.Connection, run: RunRecord, metrics: Sequence[MetricRecord]) -> int:
    values = (
        run.run_key, run.run_dir, run.time_utc, run.cluster, run.profile, run.command, run.status, run.verdict,
        json.dumps(list(run.hosts)), run.node_hash, run.nnodes, run.nranks, run.torch, run.nccl, run.cuda,
        run.driver, _now(), run.kind or None, json.dumps(dict(run.environment), sort_keys=True),
    )  # fmt: skip
    # Upsert by run_key: adding the same run again keeps its id and replaces its rows (idempotent).
    (run_id,) = conn.execute(
        """INSERT INTO runs (run_key, run_dir, time_utc, cluster, profile, command, status, verdict, hosts,
               node_hash, nnodes, nranks, torch, nccl, cuda, driver, added_utc, kind, environment)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(run_key) DO UPDATE SET run_dir = excluded.run_dir, time_utc = excluded.time_utc,
               profile = excluded.profile, status = excluded.status, verdict = excluded.verdict,
               hosts = excluded.hosts, nnodes = excluded.nnodes, nranks = excluded.nranks,
               torch = excluded.torch, nccl = excluded.nccl, cuda = excluded.cuda, driver = excluded.driver,
               kind = excluded.kind, environment = excluded.environment
           RETURNING id""",
        values,
    ).fetchone()
    conn.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
    conn.executemany(
        "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id,
                m.collective,
                m.scope,
                m.group,
                m.bytes,
                m.nranks,
                m.busbw_GBps,
                m.algbw_GBps,
                m.time_us,
                m.wrong,
                int(m.failed),
                m.samples,
            )
            for m in metrics
        ],
    )
    return int(run_id)


def write_runs(conn: sqlite3.Connection, runs: Sequence[tuple[RunRecord, Sequence[MetricRecord]]]) -> list[int]:
    """Many runs in one transaction (bulk loading, e.g. a benchmark history)."""
    with transaction(conn):
        return [_write_run_rows(conn, run, metrics) for run, metrics in runs]


def add_run(history_path: Path | str, run_dir: Path | str) -> int:
    """Add (or refresh) the run in ``run_dir`` to the history at ``history_path``; returns its run id.

    Idempotent: adding the same run twice keeps one row. ``run``, ``rails`` and ``accept`` call this at
    their end unless ``--no-history``.
    """
    run, metrics = read_run(run_dir)
    with closing(open_store(history_path)) as conn:
        return write_run(conn, run, metrics)


@dataclass(frozen=True)
class StoredRun:
    """A run as the history lists it."""

    id: int
    run_key: str
    run_dir: str
    time_utc: str
    cluster: str
    profile: str | None
    command: str
    status: str
    verdict: str | None
    node_hash: str
    nnodes: int
    nranks: int
    nccl: str | None
    metrics: int
    kind: str | None = None
    environment: str | None = None
    """JSON (``bench.history.runfacts.run_environment``); None for runs added before schema 3."""
    hosts: str = "[]"

    @property
    def host_names(self) -> tuple[str, ...]:
        names = json.loads(self.hosts or "[]")
        return tuple(str(h) for h in names) if isinstance(names, list) else ()

    @property
    def environment_facts(self) -> dict[str, object]:
        """The stored environment; runs added before schema 3 know their NCCL version and hosts only."""
        try:
            facts = json.loads(self.environment or "{}")
        except json.JSONDecodeError:
            facts = {}
        if not isinstance(facts, dict):
            facts = {}
        facts.setdefault("nccl", self.nccl)
        facts.setdefault("hosts", list(self.host_names))
        return facts


_RUN_COLUMNS = (
    "id, run_key, run_dir, time_utc, cluster, profile, command, status, verdict, node_hash, nnodes, nranks, nccl"
)
_MORE_COLUMNS = "kind, environment, hosts"


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
    return [StoredRun(*row) for row in conn.execute(sql, params)]


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
    return [StoredRun(*row) for row in rows]


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
