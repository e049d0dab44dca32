"""What a refusal of the history means to the user, in one line (``docs/nightly.md``, "History").

SQLite says a full disk and a read-only file system in words that read like damage or a foreign file: ENOSPC
comes back as SQLITE_FULL ("database or disk is full") from a write, but as SQLITE_IOERR ("disk I/O error")
when the shared-memory index (``-shm``) cannot grow, and a read-only mount as SQLITE_CANTOPEN ("unable to open
database file") or SQLITE_READONLY. So the error code is read together with the file system under the store
(``statvfs``): an intact history on a full disk is never called damaged, nor one on a read-only mount foreign.

Exit statuses (README, "Exit status"): a full disk is an infrastructure fault (3), as it is for a run
directory; a read-only file system is the store the user named (2: pass another ``--history``), as a
read-only store is; damage and a foreign file are bad input (2); a lock held past the wait is 3.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from bench.exits import InfraError, UserError

BUSY_TIMEOUT_S = 120.0
"""How long a writer waits for another one (a big run's metrics take well under a second to write)."""

T = TypeVar("T")

# The primary result codes (the low byte of an extended code), https://www.sqlite.org/rescode.html
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14

_DAMAGED = ("malformed", "corrupt", "disk I/O", "integrity_check")

FileSystemState = Literal["read-only", "full", ""]


def file_system_state(path: Path) -> FileSystemState:
    """``"read-only"`` when the file system holding ``path`` (or its nearest folder that exists) is mounted
    read-only, ``"full"`` when it has no block left for an unprivileged write, else ``""``."""
    where = path
    while not where.exists() and where.parent != where:
        where = where.parent
    try:
        fs = os.statvfs(where)
    except OSError:
        return ""
    if fs.f_flag & os.ST_RDONLY:
        return "read-only"
    return "full" if fs.f_bavail == 0 else ""


def primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``exc`` (Python 3.11+ carries it), None when it is not known."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_busy(exc: sqlite3.Error) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def busy_retried(attempt: Callable[[], T]) -> T:
    """``attempt()``, tried again while SQLite answers "locked" within ``BUSY_TIMEOUT_S`` of the first try.

    The busy handler (``timeout=`` of ``connect``) covers the common wait, but SQLite answers some lock
    conflicts at once, without it: two processes creating the same history (journal mode change, first
    migration) and a reader meeting another connection's WAL recovery. Each attempt is one transaction, or
    idempotent set-up, so trying again repeats nothing. The waits between attempts are Python's, where a signal
    is handled at once (``bench.history.schema.transaction`` takes the write lock in short slices of SQLite's).
    """
    began = time.monotonic()
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            waited = time.monotonic() - began
            if not is_busy(exc) or waited >= BUSY_TIMEOUT_S:
                raise
            time.sleep(min(0.05 + 0.01 * waited, 1.0))


def full_disk(path: Path, said: str) -> InfraError:
    return InfraError(
        f"history {path} cannot be used: no space left on its file system (ENOSPC: {said}), which is not damage "
        "to the history: free space there, or pass another --history"
    )


def read_only_file_system(path: Path, said: str) -> UserError:
    return UserError(
        f"history {path} is on a read-only file system (EROFS: {said}): it can be listed and compared against; "
        "to add runs, remount it read-write or pass another --history"
    )


def store_error(path: Path, exc: sqlite3.Error) -> Exception:
    """What a SQLite error on the history at ``path`` means to the user: one line (module docstring)."""
    # SQLite quotes schema text in some errors (a damaged table's CREATE statement spans lines): one line, bounded.
    text = " ".join(str(exc).split())[:300]
    code, state = primary_code(exc), file_system_state(path)
    if is_busy(exc):
        return InfraError(f"history {path} stayed locked for {BUSY_TIMEOUT_S:.0f} s by another writer")
    if code == SQLITE_FULL or (state == "full" and code in (None, SQLITE_IOERR, SQLITE_CANTOPEN)):
        return full_disk(path, text)
    if state == "read-only" and code in (None, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_IOERR):
        return read_only_file_system(path, text)
    if code == SQLITE_READONLY or "readonly" in text or "read-only" in text:
        return UserError(f"history {path} is read-only ({text}): fix its permissions, or pass another --history")
    if "not a database" in text:
        return UserError(f"{path} is not a railbench history ({text}): pass another --history")
    if isinstance(exc, sqlite3.DatabaseError) and any(word in text for word in _DAMAGED):
        return UserError(
            f"history {path} is damaged ({text}): restore it from a backup, or rebuild it with "
            f"'sqlite3 {path} .recover', or pass another --history"
        )
    return UserError(f"{path} is not a railbench history ({text}): pass another --history")


def not_writable(path: Path, where: Path) -> UserError:
    """A history a write was asked of that cannot be written (``where``: the file or its folder)."""
    if file_system_state(where) == "read-only":
        return read_only_file_system(path, f"{where} is on a read-only mount")
    return UserError(
        f"history {path} is read-only ({where} is not writable): fix its permissions, or pass another --history"
    )
