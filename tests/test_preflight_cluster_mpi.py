"""``railbench check`` under a real mpirun (CPU ranks): per-node reports gathered to rank 0, odd nodes named.

Each rank stands for a node by pointing --sysfs-root at its own fixture tree (mpirun's MPMD ``:`` syntax),
so three ranks on this machine are three different nodes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.preflight import cluster
from bench.preflight.checks import CheckResult
from tests.support import REPO, find_mpirun, mpirun_command, rank_env
from tests.support.trees import fabric_trees

pytestmark = pytest.mark.mpi

ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}


def _run(ranks: list[list[str]], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if find_mpirun() is None:
        pytest.skip("mpirun not found")
    first, *rest = ([sys.executable, "-m", "bench", *args] for args in ranks)
    options = [a for name in ENV for a in ("-x", name)]
    command = mpirun_command(1, first, options=options, then=[(1, argv) for argv in rest])
    return subprocess.run(
        command, cwd=REPO, env=rank_env(ENV), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nodes")
    node_specs = {
        "node-a": fabric_trees.healthy_1cc(),
        "node-b": fabric_trees.port_down("mlx5_3"),
        "node-c": fabric_trees.healthy_1cc(),
        "node-d": replace(fabric_trees.healthy_1cc(), driver="535.129.03"),
    }
    return {name: fabric_trees.build(base / name, spec) for name, spec in node_specs.items()}


def test_mpirun_gathers_to_rank_0_and_names_the_odd_node(nodes: dict[str, Path]) -> None:
    ranks = [["check", "--profile", "lambda-1cc", "--sysfs-root", str(nodes[n]), "--json"] for n in nodes]
    proc = _run(ranks)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)  # only rank 0 prints
    assert doc["nranks"] == 4 and doc["verdict"] == "fail"
    verdicts = {n["node"].split("[")[1].rstrip("]"): n["verdict"] for n in doc["nodes"]}
    assert verdicts == {"node-a": "pass", "node-b": "fail", "node-c": "pass", "node-d": "pass"}
    cross = [r for r in doc["cross_node"] if r["status"] == "fail"]
    answers = [r for r in cross if r["check"] == "same-answers"]
    assert len(answers) == 1 and "[node-b]" in answers[0]["device"] and "fail (mlx5_3:1)" in answers[0]["reason"]
    versions = [r for r in cross if r["check"] == "same-versions"]
    assert len(versions) == 1 and "driver differs" in versions[0]["reason"] and "[node-d]" in versions[0]["device"]


def test_mpirun_ranks_of_one_node_agree_and_pass(nodes: dict[str, Path]) -> None:
    args = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(nodes["node-a"])]
    proc = _run([args, args, args])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(gathered from 3 ranks)" in proc.stdout and proc.stdout.count("verdict: PASS") == 1


def test_mpirun_one_node_with_bad_input_is_reported_not_hung(nodes: dict[str, Path], tmp_path: Path) -> None:
    good = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(nodes["node-a"])]
    bad = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tmp_path / "absent")]
    proc = _run([good, bad], timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not a directory" in proc.stdout


def test_compare_nodes_without_mpi() -> None:
    ok = (CheckResult("rail", "pass", "fine", "mlx5_1:1"),)
    versions = {k: "1" for k in cluster.VERSION_KEYS}
    reports = [
        cluster.NodeReport("n1", ok, versions),
        cluster.NodeReport("n2", ok, versions),
        cluster.NodeReport("n3", (CheckResult("rail", "fail", "down", "mlx5_1:1"),), {**versions, "nccl": "2"}),
    ]
    results = cluster.compare_nodes(reports)
    assert [(r.check, r.status, r.device) for r in results] == [
        ("same-answers", "fail", "n3"),
        ("same-versions", "fail", "n3"),
    ]
    assert "fail (mlx5_1:1) on n3; pass on n1, n2" in results[0].reason
    assert cluster.NodeReport.from_json(reports[2].to_json()) == reports[2]
