"""A rank left in a step after rank 0 has left the run (``bench.runtime.watchdog``): under load, a SIGTERM'd
``rails`` once left a rank in a pair exchange whose peer had gone on to MPI's finalize with its connection still
open, and mpirun waited on it past a minute (tests/test_rails_interrupt.py). Once rank 0 has said its exit status
on its way out (``bench.runtime.dist.say_leaving``), the watchdog of a rank still in a step ends it with that
status. The rank is a real process with a real watchdog thread; its step is a wait that never returns."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bench.runtime.watchdog import LEFT_BEHIND_S

RANK = textwrap.dedent(
    """
    import sys, threading, time
    import torch.distributed as dist
    from bench.runtime.watchdog import RANK0_LEAVING_KEY, Watchdog

    store = dist.HashStore()
    dog = Watchdog(store, int(sys.argv[1]), ["node0", "node1"], 600.0, lambda hang: None)
    dog.start()
    dog.enter("a pair exchange whose peer has left")
    if sys.argv[2] == "leaves":
        threading.Timer(0.5, lambda: store.set(RANK0_LEAVING_KEY, "143")).start()
    time.sleep(2 * float(sys.argv[3]))
    print("still here")
    """
)


def _rank(rank: int, rank0: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", RANK, str(rank), rank0, str(LEFT_BEHIND_S)], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout


@pytest.mark.slow
def test_a_rank_still_in_a_step_after_rank_0_left_ends_with_rank_0s_status() -> None:
    # ended inside its step's wait (twice LEFT_BEHIND_S), with rank 0's status
    assert _rank(1, "leaves") == (143, "")


@pytest.mark.slow
def test_a_step_runs_on_while_rank_0_has_not_left() -> None:
    assert _rank(1, "stays") == (0, "still here\n")


@pytest.mark.slow
def test_rank_0_itself_is_never_ended_by_its_own_leaving() -> None:
    assert _rank(0, "leaves") == (0, "still here\n")
