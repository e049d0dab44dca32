"""railbench's Slurm recipes under a real slurmctld and a slurmd per node (tests/slurm_testbed.py): ``srun``
for run and rails across the node namespaces, with the rails on their veth links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns_testbed import PROFILE, NetnsCluster, build_cluster
from tests.slurm_testbed import SlurmCluster, build_slurm

pytestmark = [pytest.mark.slurm, pytest.mark.netns, pytest.mark.slow]

NODES = 3


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    with build_cluster(nodes=NODES, rails=2) as bed, build_slurm(bed) as cluster:
        (bed.workdir / "netns.toml").write_text(PROFILE)
        yield cluster


@pytest.fixture
def cluster(slurm: SlurmCluster) -> Iterator[SlurmCluster]:
    """The module's cluster with every rail up and every node back in service, before and after each test."""
    slurm.bed.clear_faults()
    yield slurm
    slurm.bed.clear_faults()


def profile(bed: NetnsCluster) -> str:
    return str(bed.workdir / "netns.toml")


def test_srun_run_spans_the_node_namespaces(cluster: SlurmCluster, tmp_path: Path) -> None:
    """The README's recipe, ``srun -N 3 --ntasks-per-node=2 railbench run``: srun's tasks find each other
    through PMIx (MpiDefault=pmix) and every node's ranks run under its own hostname."""
    out = tmp_path / "run"
    done = cluster.command(
        [
            "srun",
            f"-N{NODES}",
            "--ntasks-per-node=2",
            "railbench",
            "run",
            "--profile",
            profile(cluster.bed),
            "--oob-ifname",
            "mgmt",
            "-b",
            "1K",
            "-e",
            "64K",
            "-n",
            "2",
            "-w",
            "1",
            "-c",
            "--out",
            str(out),
            "--no-history",
        ],
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["launcher"] == "slurm" and meta["status"] == "complete" and meta["exit_status"] == 0
    assert meta["hosts"] == list(cluster.nodes) and meta["nnodes"] == NODES and meta["nranks"] == 2 * NODES
    assert [(r["host"], r["local_rank"]) for r in meta["ranks"]] == [
        (node, local) for node in cluster.nodes for local in range(2)
    ]
    assert "# Out of bounds values : 0 OK" in done.stdout


def test_srun_without_a_reachable_rendezvous_is_one_line(cluster: SlurmCluster, tmp_path: Path) -> None:
    """A Slurm node whose name resolves nowhere and that has no default route (the testbed's, and many a
    cluster's compute nodes): rank 0 says in one line what to pass, every task exits 2, none hangs."""
    done = cluster.command(
        ["srun", f"-N{NODES}", "--ntasks-per-node=1", "railbench", "run", "-e", "1K", "--out", str(tmp_path / "r")],
        timeout=180,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("railbench: error:")]
    assert len(said) == 1 and "--oob-ifname" in said[0], done.stderr
    assert "Traceback" not in done.stderr


def test_srun_rails_runs_on_the_veth_rails(cluster: SlurmCluster, tmp_path: Path) -> None:
    """``srun ... railbench rails`` across the node namespaces: each rail group on its own veth link, every
    pair measured, nothing named on a healthy testbed."""
    out = tmp_path / "rails"
    done = cluster.command(
        [
            "srun",
            f"-N{NODES}",
            "--ntasks-per-node=2",
            "railbench",
            "rails",
            "--profile",
            profile(cluster.bed),
            "--out",
            str(out),
            "--no-history",
            "--timeout",
            "120",
        ],
        timeout=360,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((out / "rails.json").read_text())
    assert doc["defects"] == []
    for rail in doc["rails"]:
        assert rail["devices"] == {n: f"rail{rail['rail']}" for n in cluster.nodes}
    pairs = {(m["rail"], m["node"], m["peer"]) for m in doc["measurements"] if m["kind"] == "pair"}
    assert len(pairs) == 2 * NODES * (NODES - 1)  # both directions of every pair, on both rails
    meta = json.loads((out / "run.json").read_text())
    assert meta["launcher"] == "slurm" and meta["hosts"] == list(cluster.nodes) and meta["verdict"] == "pass"
