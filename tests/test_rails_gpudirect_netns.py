"""A node-local cause tied to the rail it slows, on the namespace testbed: `rails --sysfs-root DIR/{host}`.

Each node reads its own fixture tree (``tests.support.trees.gpudirect_trees``): its GPUs and their PCIe links from the
tree, its rails (``class/net``, a link to the node's own ``/sys/class/net``) live. node03's GPU 1 trained at x8 and
its rail 1 is shaped to 150 Mbit/s, standing in for the bandwidth that link costs: the defect must name node03
rail 1, carry the PCIe link as its cause and take the reseat as its action, not the cable's. node02's GPU 0 is
at x8 too, but its rail runs at full speed (this run's messages never felt it): the fault is still named, in
``node_causes`` and as a failed item of its own, and no defect is invented for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from bench.rundir.railsdoc import SCHEMA_PATH
from tests.support.testbeds.netns_testbed import SHAPED_PAIRS_PROFILE, NetnsCluster, build_cluster
from tests.support.trees import gpudirect_trees
from tests.support.trees.fabric_trees import healthy_1cc
from tests.support.trees.gpudirect_trees import PathSpec

pytestmark = [pytest.mark.netns, pytest.mark.mpi, pytest.mark.slow]

SHAPED_MBIT = 150


@pytest.fixture(scope="module")
def bed() -> Iterator[NetnsCluster]:
    with build_cluster(nodes=4, rails=2) as built:
        # 1 MiB rail-group cells, so that the shaped rail's calls stay short.
        (built.workdir / "netns.toml").write_text(SHAPED_PAIRS_PROFILE)
        yield built


def _trees(base: Path, nodes: tuple[str, ...], faults: dict[str, PathSpec]) -> Path:
    """One fixture tree per node, ``faults`` by node; every node's rails are its own live interfaces."""
    for node in nodes:
        gpudirect_trees.build(base / node, healthy_1cc(), replace(faults.get(node, PathSpec()), live_net=True))
    return base


def _shaped_run(
    bed: NetnsCluster, command: str, trees: Path, out: Path, *extra: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``railbench COMMAND`` over the testbed with node03's rail 1 at 150 Mbit/s, each node on its own tree."""
    bed.clear_faults()
    bed.shape("node03", 1, SHAPED_MBIT)
    argv = [sys.executable, "-m", "bench", command, "--profile", str(bed.workdir / "netns.toml")]
    argv += ["--sysfs-root", f"{trees}/{{host}}", "--out", str(out), "--no-history", "--timeout", "90", *extra]
    try:
        return bed.run(2, argv, timeout=timeout)
    finally:
        bed.clear_faults()


def test_a_gpu_at_x8_behind_a_slow_rail_is_the_cause_and_the_reseat_the_action(
    bed: NetnsCluster, tmp_path: Path
) -> None:
    faults = {"node03": PathSpec(gpu_width={1: 8}), "node02": PathSpec(gpu_width={0: 8})}
    out = tmp_path / "run"
    done = _shaped_run(bed, "rails", _trees(tmp_path / "sys", bed.nodes, faults), out)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    doc = json.loads((out / "rails.json").read_text())
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text()))
    named = [(d["kind"], d["node"], d["rail"]) for d in doc["defects"] if d.get("severity", "fail") == "fail"]
    assert named == [("link", "node03", 1)], said
    defect = doc["defects"][0]
    assert [(c["check"], c["node"], c["device"], c["gpus"]) for c in defect["causes"]] == [
        ("pcie-link", "node03", "GPU1", [1])
    ]
    assert "x8" in defect["causes"][0]["reason"] and "capable of x16" in defect["causes"][0]["reason"]
    assert defect["action"].startswith("reseat GPU 1 (0000:33:00.0) on node03")
    assert "cable" not in defect["action"] and "cause on the node: pcie-link" in defect["line"]
    # Every fault each node found, the one no defect carries included.
    causes = {(c["node"], c["check"], c["device"], c["explains"]) for c in doc["node_causes"]}
    assert causes == {("node03", "pcie-link", "GPU1", True), ("node02", "pcie-link", "GPU0", False)}
    # The verdict, run.json and JUnit say both: the rail with its cause, node02's GPU 0 on its own.
    meta = json.loads((out / "run.json").read_text())
    assert meta["verdict"] == "fail"
    reasons = "\n".join(meta["reasons"])
    assert "node03 rail 1" in reasons and "reseat GPU 1" in reasons
    assert "node02 pcie-link: GPU 0 (0000:13:00.0)" in reasons
    cases = {
        (case.get("classname"), case.get("name")): case
        for case in ET.parse(out / "junit.xml").getroot().iter("testcase")
    }
    rail1 = cases[("railbench.rails", "rail1")].find("failure")
    assert rail1 is not None and "reseat GPU 1" in (rail1.get("message") or "")
    assert cases[("railbench.gpudirect", "node02")].find("failure") is not None
    assert ("railbench.gpudirect", "node03") not in cases  # carried by the rail's defect, said once
    assert "cause on the node: pcie-link" in done.stdout


def test_accept_ties_its_check_phases_finding_to_the_slow_rail(bed: NetnsCluster, tmp_path: Path) -> None:
    """accept reads each node's GPUDirect path once, in its check phase, and the rails phase ties that finding
    to the rail it slows: checks.json fails node03's pcie-link, rails.json's defect carries it as its cause."""
    trees = _trees(tmp_path / "sys", bed.nodes, {"node03": PathSpec(gpu_width={1: 8})})
    out = tmp_path / "run"
    sweep = ("--collectives", "all_reduce", "-e", "1M", "-n", "2", "-w", "1")
    done = _shaped_run(bed, "accept", trees, out, *sweep, timeout=400)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    checked = json.loads((out / "checks.json").read_text())
    node03 = next(n for n in checked["nodes"] if n["node"] == "node03")
    link = [r for r in node03["results"] if r["check"] == "pcie-link"]
    assert [(r["status"], r["device"], r["gpus"]) for r in link] == [("fail", "GPU1", [1])]
    assert link[0]["action"].startswith("reseat GPU 1 (0000:33:00.0) on node03")
    others = [r for n in checked["nodes"] if n["node"] != "node03" for r in n["results"] if r["check"] == "pcie-link"]
    assert {r["status"] for r in others} == {"pass"}
    doc = json.loads((out / "rails.json").read_text())
    failing = [d for d in doc["defects"] if d.get("severity", "fail") == "fail"]
    assert [(d["kind"], d["node"], d["rail"]) for d in failing] == [("link", "node03", 1)], said
    assert [c["check"] for c in failing[0]["causes"]] == ["pcie-link"]
    assert failing[0]["action"].startswith("reseat GPU 1 (0000:33:00.0) on node03")
    meta = json.loads((out / "run.json").read_text())
    assert meta["verdict"] == "fail" and any("reseat GPU 1" in r for r in meta["reasons"])
