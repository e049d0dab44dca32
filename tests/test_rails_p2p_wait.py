"""A send or receive in a rail group may wait its operation timeout, not the group's connection timeout.

Rail groups connect within a few seconds (a dead link must not cost minutes) and then get a long operation
timeout. gloo's point-to-point operations ignore that second timeout: they wait as long as the connection
timeout unless ``Work.wait`` is given one. In the diagnosis campaign a flapping link held one chunk in TCP's
retransmission backoff for longer than 5 s and the run ended as a lost rank. Here two real gloo ranks form
a one-rail group with a 1 s connection timeout and a 30 s operation timeout, and the receiver turns up 3 s
late: the exchange must finish, once with ``p2p_wait`` (what the pair matrix uses) and once through
``pair_agree`` (the exchange of the probe times).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import rank_env

_RANK = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    import torch, torch.distributed as dist
    from bench.rails.plan.layout import RailLayout
    from bench.rails.measurement.exchanges import make_rail_groups, one_way, p2p_wait, pair_agree

    rank, store_path = int(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", store=dist.FileStore(store_path, 2), rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    layout = RailLayout(("node01", "node02"), ((0,), (1,)))
    groups, problem = make_rail_groups(layout, [(0, 1)], None, startup_s=1.0, op_timeout_s=30.0)
    assert problem is None, problem
    group = groups[0]
    wait = p2p_wait(group, 30.0)
    assert wait == timedelta(seconds=30), wait
    buf = torch.ones(1 << 16)
    step = one_way(buf, torch.empty_like(buf), 1 - rank, rank == 0, group, wait)
    if rank == 1:
        time.sleep(3.0)  # three connection timeouts late
    began = time.monotonic()
    step()
    if rank == 0:
        time.sleep(3.0)
    agreed = pair_agree(1 - rank, group, torch.device("cpu"), wait)(0.25 * (rank + 1))
    print(f"ok {time.monotonic() - began:.1f} {agreed}", flush=True)
    dist.destroy_process_group()
    """
)


@pytest.mark.mpi
@pytest.mark.slow
def test_a_pair_exchange_outlasts_the_connection_timeout_of_its_rail_group(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK, str(r), store],
            env=rank_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    outputs = [proc.communicate(timeout=120) for proc in ranks]
    for proc, (out, err) in zip(ranks, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        words = out.split()
        assert words[0] == "ok", out
        assert float(words[2]) == 0.5  # the slower of the two ends' probe times, at both ends
    # The sender really waited for the late receiver, well past the 1 s connection timeout.
    assert float(outputs[0][0].split()[1]) >= 2.0
