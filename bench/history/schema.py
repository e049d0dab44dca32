"""The history's tables: the schema, its migrations, and the write transaction both they and the store's writers
take.

Schema history (``PRAGMA user_version``; each step is a named migration, applied in order, each in its own
transaction, and recorded in ``schema_migrations``):

* 1 ``runs_and_metrics`` — the two tables.
* 2 ``comparable_runs_index`` — an index on (cluster, node_hash, nranks, time_utc), which ``compare`` walks.
* 3 ``run_kind_and_environment`` — ``runs.kind`` (the command and the shape of its sweep: what makes runs
  comparable) and ``runs.environment`` (JSON: versions, node set, NCCL_* variables, named when they change),
  and an index on (cluster, nranks, kind, time_utc). Rows added before it have NULL there and are matched by
  their command alone.
* 4 ``rail_errors`` — per run, rail and error counter: the count over the rails test, NULL when saturated
  (``bench.history.rail_errors``). Runs added before it have no rows: their error counts are unknown.
* 5 ``phase_times`` — per rails or accept run and phase: the seconds it took and what its plan projected
  (``bench.history.phase_times``), which the next plan learns from. Runs added before it have no rows.
* 6 ``soak`` — per soak, its windows, duration, errors accumulated, flaps and the parts it named
  (``soak_runs``), and the median busbw of each world collective and size over its windows
  (``soak_collectives``) (``bench.history.soak_runs``). Runs that are no soak, and runs added before it, have
  no rows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.exits import UserError
from bench.history import phase_times, rail_errors, soak_runs
from bench.history.faults import BUSY_TIMEOUT_S, busy_retried


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
    Migration(4, "rail_errors", rail_errors.create_table),
    Migration(5, "phase_times", phase_times.create_table),
    Migration(6, "soak", soak_runs.create_tables),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


LOCK_WAIT_SLICE_MS = 200
"""How long SQLite's own busy handler waits for the write lock at a time. It sleeps in C, where a signal waits for
it to return: a rank 0 that got SIGTERM (scancel, then SIGKILL after Slurm's KillWait of 30 s) while another
writer held the history answered only when the lock came free, or after ``BUSY_TIMEOUT_S``. Between slices the
wait is Python's, where the signal is handled at once."""


def _begin_write(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting up to ``BUSY_TIMEOUT_S`` for another writer, in slices a signal can end."""
    conn.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_SLICE_MS}")
    try:
        busy_retried(lambda: conn.execute("BEGIN IMMEDIATE"))
    finally:
        # The commit, and every read, wait as before: in rollback-journal mode (a network filesystem) a commit
        # waits for readers to leave, and a reader for a commit, each well within BUSY_TIMEOUT_S.
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; IMMEDIATE takes the write lock up front, so two writers queue, never deadlock."""
    _begin_write(conn)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations ``conn`` lacks, each in its own transaction; UserError for a newer schema."""
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
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (migration.version, migration.name, now_utc())
            )
            conn.execute(f"PRAGMA user_version = {migration.version}")
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise _newer(path, found)


def check_intact(conn: sqlite3.Connection) -> None:
    """``PRAGMA integrity_check``: a damaged page must never be read as an intact history.

    Not ``quick_check``: it skips the cross-checks of indexes against their tables and of the key order of a
    WITHOUT ROWID table (``metrics``). Of 300 random bit flips of a small history, 25 were seen by
    ``integrity_check`` alone ("row not in PRIMARY KEY order for metrics", "row 5 missing from index
    runs_comparable") and none by ``quick_check`` alone; with it, list, compare and add read and wrote such a
    store as intact. The cost: 1.5 s against 1.1 s for ``quick_check`` on 5,000 runs x 200 metrics (85 MB,
    ``ci/bench_compare.py``) on the shared 2-core CI box at load 13; a year of nightly runs is a tenth of that.
    """
    try:
        rows = conn.execute("PRAGMA integrity_check(1)").fetchall()
    except UnicodeDecodeError:  # the report quotes damaged bytes that are not UTF-8
        raise sqlite3.DatabaseError("integrity_check: damaged text that is not UTF-8") from None
    if rows != [("ok",)]:
        first = " ".join(str(rows[0][0]).split()) if rows else "no answer"
        raise sqlite3.DatabaseError(f"integrity_check: {first[:200]}")


def known_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of the store ``conn`` reads, once it is checked intact (:func:`check_intact`) and
    known to be railbench's: its ``schema_migrations`` names our migrations, or it is empty (0: a new
    history, as ``touch`` or another process's first open leaves it). UserError for a newer schema or a
    file that is not a railbench history; nothing is written."""
    check_intact(conn)
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    tables = {str(name) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables and version == 0:
        return 0
    ours = {m.version: m.name for m in MIGRATIONS}
    applied = (
        dict(conn.execute("SELECT version, name FROM schema_migrations").fetchall())
        if "schema_migrations" in tables
        else {}
    )
    if version >= 1 and applied and all(ours.get(v) == name for v, name in applied.items()):
        return version
    # The file's own table names are not repeated: they are outside text (and say nothing the user needs).
    raise UserError(
        f"{path} is not a railbench history (a SQLite file with {len(tables)} table(s) and no railbench schema; "
        "left as it was): pass another --history"
    )


def _newer(path: Path, found: int) -> UserError:
    return UserError(
        f"{path} has history schema {found}; this railbench knows up to {SCHEMA_VERSION}: upgrade railbench"
    )


def now_utc() -> str:
    """Now, ISO 8601 with Z: when a migration was applied or a run added."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
