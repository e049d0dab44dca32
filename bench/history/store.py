"""The nightly history: a SQLite file (``reports/history.sqlite`` unless ``--history PATH``; see ``history_for``).

Tables: ``runs`` (one row per run: time, cluster, profile, node-set hash, nnodes, nranks, torch/NCCL/CUDA/
driver versions, status, verdict) and ``metrics`` (one row per key metric of a run, see
``bench.history.records``).

Schema and its migrations: ``bench.history.schema``.

Order: runs are ordered by start time, ties by the order they were added (``id``), so a backlog of logs
imported within one second still lines up one after another.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction and the file is in WAL mode, so two nightly
jobs adding runs at once both land (the second waits for the first), readers never block writers, and a job
killed mid-write leaves the last committed state. WAL needs shared memory between the processes, which a
network filesystem (NFS, Lustre, ...) cannot give; there the store uses a rollback journal instead.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.bounded import check_path_names
from bench.exits import UserError
from bench.history import phase_times, rail_errors, soak_runs
from bench.history.faults import BUSY_TIMEOUT_S as BUSY_TIMEOUT_S
from bench.history.faults import (
    SQLITE_CANTOPEN,
    SQLITE_FULL,
    SQLITE_IOERR,
    busy_retried,
    file_system_state,
    not_writable,
    primary_code,
    store_error,
)

# The read side lives in queries.py; these names are part of the store's interface.
from bench.history.queries import StoredRun as StoredRun
from bench.history.queries import comparable_runs as comparable_runs
from bench.history.queries import list_runs as list_runs
from bench.history.queries import metrics_of as metrics_of
from bench.history.queries import other_shapes as other_shapes
from bench.history.queries import run_id_of as run_id_of
from bench.history.records import MetricRecord, RunRecord, read_run, read_run_and_soak
from bench.history.schema import SCHEMA_VERSION, known_version, migrate, now_utc, transaction

T = TypeVar("T")

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "9p")


def default_history_path() -> Path:
    """``reports/history.sqlite`` (relative to the working directory, like ``reports/runs``)."""
    return Path("reports") / "history.sqlite"


def history_for(run_dir: Path | str) -> Path:
    """The history a run directory belongs to when no ``--history`` is given, whatever the working directory.

    A run directory in a ``runs`` folder (``reports/runs/<name>``, where ``run``, ``rails`` and ``accept`` put
    them) belongs to ``history.sqlite`` beside that folder (``reports/history.sqlite``); any other run
    directory to ``default_history_path()``. So ``railbench compare /results/reports/runs/X`` from a cron
    job's working directory reads the history that ``accept`` wrote in ``/results``.
    """
    folder = Path(run_dir).resolve().parent
    return folder.parent / "history.sqlite" if folder.name == "runs" else default_history_path()


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


def _check_path(path: Path, *, create: bool, write: bool) -> None:
    check_path_names(path, "--history")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if not create:
            raise UserError(
                f"no history at {path}: add runs with 'railbench history add RUN_DIR' or pass --history"
            ) from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"history {path} cannot be created ({exc.strerror}): pass another --history") from None
        return
    except OSError as exc:
        raise UserError(f"history {path} cannot be opened ({exc.strerror}): check the path") from None
    if not stat.S_ISREG(mode):  # a FIFO would block SQLite's first read for good
        raise UserError(f"history {path} is not a regular file: pass a .sqlite file as --history")
    if write and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        raise not_writable(path, path if not os.access(path, os.W_OK) else path.parent)


def open_store(path: Path | str, *, create: bool = True, write: bool = False) -> sqlite3.Connection:
    """A connection to the history at ``path``, created and migrated as needed. Close it when done.

    A store that is not a regular file, is read-only while ``write`` is asked for, fails SQLite's
    ``integrity_check`` or is not railbench's is refused with one line (UserError). A file that exists is
    opened read-only first (:func:`_open_known`): nothing is written to it, not even its journal mode, until
    it is known to be a railbench history; a read is answered from that read-only connection.
    """
    path = Path(path)
    _check_path(path, create=create, write=write)
    checked = False
    if path.exists():
        known = _open_known(path)
        if known.version == SCHEMA_VERSION and not write:
            return known.conn
        known.conn.close()
        checked = True
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see ``transaction``).
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise store_error(path, exc) from None

    def set_up() -> None:
        if not checked:  # another process may have made it since: the same checks, on this connection
            known_version(conn, path)
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            conn.execute(f"PRAGMA journal_mode = {journal_mode_for(path, _mounts()).upper()}")
        except sqlite3.OperationalError as exc:
            if write or "readonly" not in str(exc):
                raise
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn, path)

    _set_up_or_close(conn, path, set_up)
    return conn


def _set_up_or_close(conn: sqlite3.Connection, path: Path, set_up: Callable[[], T]) -> T:
    """``set_up()`` on ``conn`` (retried while another process holds the lock); ``conn`` closed when it fails."""
    try:
        return busy_retried(set_up)
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(path, exc) from None
    except BaseException:
        conn.close()
        raise


@dataclass(frozen=True)
class Known:
    """A read-only connection to a store known to be a railbench history, and its schema version (0: empty)."""

    conn: sqlite3.Connection
    version: int


def _open_known(path: Path) -> Known:
    """``path`` opened read-only (``mode=ro``), checked intact and known to be railbench's before anything is
    written to it: a foreign SQLite file given as ``--history`` is refused as it was, never switched to WAL
    nor given railbench's tables."""
    try:
        conn = _read_only(path)
    except sqlite3.Error as exc:
        raise store_error(path, exc) from None
    return Known(conn, _set_up_or_close(conn, path, lambda: known_version(conn, path)))


