"""Hang detection that names who did not arrive.

Every rank publishes the index of the step it has entered in the rendezvous store. A daemon thread on
every rank watches its own step: if the step has not finished within ``timeout_s`` it reads every rank's
published step and reports the ranks (and their hosts) that never reached it. The thread works while the
main thread is blocked inside a collective because torch releases the GIL there, and the store is served
by a C++ thread on rank 0.

The report goes to ``on_hang`` (rank 0 records it in the run directory); then the process exits with
status 3 through ``os._exit``, since the main thread is stuck in C++ and cannot unwind.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bench.errors import EXIT_INFRA


@dataclass(frozen=True)
class Hang:
    """What the watchdog saw when a step overran."""

    step: int
    label: str
    timeout_s: float
    missing_ranks: tuple[int, ...]
    """Ranks that never entered the step (empty: every rank entered, and the collective itself stalled)."""
    missing_hosts: tuple[str, ...]
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
            return f"{self.label} did not finish within {self.timeout_s:g} s: rank(s) {ranks} on {hosts} never arrived"
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

    store: Any
    rank: int
    hosts: Sequence[str]
    timeout_s: float
    on_hang: Callable[[Hang], None]
    poll_s: float = 0.5
    grace_s: float = 5.0
    """Non-zero ranks wait this long before exiting, so rank 0 can record the hang first."""
    _step: int = field(default=0, init=False)
    _label: str = field(default="start-up", init=False)
    _started: float | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def start(self) -> None:
        threading.Thread(target=self._watch, name="railbench-watchdog", daemon=True).start()

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

    def _published_steps(self) -> list[int | None]:
        steps: list[int | None] = []
        for r in range(len(self.hosts)):
            key = f"railbench/step/{r}"
            steps.append(int(self.store.get(key)) if self.store.check([key]) else None)
        return steps

    def _diagnose(self, step: int, label: str) -> Hang:
        try:
            self.store.set_timeout(timedelta(seconds=min(10.0, self.timeout_s)))
            missing = find_missing(self._published_steps(), step)
        except RuntimeError:
            return Hang(step, label, self.timeout_s, (0,), (self.hosts[0],), unreachable=True)
        return Hang(step, label, self.timeout_s, missing, tuple(self.hosts[r] for r in missing))

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            with self._lock:
                started, step, label = self._started, self._step, self._label
            if started is None or time.monotonic() - started < self.timeout_s:
                continue
            hang = self._diagnose(step, label)
            if self.rank != 0:
                time.sleep(self.grace_s)
            try:
                self.on_hang(hang)
            finally:
                # Rank 0 speaks for everyone unless rank 0 is the one that is gone.
                if self.rank == 0 or hang.unreachable:
                    print(f"railbench: infrastructure fault: {hang.describe()}", file=sys.stderr, flush=True)
                os._exit(EXIT_INFRA)
