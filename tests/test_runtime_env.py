"""Each launcher's environment maps to the same RankInfo; bad values say which variable and how to fix it."""

from __future__ import annotations

import pytest

from bench.exits import UserError
from bench.runtime.env import (
    NodeLaunch,
    RankInfo,
    discover_launched_rank,
    discover_node_launch,
    discover_rank,
    missing_pmi,
    recorded_environment,
)


def test_no_launcher_is_none() -> None:
    assert discover_rank({"HOME": "/root", "PATH": "/bin"}) is None


@pytest.mark.parametrize("version_vars", [{}, {"PMIX_RANK": "5"}])  # Open MPI 5 also sets PMIX_RANK
def test_openmpi(version_vars: dict[str, str]) -> None:
    env = {
        "OMPI_COMM_WORLD_RANK": "5",
        "OMPI_COMM_WORLD_SIZE": "16",
        "OMPI_COMM_WORLD_LOCAL_RANK": "5",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "8",
        **version_vars,
    }
    assert discover_rank(env) == RankInfo(5, 5, 16, 8, 0, 2, None, None, "openmpi")


def test_openmpi_second_node_block_mapping() -> None:
    env = {
        "OMPI_COMM_WORLD_RANK": "11",
        "OMPI_COMM_WORLD_SIZE": "16",
        "OMPI_COMM_WORLD_LOCAL_RANK": "3",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "8",
    }
    info = discover_rank(env)
    assert info is not None and (info.node_rank, info.nnodes) == (1, 2)


def test_torchrun() -> None:
    env = {
        "RANK": "9",
        "WORLD_SIZE": "16",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "8",
        "GROUP_RANK": "1",
        "MASTER_ADDR": "10.10.10.16",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_RUN_ID": "x",
    }
    assert discover_rank(env) == RankInfo(9, 1, 16, 8, 1, 2, "10.10.10.16", 29500, "torchrun")


def test_deepspeed_launcher() -> None:
    env = {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_SIZE": "2",
        "CROSS_RANK": "1",
        "MASTER_ADDR": "node0",
        "MASTER_PORT": "29500",
    }
    assert discover_rank(env) == RankInfo(3, 1, 4, 2, 1, 2, "node0", 29500, "deepspeed")


