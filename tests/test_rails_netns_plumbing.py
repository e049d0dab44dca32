"""The namespace testbed itself: distinct hostnames under mpirun, and gloo groups bound to their rails."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.support.testbeds.netns_testbed import NetnsCluster, build_cluster

pytestmark = [pytest.mark.netns, pytest.mark.mpi]


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=3, rails=2) as built:
        yield built


def test_mpirun_reaches_every_node_under_its_hostname(bed: NetnsCluster) -> None:
    # A job that ends while mpirun's daemons are still starting sometimes leaves mpirun (PRRTE 5) waiting
    # forever; a second of life avoids that race (real ranks live far longer).
    done = bed.run(2, ["sh", "-c", "hostname; sleep 1"], timeout=60)
    assert done.returncode == 0, done.stderr
    assert Counter(done.stdout.split()) == {"node01": 2, "node02": 2, "node03": 2}


def test_gloo_world_over_mgmt_and_rail_groups_over_their_rails(bed: NetnsCluster) -> None:
    import sys

    done = bed.run(2, [sys.executable, "-m", "tests.support.ranks.netns_probe", "2"], timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 6
    for line in lines:
        assert line["host"] == f"node{line['node_rank'] + 1:02d}"
        assert line["world"] == sum(range(6))
        assert line["rail_sum"] == 3.0
        # Both ranks of a node see the node's counters: each rail carried its group's 4 MiB all_reduce, the
        # management interface next to nothing. gloo picks its all_reduce algorithm per call (a ring sends
        # 2 x (n-1)/n x 4 MiB = 5.6 MB per rank, others less), but no algorithm lets a rank send less than
        # its (n-1)/n share of the buffer: 2.8 MB.
        sent = line["tx_bytes"]
        share = 2 / 3 * 4 * 1024 * 1024
        assert sent["rail0"] > share and sent["rail1"] > share, sent
        assert sent["mgmt"] < 64 * 1024, sent
