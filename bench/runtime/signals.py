"""SIGINT and SIGTERM become ``Interrupted`` in the main thread, in the parent and in every rank.

Python delivers the exception only when the main thread is back in the interpreter; a rank blocked in a
collective gets the error of its peers' collective first, so ``received()`` tells that rank the run was
interrupted rather than lost.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from bench.exits import Interrupted

_received: list[int] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def install() -> None:
    """Turn SIGINT and SIGTERM into ``Interrupted`` (main thread only; elsewhere Python forbids handlers)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _raise)


def received() -> int | None:
    """The first interrupting signal this process received, if any."""
    return _received[0] if _received else None
