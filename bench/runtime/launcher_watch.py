"""The parent's wait on its launcher, with a deadline on everything the ranks cannot bound themselves.

A rank's hang watchdog times each measured step. It cannot see a rank stopped between steps, during
start-up or after rank 0 recorded the run, and the launcher waits for every rank it started, however long.
So the parent never waits on the launcher alone; every ``POLL_S`` it looks at the ranks in the launcher's
session (``bench.runtime.session``):

* a rank **stopped** (SIGSTOP, a debugger, a frozen VM) for ``--timeout`` plus a grace is a hang: the parent
  ends the session and names the rank, host and phase;
* once rank 0 has **recorded the end** of the run and one rank has exited, the others must follow within
  ``LINGER_S``, or they are named and ended;
* the **launcher itself stopped** (SIGSTOP of mpirun or prterun) for as long as a stopped rank may be, or
  alive for ``LINGER_S`` after every rank it started has exited: it will never reap them, so the parent wakes
  it (SIGCONT), asks it to end (SIGTERM), kills what is left, and says so;
* when the **launcher exits** (or is killed), every process it left behind is killed: no rank outlives
  railbench to append rows to a run that is over.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.runtime import session
from bench.runtime.deadlines import LINGER_S, POLL_S, TERM_WAIT_S, stopped_deadline_s

START_UP = "start-up"
RUNNING = "the run"
RECORDED = "after the run was recorded"


@dataclass(frozen=True)
class Watch:
    """What the parent bounds its wait by."""

    timeout_s: float
    """The run's ``--timeout`` (the ranks' own deadline per step)."""
    command: str
    """The command the ranks run (run, rails, accept): its run.json is final only once it says so."""
    run_dir: Path | None = None
    """Where rank 0 writes run.json (None: the parent does not know, e.g. another node's run)."""

    def phase(self) -> str:
        """Where the run is, from run.json: :data:`START_UP` (none yet), :data:`RUNNING`, or :data:`RECORDED`
        once this command has recorded its end (accept's world sweep records its own end mid-way)."""
        if self.run_dir is None:
            return RUNNING
        path = self.run_dir / "run.json"
        try:
            stat = path.stat()
        except OSError:
            return START_UP
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _phases:  # run.json is read again only when it changed, not every poll
            _phases.clear()
            _phases[key] = self._read_phase(path)
        return _phases[key]

    def _read_phase(self, path: Path) -> str:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            status, command = doc.get("status"), doc.get("command")
        except (OSError, ValueError, AttributeError, RecursionError):
            return START_UP
        return RECORDED if status != "running" and command == self.command else RUNNING


_phases: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class Ended:
    """How the launcher's run ended, as the parent saw it."""

    rc: int
    """The launcher's exit status (negative: killed by that signal)."""
    phase: str = RUNNING
    """Where the run was when the parent acted (or the launcher exited)."""
    command: str = ""
    hang: str | None = None
    """The hang the parent ended, or a rank it saw stopped when the ranks ended: one line."""
    hung_ranks: tuple[int, ...] = ()
    host: str = ""
    orphans: tuple[int, ...] = ()
    """Ranks still running after the launcher had exited, which the parent killed."""
    launcher_hung: bool = False
    """``hang`` is the launcher's own (stopped, or never exiting after its ranks): a launcher fault, not a
    rank's."""

    @property
    def launcher_signal(self) -> int | None:
        return -self.rc if self.rc < 0 else None


@dataclass
class _Seen:
    stopped_since: dict[int, float] = field(default_factory=dict)
    """pid -> when it was first seen stopped (cleared when it runs again)."""
    rank_of: dict[int, int] = field(default_factory=dict)
    most_ranks: int = 0
    linger_from: float | None = None
    launcher_stopped_since: float | None = None
    """When the launcher (or one of its helpers) was first seen stopped."""
    ranks_gone_since: float | None = None
    """When every rank the launcher started was first seen exited while the launcher was still there."""

    def track(self, alive: list[session.Member], now: float) -> None:
        """Learn each live rank's number, the most ranks seen at once, and since when each one is stopped."""
        for m in alive:
            assert m.rank is not None
            self.rank_of[m.pid] = m.rank
        self.most_ranks = max(self.most_ranks, len(alive))
        for pid in list(self.stopped_since):
            if not any(m.pid == pid and m.stopped for m in alive):
                del self.stopped_since[pid]
        for m in alive:
            if m.stopped:
                self.stopped_since.setdefault(m.pid, now)


def _ranks_text(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in sorted(ranks))


def wait(proc: subprocess.Popen[str], watch: Watch) -> Ended:
    """Wait for the launcher under the deadlines above; the session is empty when this returns."""
    host = socket.gethostname()
    deadline = stopped_deadline_s(watch.timeout_s)
    seen = _Seen()
    while True:
        try:
            rc = proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        else:
            return _launcher_exited(proc.pid, rc, seen, host, watch)
        now = time.monotonic()
        phase = watch.phase()
        alive = [m for m in session.ranks(proc.pid) if not m.gone]
        seen.track(alive, now)
        overdue = [seen.rank_of[pid] for pid, since in seen.stopped_since.items() if now - since >= deadline]
        if overdue:
            message = (
                f"{phase}: rank(s) {_ranks_text(overdue)} on {host} stopped responding (the "
                f"process was stopped for {deadline:.0f} s: SIGSTOP, a debugger or a frozen node); railbench "
                "ended the run"
            )
            return _ended_by_parent(proc, phase, watch.command, message, overdue, host)
        launcher_hang = _launcher_hang(proc.pid, seen, bool(alive), now, deadline, host)
        if launcher_hang is not None:
            return _launcher_ended(proc, phase, watch.command, launcher_hang, host)
        some_exited = seen.most_ranks and len(alive) < seen.most_ranks
        if some_exited and seen.linger_from is None and phase == RECORDED:
            seen.linger_from = now
        if seen.linger_from is not None and now - seen.linger_from >= LINGER_S and alive:
            left = [m.rank for m in alive if m.rank is not None]
            states = ", ".join(sorted({m.state for m in alive}))
            message = (
                f"after the run was recorded: rank(s) {_ranks_text(left)} on {host} did not exit within "
                f"{LINGER_S:.0f} s of the others (process state {states}); railbench ended them"
            )
            return _ended_by_parent(proc, phase, watch.command, message, left, host)


def _launcher_hang(leader: int, seen: _Seen, ranks_alive: bool, now: float, deadline: float, host: str) -> str | None:
    """One line when the launcher is past its deadline: stopped for ``deadline`` seconds, or still there
    ``LINGER_S`` after every rank it started exited (its ranks wait to be reaped by a launcher that never
    will); None while it is within them."""
    launcher = [m for m in session.launcher_processes(leader) if not m.gone]
    stopped = [m for m in launcher if m.stopped]
    if not stopped:
        seen.launcher_stopped_since = None
    elif seen.launcher_stopped_since is None:
        seen.launcher_stopped_since = now
    if seen.most_ranks and not ranks_alive:
        seen.ranks_gone_since = seen.ranks_gone_since or now
    else:
        seen.ranks_gone_since = None
    names = ", ".join(f"{m.name} (pid {m.pid})" for m in (stopped or launcher))
    if seen.launcher_stopped_since is not None and now - seen.launcher_stopped_since >= deadline:
        return (
            f"the launcher {names} on {host} was stopped for {deadline:.0f} s (SIGSTOP, a debugger or a frozen "
            "node) and could not end its ranks; railbench ended it"
        )
    if seen.ranks_gone_since is not None and now - seen.ranks_gone_since >= LINGER_S:
        return (
            f"the launcher {names} on {host} did not exit within {LINGER_S:.0f} s of its last rank; railbench ended it"
        )
    return None


def _launcher_ended(proc: subprocess.Popen[str], phase: str, command: str, message: str, host: str) -> Ended:
    """End a launcher that hung: wake it (a stopped process keeps a SIGTERM pending), ask it to end so that it
    can remove its own files, then kill whatever of its session is left."""
    for member in session.launcher_processes(proc.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member.pid, signal.SIGCONT)
            os.kill(member.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=TERM_WAIT_S)
    session.kill_all(proc.pid)
    rc = proc.wait()
    return Ended(rc, phase, command, message, (), host, launcher_hung=True)


def _ended_by_parent(
    proc: subprocess.Popen[str], phase: str, command: str, message: str, ranks: list[int], host: str
) -> Ended:
    session.kill_all(proc.pid)
    rc = proc.wait()
    return Ended(rc, phase, command, message, tuple(sorted(ranks)), host)


def _launcher_exited(leader: int, rc: int, seen: _Seen, host: str, watch: Watch) -> Ended:
    orphans = session.kill_all(leader)
    phase = watch.phase()
    stopped = sorted(seen.rank_of[pid] for pid in seen.stopped_since)
    hang = None
    if stopped:
        # The ranks ended while this one was stopped: it is why (a peer's transport gave up on it first).
        held = time.monotonic() - min(seen.stopped_since.values())
        hang = (
            f"{phase}: rank(s) {_ranks_text(stopped)} on {host} stopped responding (the process "
            f"had been stopped for {held:.0f} s when the ranks ended)"
        )
    left = tuple(sorted(m.rank for m in orphans if m.rank is not None))
    return Ended(rc, phase, watch.command, hang, tuple(stopped), host, left)
