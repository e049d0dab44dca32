"""Hang detection that names who did not arrive.

Every rank publishes the index of the step it has entered in the rendezvous store, and its watchdog
thread bumps a heartbeat counter there. The thread watches its own step: if the step has not finished
within ``timeout_s`` it reads every rank's published step and heartbeat and reports the ranks (and their
hosts) that never reached the step, and those whose heartbeat stopped (a process that is stopped, dead or
stuck in the kernel stops beating; one blocked inside a collective keeps beating). The thread works while the
main thread is blocked inside a collective because torch releases the GIL there, and the store is served
by a C++ thread on rank 0.

The report goes to ``on_hang`` (rank 0 records it in the run directory); then the process exits with
status 3 through ``os._exit``, since the main thread is stuck in C++ and cannot unwind.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from bench.exits import EXIT_INFRA

RANK0_GRACE_S = 60.0
"""How long past a step's timeout the other ranks keep beating while rank 0 diagnoses and ends the run."""
DIAGNOSE_S = 12.0
"""The most rank 0's diagnosis may take: two heartbeat readings 2 s apart, each bounded by the store's 10 s."""
RANK0_LEAVING_KEY = "railbench/rank0_leaving"
"""Rank 0's exit status, posted on its way out once its output is flushed (``bench.runtime.rank_exit``)."""
LEFT_BEHIND_S = 5.0
"""How long a rank's step must have run before its watchdog asks whether rank 0 has left the run (a peer that
left an exchange with it may hold its connection open while it waits in MPI's finalize)."""
ASK_EVERY_S = 2.0
"""How often it asks then: one request per rank every two seconds, beside the heartbeat's two a second."""

if TYPE_CHECKING:
    from torch.distributed import Store


@dataclass(frozen=True)
class Hang:
    """What the watchdog saw when a step overran."""

    step: int
    label: str
    timeout_s: float
    missing_ranks: tuple[int, ...]
    """Ranks that never entered the step or stopped responding (empty: the collective itself stalled)."""
    missing_hosts: tuple[str, ...]
    unresponsive_ranks: tuple[int, ...] = ()
    """The subset of missing_ranks whose heartbeat stopped."""
    unreachable: bool = False
    """True when the store on rank 0 did not answer, so rank 0 itself is the suspect."""

    def describe(self) -> str:
        if self.unreachable:
            return (
                f"{self.label} did not finish within {self.timeout_s:g} s and rank 0 ({self.missing_hosts[0]}) "
                "does not answer: rank 0 hung or died"
            )
        if self.missing_ranks:
            ranks = ", ".join(str(r) for r in self.missing_ranks)
            hosts = ", ".join(sorted(set(self.missing_hosts)))
            how = "stopped responding" if set(self.missing_ranks) <= set(self.unresponsive_ranks) else "never arrived"
            return f"{self.label} did not finish within {self.timeout_s:g} s: rank(s) {ranks} on {hosts} {how}"
        return (
            f"{self.label} did not finish within {self.timeout_s:g} s although every rank arrived: "
            "the collective itself stalled (fabric or NCCL hang)"
        )


def find_missing(steps: Sequence[int | None], step: int) -> tuple[int, ...]:
    """Ranks whose published step is behind ``step`` (None: never published)."""
    return tuple(r for r, s in enumerate(steps) if s is None or s < step)


