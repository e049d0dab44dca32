"""The processes a railbench parent started, found by their session in ``/proc``.

The parent starts its launcher (mpirun, torch's elastic launcher) as the leader of a new session. Open MPI
puts every rank in a process group of its own, so a signal to the launcher's process group reaches the
launcher alone, and a launcher killed with SIGKILL leaves its ranks running. Every process the launcher
started keeps the session id though, orphaned or not: the session is the one handle on all of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.bounded import ascii_digits

PROC = Path("/proc")
RANK_VARS = (b"OMPI_COMM_WORLD_RANK=", b"PMIX_RANK=", b"RANK=")
"""How a launcher tells a rank its number: Open MPI, PMIx (prterun, srun), torch's elastic launcher."""


@dataclass(frozen=True)
class Member:
    """One process of the session."""

    pid: int
    state: str
    """The kernel's state letter (``/proc/PID/stat``): R, S, D, T (stopped), t (traced), Z (zombie), ..."""
    rank: int | None
    """The rank number its launcher gave it; None for the launcher and its helpers."""
    name: str = ""
    """The kernel's name for it (``comm``: prterun, mpirun, python)."""

    @property
    def stopped(self) -> bool:
        return self.state in ("T", "t")

    @property
    def gone(self) -> bool:
        """Exited and waiting to be reaped (or being torn down): it runs no more code."""
        return self.state in ("Z", "X", "x")


def _stat(pid_dir: Path) -> tuple[str, int, str] | None:
    """(state, session, name) of one process; None when it is gone or unreadable."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses, so split after the last ")".
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[3]), text[text.find("(") + 1 : text.rfind(")")]
    except (IndexError, ValueError):
        return None


def _rank(pid_dir: Path) -> int | None:
    try:
        environ = (pid_dir / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for prefix in RANK_VARS:
        for var in environ:
            if var.startswith(prefix):
                with contextlib.suppress(ValueError):
                    return int(var[len(prefix) :])
    return None


def members(session: int, proc: Path = PROC) -> list[Member]:
    """Every process of ``session`` but its leader, with its state and rank."""
    found = []
    for entry in proc.iterdir():
        if not ascii_digits(entry.name) or int(entry.name) == session:
            continue
        stat = _stat(entry)
        if stat is None or stat[1] != session:
            continue
        found.append(Member(int(entry.name), stat[0], _rank(entry), stat[2]))
    return sorted(found, key=lambda m: (m.rank is None, m.rank or 0, m.pid))


def launcher_processes(session: int, proc: Path = PROC) -> list[Member]:
    """The launcher (the session's leader) and its helpers (prterun under Open MPI's mpirun wrapper): every
    process of the session that is not a rank."""
    leader = _stat(proc / str(session))
    found = [Member(session, leader[0], None, leader[2])] if leader is not None and leader[1] == session else []
    return found + [m for m in members(session, proc) if m.rank is None]


def ranks(session: int, proc: Path = PROC) -> list[Member]:
    """The session's rank processes (those a launcher numbered)."""
    return [m for m in members(session, proc) if m.rank is not None]


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def kill_all(session: int, wait_s: float = 5.0, proc: Path = PROC) -> list[Member]:
    """SIGKILL every process left in ``session`` (the leader included, if it is still there) and wait until
    they are gone; returns the ranks that were still running code."""
    left = [m for m in members(session, proc) if not m.gone]
    running_ranks = [m for m in left if m.rank is not None]
    _signal([session, *(m.pid for m in left)], signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(not m.gone for m in members(session, proc)):
        time.sleep(0.05)
    return running_ranks
