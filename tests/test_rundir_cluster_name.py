"""The cluster's default name is what names the cluster, not the host a run started on (issue 43: a new user's
runs were filed under the host name): Slurm's ``SLURM_CLUSTER_NAME`` where Slurm ran the job, else the name the
ranks' hosts share, each without its domain and trailing number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.rundir.files import default_cluster_name
from tests.support import railbench

NO_SLURM: dict[str, str] = {}


def test_the_ranks_hosts_name_the_cluster_by_the_stem_they_share() -> None:
    assert default_cluster_name(["gpu-node017.lambda", "gpu-node018.lambda"], NO_SLURM) == "gpu-node"
    # the stem shared by whole words: never a name cut inside a word, nor the number of a word kept whole
    assert default_cluster_name(["a100-east-01", "a100-west-01", "a100-east-02"], NO_SLURM) == "a100"
    assert default_cluster_name(["gpu-alpha", "gpu-alto"], NO_SLURM) == "gpu"
    # nothing shared: the first host's stem; one host: its own, as before
    assert default_cluster_name(["alpha", "beta"], NO_SLURM) == "alpha"
    assert default_cluster_name("gpu-node017.lambda", NO_SLURM) == "gpu-node"
    assert default_cluster_name(["0042", "0043"], NO_SLURM) == "local"


def test_slurm_names_the_cluster_where_it_ran_the_job() -> None:
    slurm = {"SLURM_CLUSTER_NAME": "perlmutter"}
    assert default_cluster_name(["nid001234", "nid001235"], slurm) == "perlmutter"
    # a value that could not name a run directory or a history's cluster is not taken
    assert default_cluster_name(["gpu-node01"], {"SLURM_CLUSTER_NAME": "a\x1bb"}) == "gpu-node"
    assert default_cluster_name(["gpu-node01"], {"SLURM_CLUSTER_NAME": "x" * 65}) == "gpu-node"


@pytest.mark.mpi
def test_a_run_without_cluster_is_filed_under_slurms_cluster_name(tmp_path: Path) -> None:
    args = ["run", "--np", "2", "-b", "1K", "-e", "4K", "-n", "1", "-w", "1", "--no-history"]
    done = railbench(args, cwd=tmp_path, env={"SLURM_CLUSTER_NAME": "testcluster"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run_dir,) = (tmp_path / "reports" / "runs").iterdir()
    assert run_dir.name.endswith("-testcluster"), run_dir.name
    assert json.loads((run_dir / "run.json").read_text())["cluster"] == "testcluster"