@dataclass
class Watchdog:
    """Per-rank step tracker; ``with watchdog.step(label):`` around each collective."""

    store: Store
    rank: int
    hosts: Sequence[str]
    timeout_s: float
    on_hang: Callable[[Hang], None]
    store_address: tuple[str, int] | None = None
    """Where the store listens, for the thread's own connection (None: share ``store``)."""
    poll_s: float = 0.5
    rank0_grace_s: float = RANK0_GRACE_S
    unreachable_hold_s: float = 10.0
    """How long a rank that finds rank 0's store gone waits for the launcher before it speaks."""
    on_tick: Callable[[Store], None] | None = None
    """Called with the thread's own store connection on every tick while rank 0 answers (rank 0's watch for
    ranks whose communicator failed, the other ranks' watch for rank 0's decision: ``bench.frame.postmortem``)."""
    ended: Callable[[], int | None] | None = None
    """The exit status the run already has, if rank 0 decided it before its store went away (a link named): a
    rank that then finds rank 0 gone leaves with that status, not as a hang of rank 0."""
    _step: int = field(default=0, init=False)
    _label: str = field(default="start-up", init=False)
    _started: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _asked: float = field(default=0.0, init=False)
    rank0_gone: bool = field(default=False, init=False)
    """Rank 0's store stopped answering: rank 0 died, and a surviving rank must record the run's end."""

    def start(self) -> None:
        threading.Thread(target=self._watch, name="railbench-watchdog", daemon=True).start()

    def _connect(self) -> Store:
        # The thread talks to the store over its own connection: a store client is not safe to share
        # with the main thread, which may be blocked in the middle of a request when the hang starts.
        import torch.distributed as dist

        if self.store_address is None:
            return self.store
        host, port = self.store_address
        return dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=min(30.0, self.timeout_s)))

    def stop(self) -> None:
        self._stop.set()

    def enter(self, label: str) -> None:
        """Mark the start of the next step."""
        with self._lock:
            self._step += 1
            self._label = label
            self._started = time.monotonic()
        self.store.set(f"railbench/step/{self.rank}", str(self._step))

    def current_label(self) -> str:
        with self._lock:
            return self._label

    def leave(self) -> None:
        with self._lock:
            self._started = None

    def _published_steps(self, store: Store) -> list[int | None]:
        steps: list[int | None] = []
        for r in range(len(self.hosts)):
            key = f"railbench/step/{r}"
            steps.append(int(store.get(key)) if store.check([key]) else None)
        return steps

    def _heartbeats(self, store: Store) -> list[int]:
        return [int(store.add(f"railbench/alive/{r}", 0)) for r in range(len(self.hosts))]

    def _diagnose(self, store: Store, step: int, label: str) -> Hang:
        try:
            store.set_timeout(timedelta(seconds=min(10.0, self.timeout_s)))
            before = self._heartbeats(store)
            time.sleep(4 * self.poll_s)
            after = self._heartbeats(store)
            behind = find_missing(self._published_steps(store), step)
        except RuntimeError:
            return Hang(step, label, self.timeout_s, (0,), (self.hosts[0],), unreachable=True)
        silent = tuple(r for r, (b, a) in enumerate(zip(before, after, strict=True)) if a == b and r != self.rank)
        # A silent rank is the cause; live ranks that are behind are only waiting on it.
        missing = silent or behind
        return Hang(step, label, self.timeout_s, missing, tuple(self.hosts[r] for r in missing), silent)

    def rank0_answers(self) -> bool:
        """Whether rank 0's store still answers, over a fresh connection (the main thread's may be broken)."""
        try:
            store = self._connect() if self.store_address is not None else self.store
            store.set_timeout(timedelta(seconds=min(5.0, self.timeout_s)))
            store.check(["railbench/step/0"])
        except RuntimeError:
            return False
        return True

    def lost(self, error: BaseException) -> str:
        """The one line for a collective that failed because a peer went away (gloo only says "Connection
        reset by peer"): the step, the ranks whose heartbeat stopped and their hosts, and the transport's words.
        Sets ``rank0_gone`` when rank 0 itself no longer answers."""
        text = str(error).strip()
        cause = f"{type(error).__name__}: {text.splitlines()[0] if text else 'no message'}"
        try:
            self.store.set_timeout(timedelta(seconds=min(10.0, self.timeout_s)))
            before = self._heartbeats(self.store)
            time.sleep(4 * self.poll_s)
            after = self._heartbeats(self.store)
        except RuntimeError:
            self.rank0_gone = True
            return f"{self.current_label()}: rank 0 ({self.hosts[0]}) is gone ({cause})"
        silent = [r for r, (b, a) in enumerate(zip(before, after, strict=True)) if a == b and r != self.rank]
        if not silent:
            return f"{self.current_label()}: {cause}"
        ranks = ", ".join(str(r) for r in silent)
        hosts = ", ".join(sorted({self.hosts[r] for r in silent}))
        return f"{self.current_label()}: rank(s) {ranks} on {hosts} died or stopped responding ({cause})"

    def _watch(self) -> None:
        try:
            store = self._connect()
        except RuntimeError:
            return  # the store is already gone; the main thread reports that
        while not self._stop.wait(self.poll_s):
            with self._lock:
                started, step, label = self._started, self._step, self._label
            overdue = started is not None and time.monotonic() - started >= self.timeout_s
            if not self.rank0_gone:
                try:
                    store.add(f"railbench/alive/{self.rank}", 1)
                except RuntimeError:
                    # Rank 0 went away. Keep watching: a collective that errors is the main thread's to report,
                    # but one that never returns (NCCL waiting on a dead peer) is this thread's, at the timeout.
                    self.rank0_gone = True
            if self.rank != 0 and started is not None and time.monotonic() - started >= LEFT_BEHIND_S:
                self._leave_if_rank0_left(store)
            if self.on_tick is not None and not self.rank0_gone:
                # A store that broke under it: the hang and lost-rank paths speak instead.
                with contextlib.suppress(RuntimeError):
                    self.on_tick(store)
            if not overdue:
                continue
            if self.rank0_gone:
                self._finish(Hang(step, label, self.timeout_s, (0,), (self.hosts[0],), unreachable=True))
            assert started is not None
            if self.rank == 0:
                # Only rank 0 diagnoses: a rank busy diagnosing stops beating and would look hung itself.
                self._finish(self._diagnose(store, step, label))
            elif time.monotonic() - started >= self.timeout_s + self.rank0_grace_s:
                # Rank 0 is alive but has not ended the run: end this rank so the launcher notices.
                self._finish(Hang(step, label, self.timeout_s, (), ()))

    def _leave_if_rank0_left(self, store: Store) -> None:
        """Rank 0 said its exit status on its way out while this rank's step still runs: the run is over, and the
        step waits on a peer that has left it. Under load a SIGTERM'd run once left a rank in a pair exchange with
        a peer that had left for MPI's finalize, its connection still open, and every rank waited there past a
        minute. Leave with rank 0's status, which its record and its line already say."""
        now = time.monotonic()
        if self.rank0_gone or now - self._asked < ASK_EVERY_S:
            return
        self._asked = now
        with contextlib.suppress(RuntimeError, ValueError):
            if store.check([RANK0_LEAVING_KEY]):
                status = int(store.get(RANK0_LEAVING_KEY))
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(OSError, ValueError):
                        stream.flush()
                os._exit(status)

    def _finish(self, hang: Hang) -> None:
        status = self.ended() if self.ended is not None and hang.unreachable else None
        if status is not None:
            os._exit(status)  # rank 0 recorded the run's end and said it; its going is not this rank's news
        try:
            self.on_hang(hang)
        finally:
            # Rank 0 speaks for everyone unless rank 0 is the one that is gone. Its store is also gone when
            # rank 0 has just ended the run itself (it diagnosed the same step a moment earlier): the launcher
            # then stops this rank within seconds, so it holds back before saying that rank 0 hung.
            if hang.unreachable and self.rank != 0:
                time.sleep(self.unreachable_hold_s)
            if self.rank == 0 or hang.unreachable:
                print(f"railbench: infrastructure fault: {hang.describe()}", file=sys.stderr, flush=True)
            os._exit(EXIT_INFRA)
