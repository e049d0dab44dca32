"""A link that dies mid-measurement under a site's ``NCCL_DEBUG=WARN`` and NCCL 2.18's wording, named end to end.

At WARN level NCCL prints no ``NET/IB : Using ... ; OOB`` line, and before 2.22 its completion WARN names no HCA:
only the peer's address and the status. The rails command runs with the model of NCCL
(``tests/support/models/async_backend.py``, behaviours 7 and 8) on the namespace testbed, where every node has its own
rail interfaces and so its own out-of-band address, found as NCCL finds it from ``NCCL_SOCKET_IFNAME``. Each failed rank
posts the addresses of the interfaces that variable selects on its node (``bench.frame.postmortem``), and rank 0 names
the end the others' errors point at: a FAIL (exit 1), never a lost rank (exit 3).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.support.testbeds.netns_testbed import PROFILE, NetnsCluster, build_cluster, mgmt_address

pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=3, rails=2) as built:
        (built.workdir / "netns.toml").write_text(PROFILE)
        yield built


def test_a_warn_only_nccl_2_18_log_names_the_dead_end(bed: NetnsCluster) -> None:
    out = bed.workdir / "warn-only" / "railsjob.json"
    out.parent.mkdir()
    done = bed.run(
        2,
        [sys.executable, "-m", "tests.support.ranks.async_ranks", "railsjob", str(out)],
        env={
            "ASYNC_PROFILE": str(bed.workdir / "netns.toml"),
            "GLOO_SOCKET_IFNAME": "mgmt",
            "NCCL_DEBUG": "WARN",  # the site's level: railbench keeps it
            "RAILBENCH_ASYNC_NCCL": "2.18",
            "RAILBENCH_ASYNC_GBPS": "0.5",
            "RAILBENCH_ASYNC_DIES": "3:4",  # node02's rail 1, in the first rail all_reduce
            "RAILBENCH_ASYNC_ABORT_S": "5",
        },
        timeout=300,
    )
    run_json = out.parent / "rails-run" / "run.json"
    assert run_json.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads(run_json.read_text())
    logs = sorted((out.parent / "rails-run" / "nccl").glob("*.log"))
    said = "".join(log.read_text() for log in logs)
    assert "NCCL WARN" in said and "NCCL INFO" not in said and "with error 12, opcode 0" in said
    assert (done.returncode, run["verdict"], run["exit_status"]) == (1, "fail", 1), done.stderr[-3000:]
    failure = run["failure"]
    # The first interface NCCL's search selects on these nodes is mgmt (the model's groups bind no rail
    # interface): node02's address there is what its peers' errors name, and what node02 posted.
    assert failure["links"] == [[{"host": "node02", "device": None, "address": mgmt_address(2)}]], failure
    assert failure["message"].startswith(f"node02 ({mgmt_address(2)}): its link died: NCCL on node01, node03")
