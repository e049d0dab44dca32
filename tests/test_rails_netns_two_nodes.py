"""The smallest cluster (a 1-Click Cluster starts at 2 nodes) on the namespace testbed, 2 nodes x 2 rails, under
mpirun: ``rails`` and ``accept`` with node02's rail 1 dead, slow or flapping, and clean (issue 41).

A rail of 2 nodes has one pair. With node02's rail 1 down, rail 1 has one live node and no group: the DOWN port
names the end (``link node02 rail 1``). A slow rail 1 is its one pair, which cannot tell either end's link from
the switch, and says so. A port that goes down and up while the bandwidth holds is told by its carrier changes
(``[errors] fail_on_errors = true`` here, so it fails as a cable should). Each run exits 1 naming the part with
its action and writes the report; a clean run exits 0 and names nothing. ``tests/test_rails_few_nodes.py`` judges
the same cases without ranks.

Small: 1 MiB rail-group calls, the testbed's 16 MiB pairs, and accept's world sweep one all_reduce of 64 KiB. The
dead link runs under both commands (issue 41's crash was there); the other cases under one each, as ``accept``
runs the ``rails`` step with the same rank program: clean and slow under ``accept``, flapping under ``rails``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.testbeds.netns_testbed import SHAPED_PAIRS_PROFILE, NetnsCluster, build_cluster

pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow]

# A flap fails the run whether or not the pair measured it slow: as a slow link told by its counters, or as a
# link whose counters rose while its bandwidth held (an ``errors`` defect, a warning by default).
FLAPPING = SHAPED_PAIRS_PROFILE + "\n[errors]\nfail_on_errors = true\n"

# Once 1 MB more has left node02's rail1 (the rail groups are measuring: the link probe is behind us), the
# link goes down for 0.3 s and up again: two carrier changes on that veth.
FLAP = """
sysfs=/sys/class/net/$0/statistics/tx_bytes
start=$(cat "$sysfs")
while [ $(( $(cat "$sysfs") - start )) -lt 1000000 ]; do sleep 0.02; done
ip link set "$0" down; sleep 0.3; ip link set "$0" up
"""
ACCEPT_SWEEP = ("-b", "64K", "-e", "64K", "-n", "2", "-w", "1", "--collectives", "all_reduce")


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=2, rails=2) as built:
        (built.workdir / "small.toml").write_text(SHAPED_PAIRS_PROFILE)
        (built.workdir / "flapping.toml").write_text(FLAPPING)
        yield built


@pytest.fixture
def cluster(bed: NetnsCluster) -> Iterator[NetnsCluster]:
    bed.clear_faults()
    yield bed
    bed.clear_faults()


def _run(bed: NetnsCluster, command: str, out: Path, profile: str = "small.toml") -> tuple[int, str, dict]:
    extra = ACCEPT_SWEEP if command == "accept" else ()
    argv = [sys.executable, "-m", "bench", command, "--profile", str(bed.workdir / profile), "--out", str(out)]
    done = bed.run(2, [*argv, "--no-history", "--timeout", "60", *extra], timeout=300)
    said = done.stdout + done.stderr
    assert (out / "rails.json").is_file(), said[-4000:]
    # The report is written whatever the verdict.
    assert (out / "report.md").is_file() and (out / "report.html").is_file(), said[-4000:]
    meta = json.loads((out / "run.json").read_text())
    assert meta["exit_status"] == done.returncode and meta["command"] == command, said[-4000:]
    return done.returncode, done.stdout, json.loads((out / "rails.json").read_text())


def _named(doc: dict) -> list[tuple[str, str | None, str | None, int | None, str]]:
    return [(d["kind"], d["node"], d.get("peer"), d["rail"], d["symptom"]) for d in doc["defects"]]


@pytest.mark.parametrize("command", ["accept"])
def test_two_nodes_clean_name_nothing(cluster: NetnsCluster, tmp_path: Path, command: str) -> None:
    rc, stdout, doc = _run(cluster, command, tmp_path)
    assert rc == 0, stdout[-4000:]
    assert doc["defects"] == [] and "# defects: none" in stdout
    assert {m["rail"] for m in doc["measurements"] if m["kind"] == "rail"} == {0, 1}


@pytest.mark.parametrize("command", ["rails", "accept"])
def test_two_nodes_a_dead_link_is_named_by_its_down_port(cluster: NetnsCluster, tmp_path: Path, command: str) -> None:
    cluster.link_down("node02", 1)
    rc, stdout, doc = _run(cluster, command, tmp_path)
    assert rc == 1, stdout[-4000:]
    assert _named(doc) == [("link", "node02", None, 1, "dead")], stdout[-4000:]
    (defect,) = doc["defects"]
    assert defect["action"] == "check the port state and the cable of node02 rail1"
    assert "node02 rail 1 (rail1): no traffic in 1/1 pairs → link dead" in defect["line"]
    assert f"# FAIL {defect['line']}" in stdout
    # Rail 0 measured over both nodes; rail 1 had one live node, so no group and nothing to carry.
    assert {m["rail"] for m in doc["measurements"] if m["kind"] == "rail"} == {0}
    assert "# rail 1 carried by nothing measured (no rail group)" in stdout
    assert "| link | node02 | 1 | rail1 | no traffic in 1/1 pairs → link dead" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("command", ["accept"])
def test_two_nodes_a_slow_link_is_the_pair(cluster: NetnsCluster, tmp_path: Path, command: str) -> None:
    cluster.shape("node02", 1, 150)
    rc, stdout, doc = _run(cluster, command, tmp_path)
    assert rc == 1, stdout[-4000:]
    assert _named(doc) == [("pair", "node01", "node02", 1, "slow")], stdout[-4000:]
    (defect,) = doc["defects"]
    assert defect["only_pair"] is True
    assert (
        "the rail's only pair: node01's link, node02's link or the switch, one pair cannot tell which"
        in (defect["line"])
    )
    assert defect["action"] == "check the switch path between node01 and node02 on rail 1"
    assert f"# FAIL {defect['line']}" in stdout
    assert "| pair | node01 ↔ node02 | 1 |" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("command", ["rails"])
def test_two_nodes_a_flapping_link_is_told_by_its_counters(cluster: NetnsCluster, tmp_path: Path, command: str) -> None:
    flap = subprocess.Popen(["ip", "netns", "exec", cluster.namespace("node02"), "sh", "-c", FLAP, "rail1"])
    try:
        rc, stdout, doc = _run(cluster, command, tmp_path, "flapping.toml")
        flap.wait(timeout=10)
    finally:
        if flap.poll() is None:
            flap.kill()
            flap.wait()
    assert flap.returncode == 0 and rc == 1, stdout[-4000:]
    assert doc["counters"]["node02"]["rail1"]["errors"]["carrier_changes"] == 2, doc["counters"]
    # node02's port alone went down and up: whether or not its pair measured slow, the link is node02's.
    failing = [d for d in doc["defects"] if d["severity"] == "fail"]
    assert [(d["kind"], d["node"], d["rail"]) for d in failing] in (
        [("errors", "node02", 1)],
        [("link", "node02", 1)],
    ), stdout[-4000:]
    (defect,) = failing
    assert "2 carrier_changes on rail1 during the test" in defect["line"], defect["line"]
    assert defect["action"] == "reseat or replace the cable/transceiver on node02 rail1"
    assert f"# FAIL {defect['line']}" in stdout
