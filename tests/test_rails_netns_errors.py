"""The fabric testifies on the namespace cluster: a rail interface that goes down and up during a rails run
shows as a ``carrier_changes`` delta on that interface in rails.json, and the defect for that link names it;
a rail interface down for the whole of an ``accept`` is one defect, the link, with the check that saw its port
down as its evidence (one fault, one defect).

Each rank reads ``/sys/class/net`` of its own node's namespace (``ip netns exec`` mounts a /sys for it), and
a veth counts every carrier change there. The flap is set off from inside the node's namespace once the
rail's own bytes start to move (the rail groups are measuring, so the first counter reading is behind us).

On the same 3-node bed, a rail left with one live node (issue 41) names its DOWN ports and writes the report.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import rank_env
from tests.support.testbeds.netns_testbed import PROFILE, NetnsCluster, build_cluster

pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow]

# Wait for 1 MB more on the rail (the rail group's collectives, not the groups' handshakes), then flap it.
FLAP = """
sysfs=/sys/class/net/$0/statistics/tx_bytes
start=$(cat "$sysfs")
while [ $(( $(cat "$sysfs") - start )) -lt 1000000 ]; do sleep 0.02; done
ip link set "$0" down; sleep 0.3; ip link set "$0" up
"""


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=3, rails=2) as built:
        (built.workdir / "netns.toml").write_text(PROFILE)
        yield built


def test_a_flapped_rail_shows_carrier_changes_and_is_named(bed: NetnsCluster, tmp_path: Path) -> None:
    out = tmp_path / "run"
    flap = subprocess.Popen(["ip", "netns", "exec", bed.namespace("node03"), "sh", "-c", FLAP, "rail1"])
    argv = [
        sys.executable,
        "-m",
        "bench",
        "rails",
        "--profile",
        str(bed.workdir / "netns.toml"),
        "--out",
        str(out),
        "--no-history",
        "--timeout",
        "60",
        "--rail-bytes",
        "1M",
        "-n",
        "2",
        "-w",
        "1",
    ]
    try:
        done = subprocess.run(
            bed.mpirun(2, argv),
            env=rank_env({"TORCH_CPP_LOG_LEVEL": "ERROR"}),
            capture_output=True,
            text=True,
            timeout=180,
            start_new_session=True,
        )
        flap.wait(timeout=10)
    finally:
        if flap.poll() is None:
            flap.kill()
            flap.wait()
        bed.clear_faults()
    assert flap.returncode == 0 and (out / "rails.json").is_file(), done.stdout + done.stderr
    doc = json.loads((out / "rails.json").read_text())
    # down and up: two carrier changes on node03's rail1, and on no other interface of any node
    assert doc["counters"]["node03"]["rail1"]["errors"]["carrier_changes"] == 2, doc["counters"]
    changed = {
        (node, device)
        for node, devices in doc["counters"].items()
        for device, entry in devices.items()
        if entry["errors"].get("carrier_changes")
    }
    assert changed == {("node03", "rail1")}
    windows = [w for w in doc["error_windows"] if "rail1" in w["errors"].get("node03", {})]
    assert sum(w["errors"]["node03"]["rail1"]["errors"].get("carrier_changes", 0) for w in windows) == 2
    # the defect for that link names it: an errors warning where its bandwidth held, else the slow link's clause
    (named,) = [d for d in doc["defects"] if d["rail"] == 1 and "node03" in (d["node"], d.get("peer"))]
    mine = [e for e in named["errors"] if (e["node"], e["device"]) == ("node03", "rail1")]
    assert mine and mine[0]["errors"]["carrier_changes"] == 2, named
    assert "2 carrier_changes on rail1 during the test" in named["line"] and "node03 rail1" in named["action"]
    assert named["line"] in done.stdout
    if named["kind"] == "errors":
        assert named["severity"] == "warn" and done.returncode == 0, done.stdout


def test_a_rail_left_with_one_live_node_names_its_dead_links(bed: NetnsCluster, tmp_path: Path) -> None:
    """Issue 41, a leaf lost but for one node: node01's and node02's rail 1 are down, so rail 1 has one live node
    and no group (which once divided by zero on every rank of it: exit 3, no report). Both DOWN ports are named
    with their action, rail 0 is measured on all three nodes, and the report is written."""
    out = tmp_path / "run"
    bed.link_down("node01", 1)
    bed.link_down("node02", 1)
    argv = [sys.executable, "-m", "bench", "rails", "--profile", str(bed.workdir / "netns.toml"), "--out", str(out)]
    try:
        done = bed.run(2, [*argv, "--no-history", "--timeout", "60", "--rail-bytes", "1M"], timeout=180)
    finally:
        bed.clear_faults()
    assert done.returncode == 1 and (out / "rails.json").is_file(), done.stdout[-4000:] + done.stderr[-4000:]
    doc = json.loads((out / "rails.json").read_text())
    assert [(d["kind"], d["node"], d["rail"], d["symptom"], d["action"]) for d in doc["defects"]] == [
        ("link", node, 1, "dead", f"check the port state and the cable of {node} rail1")
        for node in ("node01", "node02")
    ], done.stdout[-4000:]
    assert {m["rail"] for m in doc["measurements"] if m["kind"] == "rail"} == {0}
    assert "# rail 1 carried by nothing measured (no rail group)" in done.stdout
    assert (out / "report.md").is_file() and (out / "report.html").is_file()


def test_accept_names_a_dead_cable_once(bed: NetnsCluster, tmp_path: Path) -> None:
    """node02's rail1 down: the check phase fails its port (socket-rail) and the nodes disagree (same-answers),
    the rails test names the link dead, and the run says the one cable once: one FAIL line, one JUnit failure,
    one defect on the certificate with the checks as its evidence, the dead rail drawn dead on node02, and the
    world sweep not measured, with why, in the terminal and the report."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "bench", "accept", "--profile", str(bed.workdir / "netns.toml")]
    argv += ["--out", str(out), "--no-history", "--timeout", "60", "--collectives", "all_reduce"]
    argv += ["-e", "1M", "-n", "2", "-w", "1"]
    bed.clear_faults()
    bed.link_down("node02", 1)
    try:
        done = bed.run(2, argv, timeout=240)
    finally:
        bed.clear_faults()
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    link = "node02 rail 1 (rail1): no traffic in 2/2 pairs → link dead"
    fails = [line for line in done.stdout.splitlines() if line.startswith("# FAIL ")]
    assert len(fails) == 1 and fails[0].startswith(f"# FAIL {link}"), said
    assert "# world sweep skipped: the rails test found the link node02 rail 1 (rail1) dead" in done.stdout, said
    assert "FAIL  socket-rail         rail1: operstate down" in done.stdout, said  # the check phase's answer stays
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    failed = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert failed == [("railbench.rails", "rail1")], said
    md = (out / "report.md").read_text()
    assert "### Defects (1)" in md and "Other failures" not in md, md
    (row,) = [r for r in md.splitlines() if r.startswith("| link | node02 | 1 | rail1 |")]
    assert "node02 socket-rail: rail1: operstate down, expected up" in row
    (sweep,) = [r for r in md.splitlines() if r.startswith("| world sweep |")]
    assert "all\\_reduce not measured: the rails test found the link node02 rail 1 (rail1) dead" in sweep
    with (out / "charts" / "nodes.csv").open() as f:
        nodes = {r["label"]: r for r in csv.DictReader(f)}
    assert (float(nodes["node02"]["busbw_Gbps"]), nodes["node02"]["status"]) == (0.0, "fail")
    with (out / "charts" / "rails.csv").open() as f:
        rails = {r["label"]: r for r in csv.DictReader(f)}
    assert rails["rail 1 (rail1)"]["detail"] == "weakest node node02: dead"
    assert float(rails["rail 1 (rail1)"]["busbw_Gbps"]) == 0.0