def _read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path``. A store in WAL mode is read through its shared-memory index
    (``-shm``), which SQLite makes or grows first: on a read-only mount it cannot, and on a full disk it
    cannot. There, when no write-ahead log holds committed pages (``-wal`` absent or empty: the main file is
    the whole history), the store is read as immutable; nothing can write through a read-only mount, and a
    writer on a full disk fails before its first page."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    state = file_system_state(path)
    if not state:
        return conn
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # the first read opens the WAL index, if any
    except sqlite3.OperationalError as exc:
        conn.close()
        stranded = (SQLITE_CANTOPEN,) if state == "read-only" else (SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_FULL)
        if primary_code(exc) not in stranded or not _wal_empty(path):
            raise
        conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    return conn


def _wal_empty(path: Path) -> bool:
    """No write-ahead log beside ``path`` holds a page (absent, or empty)."""
    try:
        return path.with_name(f"{path.name}-wal").stat().st_size == 0
    except FileNotFoundError:
        return True


@contextmanager
def opened(path: Path | str, *, create: bool = True, write: bool = False) -> Iterator[sqlite3.Connection]:
    """``open_store`` for the length of a ``with`` block, closed after it; a SQLite error inside the block
    (damage met while reading, a write to a store that turned read-only) is one line too."""
    path = Path(path)
    with closing(open_store(path, create=create, write=write)) as conn:
        try:
            yield conn
        except sqlite3.Error as exc:
            raise store_error(path, exc) from None
        except UnicodeDecodeError:  # a text value whose bytes were damaged: sqlite3 decodes it as UTF-8
            raise store_error(path, sqlite3.DatabaseError("malformed text that is not UTF-8")) from None


def write_run(conn: sqlite3.Connection, run: RunRecord, metrics: Sequence[MetricRecord]) -> int:
    """Insert or replace one run and all its metrics in one transaction; returns the run id."""
    with transaction(conn):
        return _write_run_rows(conn, run, metrics)


def _write_run_rows(conn: sqlite3.Connection, run: RunRecord, metrics: Sequence[MetricRecord]) -> int:
    values = (
        run.run_key,
        run.run_dir,
        run.time_utc,
        run.doc.cluster,
        run.doc.profile,
        run.doc.command,
        run.doc.status,
        run.doc.verdict,
        json.dumps(list(run.doc.hosts)),
        run.node_hash,
        run.nnodes,
        run.nranks,
        run.doc.version_of("torch"),
        run.nccl,
        run.doc.version_of("cuda"),
        run.doc.version_of("driver"),
        now_utc(),
        run.kind or None,
        json.dumps(dict(run.environment), sort_keys=True),
    )
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
    run, metrics, soak = read_run_and_soak(run_dir)
    errors = rail_errors.read_run_dir(run_dir)
    phases = phase_times.read_run_dir(run_dir)
    with opened(history_path, write=True) as conn:

        def write() -> int:
            with transaction(conn):
                run_id = _write_run_rows(conn, run, metrics)
                rail_errors.write(conn, run_id, errors)
                phase_times.write(conn, run_id, phases)
                soak_runs.write(conn, run_id, soak)
                return run_id

        return busy_retried(write)


def refresh_run(history_path: Path | str, run_dir: Path | str) -> bool:
    """Read a run the history already holds again from its run directory (its verdict changed: compare found
    it regressed); False, and nothing written, when the history does not hold it."""
    path = Path(history_path)
    if not path.is_file():
        return False
    run, _ = read_run(run_dir)
    with opened(path, create=False) as conn:
        held = run_id_of(conn, run.run_key) is not None
    if held:
        add_run(path, run_dir)
    return held
