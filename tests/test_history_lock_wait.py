"""A writer that waits for the history's write lock answers a signal at once (``bench.history.schema``).

SQLite's busy handler sleeps in C, where Python's signal handlers wait for it to return: with the whole
``BUSY_TIMEOUT_S`` given to it, a rank 0 that met scancel's SIGTERM while another writer held the history answered
two minutes later, long after Slurm's KillWait (30 s) had sent SIGKILL. The wait is now SQLite's in short slices
and Python's between them. The signal here is a real one (SIGALRM from an interval timer), the lock a real
writer's, on a real store.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from types import FrameType

import pytest

from bench.history.faults import BUSY_TIMEOUT_S
from bench.history.schema import transaction
from bench.history.store import open_store
from tests.support import history_locked


class Stopped(Exception):
    """What the test's signal handler raises, as railbench's own handlers end a rank."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def test_a_signal_ends_the_wait_for_another_writers_lock(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    before = signal.signal(signal.SIGALRM, _stop)
    try:
        with history_locked(history), closing(open_store(history, write=True)) as conn:
            began = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(Stopped), transaction(conn):
                pytest.fail("the write lock was taken while another writer held it")
            waited = time.monotonic() - began
            # The connection's other waits (a commit, a read) keep the whole timeout.
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == int(BUSY_TIMEOUT_S * 1000)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
    assert waited < 30, waited  # within Slurm's KillWait; it was BUSY_TIMEOUT_S (120 s)


def test_the_wait_still_ends_with_the_lock_once_the_other_writer_leaves(tmp_path: Path) -> None:
    history = tmp_path / "h.sqlite"
    open_store(history, write=True).close()
    other = sqlite3.connect(history, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    def leave(signum: int, frame: FrameType | None) -> None:
        other.execute("ROLLBACK")

    before = signal.signal(signal.SIGALRM, leave)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)  # the other writer leaves while this one waits
        with closing(open_store(history, write=True)) as conn, transaction(conn):
            conn.execute("CREATE TABLE waited (x)")
        with closing(open_store(history)) as conn:
            assert conn.execute("SELECT count(*) FROM waited").fetchone() == (0,)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
        other.close()