def test_torchrun_wins_over_enclosing_slurm_allocation() -> None:
    env = {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "a",
        "MASTER_PORT": "1",
        "SLURM_PROCID": "0",
        "SLURM_STEP_ID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    info = discover_rank(env)
    assert info is not None and info.launcher == "deepspeed" and info.world_size == 2


def test_slurm_srun() -> None:
    env = {
        "SLURM_PROCID": "12",
        "SLURM_NTASKS": "16",
        "SLURM_LOCALID": "4",
        "SLURM_NODEID": "1",
        "SLURM_NNODES": "2",
        "SLURM_STEP_TASKS_PER_NODE": "8(x2)",
        "SLURM_STEP_ID": "0",
    }
    assert discover_rank(env) == RankInfo(12, 4, 16, 8, 1, 2, None, None, "slurm")


def test_slurm_uneven_tasks_per_node() -> None:
    env = {
        "SLURM_PROCID": "9",
        "SLURM_NTASKS": "10",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "2",
        "SLURM_NNODES": "3",
        "SLURM_TASKS_PER_NODE": "4(x2),2",
        "SLURM_STEP_ID": "3",
    }
    info = discover_rank(env)
    assert info is not None and info.local_world_size == 2


SRUN_16 = {
    "SLURM_PROCID": "12",
    "SLURM_NTASKS": "16",
    "SLURM_LOCALID": "4",
    "SLURM_NODEID": "1",
    "SLURM_NNODES": "2",
    "SLURM_STEP_TASKS_PER_NODE": "8(x2)",
    "SLURM_STEP_ID": "0",
}


def test_srun_without_a_pmi_plugin_is_one_line_with_the_fix() -> None:
    info = discover_rank(SRUN_16)
    assert info is not None and missing_pmi(info, SRUN_16) is not None
    with pytest.raises(UserError, match=r"srun started 16 tasks without a PMI plugin.*'srun --mpi=pmix \.\.\.'"):
        discover_launched_rank(SRUN_16)


@pytest.mark.parametrize(
    "pmi",
    [
        {"PMIX_RANK": "12", "PMIX_NAMESPACE": "slurm.pmix.7.0"},
        {"PMI_RANK": "12", "PMI_SIZE": "16", "PMI_FD": "5"},
        {"PMI_FD": "5", "PMI_JOBID": "7.0"},
    ],
)
def test_srun_with_pmix_or_pmi2_forms_a_world(pmi: dict[str, str]) -> None:
    info = discover_launched_rank({**SRUN_16, **pmi})
    assert info is not None and info.world_size == 16
    # srun's own tasks say so (run.json's launcher), with srun's local rank and node
    assert (info.launcher, info.local_rank, info.local_world_size, info.node_rank) == ("slurm", 4, 8, 1)


def test_a_pmix_rank_other_than_sruns_is_not_taken_for_srun() -> None:
    """Something inside a job step that numbers its own processes (another launcher's PMIx server) is that
    launcher's, not srun's."""
    info = discover_launched_rank({**SRUN_16, "PMIX_RANK": "3", "PMIX_SIZE": "4"})
    assert info is not None and (info.launcher, info.rank, info.world_size) == ("pmix", 3, 4)


def test_a_single_srun_task_needs_no_pmi() -> None:
    one = {
        **SRUN_16,
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "1",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NNODES": "1",
        "SLURM_STEP_TASKS_PER_NODE": "1",
    }
    info = discover_launched_rank(one)
    assert info is not None and info.launcher == "slurm" and info.world_size == 1


def test_other_launchers_are_not_asked_for_pmi() -> None:
    env = {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_RUN_ID": "x",
        **SRUN_16,
    }
    info = discover_launched_rank(env)
    assert info is not None and info.launcher == "torchrun"


def test_slurm_batch_script_is_not_a_rank() -> None:
    # sbatch sets SLURM_PROCID=0 in the batch script itself; only a job step (srun) is a rank.
    assert discover_rank({"SLURM_PROCID": "0", "SLURM_NTASKS": "16", "SLURM_JOB_ID": "7"}) is None


def test_mpich_hydra_pmi() -> None:
    env = {"PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"}
    assert discover_rank(env) == RankInfo(3, 1, 4, 2, 1, 2, None, None, "pmi")


def test_pmix_only() -> None:
    info = discover_rank({"PMIX_RANK": "2", "PMIX_SIZE": "4"})
    assert info is not None and (info.launcher, info.rank, info.world_size) == ("pmix", 2, 4)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"OMPI_COMM_WORLD_RANK": "x", "OMPI_COMM_WORLD_SIZE": "4"}, "OMPI_COMM_WORLD_RANK='x'"),
        ({"OMPI_COMM_WORLD_RANK": "4", "OMPI_COMM_WORLD_SIZE": "4"}, "outside 0..3"),
        ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "1"}, "MASTER_ADDR is not set"),
        (
            {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "70000"},
            "MASTER_PORT=70000 is not a TCP port",
        ),
        ({"RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, "WORLD_SIZE is not set"),
        (
            {
                "RANK": "0",
                "LOCAL_RANK": "3",
                "LOCAL_WORLD_SIZE": "2",
                "WORLD_SIZE": "4",
                "MASTER_ADDR": "a",
                "MASTER_PORT": "1",
            },
            "local rank 3 is outside 0..1",
        ),
        ({"SLURM_PROCID": "0", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "-1"}, "SLURM_NTASKS=-1 must be at least 1"),
    ],
)
def test_bad_launcher_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(UserError, match=names.replace("(", r"\(").replace(")", r"\)")):
        discover_rank(env)


def test_runpod_pod_is_a_node_launch() -> None:
    env = {
        "PRIMARY_ADDR": "10.65.0.2",
        "PRIMARY_PORT": "29400",
        "NODE_RANK": "1",
        "NUM_NODES": "2",
        "NUM_TRAINERS": "8",
        "WORLD_SIZE": "16",
        "NODE_ADDR": "10.65.0.3",
    }
    assert discover_rank(env) is None  # WORLD_SIZE alone is not a rank
    assert discover_node_launch(env) == NodeLaunch(2, 1, 8, "10.65.0.2", 29400, "runpod")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PRIMARY_ADDR": "a", "NODE_RANK": "2", "NUM_NODES": "2", "NUM_TRAINERS": "8"}, "NODE_RANK=2 is not below"),
        (
            {"PRIMARY_ADDR": "a", "NODE_RANK": "0", "NUM_NODES": "2", "NUM_TRAINERS": "8", "WORLD_SIZE": "8"},
            "WORLD_SIZE=8 but NUM_NODES x NUM_TRAINERS",
        ),
        ({"NUM_TRAINERS": "8", "NODE_RANK": "0", "NUM_NODES": "1"}, "PRIMARY_ADDR is not set"),
        ({"PRIMARY_ADDR": "a", "NODE_RANK": "0", "NUM_TRAINERS": "8"}, "NUM_NODES is not set"),
    ],
)
def test_runpod_inconsistent(env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        discover_node_launch(env)


def test_recorded_environment_keeps_only_fabric_variables() -> None:
    env = {"NCCL_IB_HCA": "^=mlx5_0", "UCX_TLS": "rc", "GLOO_SOCKET_IFNAME": "eth0", "HOME": "/root"}
    assert recorded_environment(env) == {"GLOO_SOCKET_IFNAME": "eth0", "NCCL_IB_HCA": "^=mlx5_0", "UCX_TLS": "rc"}
