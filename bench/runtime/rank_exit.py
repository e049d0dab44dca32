"""How a rank process ends: its output flushed, MPI finalized, then ``os._exit`` with its status.

Python's own teardown of a process that imported torch (every module torn down, destructors, torch's exit
work) took 2.6-3.4 s against 0.1-0.2 s for ``os._exit`` on this 2-core machine under load (``import torch``,
then either), about half a second on an idle core. Eight ranks a node on a few cores held the end of every
run for seconds after its run directory was complete and its verdict said, which is most of what a short
run costs beyond its measurement. Nothing railbench needs happens in that teardown: every file is written
through an atomic write and closed, the rank entry destroys the process group (``bench.runtime.dist``), and
what C code buffered (NCCL's ``NCCL_DEBUG_FILE`` lines) is flushed here with C stdio.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
from collections.abc import Callable
from typing import NoReturn

BEFORE_FINALIZE: list[Callable[[int], None]] = []
"""What the rank says on its way out, its output flushed, before MPI's finalize (which waits for every rank):
rank 0 posts its exit status for the ranks that wait to leave until it has said its line
(``bench.runtime.dist.quiet_usage_exit``). Each is given the exit status; one that fails is skipped."""


def end_rank(status: int) -> NoReturn:
    """Flush, say what :data:`BEFORE_FINALIZE` says, finalize MPI where mpi4py started it (it would at exit; a
    launcher counts a rank that skips it as failed), flush C stdio, and leave with ``status``."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away, a closed stream
            stream.flush()
    # The frames of a step that failed or was interrupted sit in a reference cycle with the exception that
    # ended it (a frame holding it in a local), and they hold this rank's process groups. gloo closes a group's
    # connections only when its last reference goes (its shutdown() leaves them open), so a peer still waiting
    # in an exchange with this rank would wait out its timeout while this rank waits for it in MPI's finalize:
    # a SIGTERM'd soak whose ranks stayed blocked past two minutes (tests/test_soak_netns.py). Collected here,
    # the connections close and the peer's exchange fails at once.
    gc.collect()
    for say in BEFORE_FINALIZE:
        with contextlib.suppress(RuntimeError, OSError):  # a store already gone: the others hold, as before
            say(status)
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)
    os._exit(status)
