"""A rank whose launcher died stops itself, as if it had been sent SIGTERM.

``kill -9`` of mpirun (or of srun, or of torch's elastic agent) gives its ranks no signal: they are
re-parented and would go on measuring and appending rows to a run nobody waits for any more. Worse, their
next line of output goes to a terminal or pipe that is gone (EIO, EPIPE), and the exception would end rank 0
before it records anything. So every rank:

* keeps writing its output through a stream that drops what nobody can read any more (and says so to the
  watch below) instead of raising out of the measurement;
* remembers its parent when it starts, and a thread looks every ``POLL_S``: once the parent has changed or the
  output is lost, it sends this process SIGTERM. The main thread then ends the run the one way an interrupt
  ends it (``bench.runtime.signals``, ``bench.runtime.guard``): rank 0 records it, every rank exits 143.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

POLL_S = 0.5
EXIT_AFTER_S = 60.0
"""If SIGTERM has not ended this rank by then (its main thread stuck in C++), it exits on its own."""
GONE_ERRNOS = frozenset({errno.EIO, errno.EPIPE})
"""What a write to a terminal (EIO) or pipe (EPIPE) whose reader has exited fails with."""

_output_lost = threading.Event()
_watching: list[int] = []


class SurvivingStream:
    """A text stream whose writes never raise because the reader is gone: what cannot be written is dropped,
    and the launcher watch learns that the output is lost. Any other error is raised as before."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            if exc.errno not in GONE_ERRNOS:
                raise
            _output_lost.set()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            if exc.errno not in GONE_ERRNOS:
                raise
            _output_lost.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def launcher_gone(started_under: int) -> bool:
    """Whether the process that started this rank is gone (this process was re-parented)."""
    return os.getppid() != started_under


def watch_launcher() -> None:
    """Start the watch (once per process; not when this process has no launcher to lose)."""
    parent = os.getppid()
    if _watching or parent <= 1:
        return
    _watching.append(parent)
    if not isinstance(sys.stdout, SurvivingStream):
        sys.stdout = SurvivingStream(sys.stdout)
    if not isinstance(sys.stderr, SurvivingStream):
        sys.stderr = SurvivingStream(sys.stderr)
    threading.Thread(target=_watch, args=(parent,), name="railbench-launcher-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while not launcher_gone(parent) and not _output_lost.wait(POLL_S):
        pass
    print(
        f"railbench: the launcher (pid {parent}) of rank pid {os.getpid()} is gone: stopping this rank",
        file=sys.stderr,
        flush=True,
    )
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(EXIT_AFTER_S)
    os._exit(128 + signal.SIGTERM)
