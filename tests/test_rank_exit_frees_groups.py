"""A rank's process groups are freed on its way out, even when the frames of the step that ended it hold them in a
reference cycle (``bench.runtime.rank_exit.end_rank``).

gloo closes a group's connections only when the group's last reference goes: ``destroy_process_group`` calls its
``shutdown()``, which leaves them open. A rank that left a soak window on a peer's SIGTERM kept its rail group in the
failed exchange's frames (a cycle with the exception), and its partner, still waiting for it, waited out the
timeout while mpirun held both: tests/test_soak_netns.py hung in 3 of 4 CI runs. Two real gloo ranks here: rank 1
leaves through ``end_rank`` with its group in such a cycle and stays, as MPI's finalize holds it; rank 0, blocked
in a receive from rank 1, must fail at once, not at the group's 60 s timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support import free_port, rank_env

pytestmark = pytest.mark.slow

RANK = """
import sys, time
from datetime import timedelta
import torch, torch.distributed as dist
from bench.runtime import dist as bench_dist
rank, port = int(sys.argv[1]), int(sys.argv[2])
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                        timeout=timedelta(seconds=60))
group = dist.new_group([0, 1])
if rank == 0:
    began = time.monotonic()
    try:
        dist.recv(torch.zeros(1), 1, group=group)
        print("received", flush=True)
    except RuntimeError:
        print(f"failed after {time.monotonic() - began:.1f} s", flush=True)
    sys.exit(0)


def failed_step(group):
    try:
        raise RuntimeError("the exchange failed")
    except RuntimeError as exc:
        kept = exc  # the frame holds the exception, whose traceback holds the frame: a cycle
        return kept


failed_step(group)
del group
bench_dist.shutdown()
from bench.runtime import rank_exit
rank_exit.BEFORE_FINALIZE.append(lambda status: time.sleep(40))  # as MPI's finalize holds it for rank 0
rank_exit.end_rank(0)
"""


def test_a_leaving_rank_closes_its_groups_for_the_peer_waiting_on_it() -> None:
    port = free_port()
    began = time.monotonic()
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", RANK, str(rank), str(port)],
            env=rank_env({"TORCH_CPP_LOG_LEVEL": "ERROR"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        out, err = ranks[0].communicate(timeout=50)
    finally:
        for proc in ranks:
            proc.kill()
            proc.communicate()
    assert out.startswith("failed after"), out + err
    assert float(out.split()[2]) < 20, out  # the group's connections closed, not its 60 s timeout
    assert time.monotonic() - began < 50
