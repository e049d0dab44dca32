"""The one place railbench reads the process environment.

Contract
--------
A rank learns who it is from whichever launcher started it. ``discover_rank`` maps the launcher's variables
into one frozen ``RankInfo``; nothing else in railbench reads ``os.environ`` (use ``environ()``/``get()``
here, which also makes every reader testable with a plain dict).

Launchers, in the order they are recognised (the first match wins, because e.g. torchrun inside a Slurm
allocation still carries the allocation's ``SLURM_*`` variables):

=============  =====================================================================================
launcher       variables
=============  =====================================================================================
``openmpi``    ``OMPI_COMM_WORLD_RANK``, ``_SIZE``, ``_LOCAL_RANK``, ``_LOCAL_SIZE`` (Open MPI 4 and 5)
``torchrun``   ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``,
               ``MASTER_ADDR``, ``MASTER_PORT``; ``TORCHELASTIC_RUN_ID`` tells torchrun from the
               deepspeed launcher (``deepspeed``), which sets the same names
``pmix``       ``PMIX_RANK`` with ``PMIX_SIZE``/``OMPI_UNIVERSE_SIZE``; ``PMI_RANK``/``PMI_SIZE`` and
               ``MPI_LOCALRANKID``/``MPI_LOCALNRANKS`` (MPICH/Hydra, Intel MPI) as ``pmi``
``slurm``      ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, ``SLURM_NODEID``, ``SLURM_NNODES``,
               ``SLURM_STEP_TASKS_PER_NODE``/``SLURM_TASKS_PER_NODE``; only inside a job step
               (``SLURM_STEP_ID`` set), so a batch script that calls ``railbench run --np 4`` is not
               mistaken for rank 0 of an srun. ``srun --mpi=pmix`` also sets ``PMIX_RANK``: a task whose
               ``PMIX_RANK`` (or ``PMI_RANK``) is its ``SLURM_PROCID`` is srun's, and says so
=============  =====================================================================================

Under the MPI-family launchers ``master_addr``/``master_port`` are ``None``: rank 0 picks them and
broadcasts them with mpi4py (see ``bench.runtime.dist``), so the user sets nothing. ``node_rank``/``nnodes`` come
from the launcher where it says them, else from a uniform block mapping; ``bench.runtime.dist`` replaces them with
the truth from the gathered hostnames.

Slurm's own facts, outside a rank's identity: ``SLURMD_NODENAME`` (the node's name in slurm.conf, which slurmd
gives its HealthCheckProgram, prolog, epilog and every task) and the job a process runs in (``SLURM_JOB_ID``,
``SLURM_JOB_PARTITION``, ``SLURM_JOB_NODELIST``), read by :func:`slurm_node_name` and :func:`slurm_job`.

A RunPod Instant Cluster pod is not a rank: ``PRIMARY_ADDR``, ``PRIMARY_PORT``, ``NODE_RANK``,
``NUM_NODES`` and ``NUM_TRAINERS`` describe a per-node launch, returned by ``discover_node_launch``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from bench.bounded import ascii_digits
from bench.exits import UserError
from bench.textlines import printable

Launcher = Literal["openmpi", "torchrun", "deepspeed", "pmix", "pmi", "slurm"]

# Variables recorded in run.json: everything that changes how NCCL, UCX or gloo behave.
RECORDED_PREFIXES = ("NCCL_", "UCX_", "GLOO_", "TORCH_NCCL_", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "OMPI_MCA_")


PARENT_VAR = "RAILBENCH_PARENT"
"""Set for ranks a railbench parent started: the parent speaks for them when the run is interrupted."""


TORCH_CPP_LOG_LEVEL = "TORCH_CPP_LOG_LEVEL"
"""libtorch's C++ log threshold (``INFO``, ``WARNING``, ``ERROR``, ``FATAL``; PyTorch's "Debugging Environment
Variables", https://docs.pytorch.org/docs/stable/debugging_environment_variables.html), read when libtorch
loads: set before ``import torch`` or not at all."""


def quiet_torch_cpp_log() -> None:
    """A rank's C++ log threshold ``ERROR`` unless the user chose one: torch's warnings are not railbench's to
    pass on. c10d warns once per rank where a store peer's reverse lookup fails (``The hostname of the client
    socket cannot be retrieved. err=-3``, ``formatSockAddr`` in torch/csrc/distributed/c10d/socket.cpp: a node
    without a resolver, a network namespace), and logs a stack per rank when a peer dies; railbench says the
    fault once itself. The launcher railbench starts sets the same for its ranks; a rank under srun or the
    user's own mpirun sets it here, before torch is imported. An empty value counts as unset."""
    if not os.environ.get(TORCH_CPP_LOG_LEVEL):
        os.environ[TORCH_CPP_LOG_LEVEL] = "ERROR"


def environ() -> Mapping[str, str]:
    """The process environment (read-only view)."""
    return os.environ


def get(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """One variable from ``env`` (default: the process environment)."""
    return (os.environ if env is None else env).get(name, default)


def set_default(name: str, value: str) -> str:
    """Set ``name`` for this process and its children unless the user already set it; returns the value."""
    return os.environ.setdefault(name, value)


def set_value(name: str, value: str) -> None:
    """Set ``name`` for this process and its children, over any value it had (a rank's own setting)."""
    os.environ[name] = value


CUDA_ORDER_VAR = "CUDA_DEVICE_ORDER"
PCI_BUS_ORDER = "PCI_BUS_ID"


def cuda_device_order() -> str:
    """``CUDA_DEVICE_ORDER=PCI_BUS_ID`` for this rank unless the site set its own; returns the value in force.

    CUDA numbers GPUs fastest first unless told otherwise (``FASTEST_FIRST``, the CUDA C++ Programming Guide's
    environment variables), and reads the variable once, when the process first initialises CUDA: so a rank sets
    it before anything touches CUDA. In PCI bus order local rank k drives the GPU nvidia-smi and railbench's
    checks call GPU k (a permuted ``CUDA_VISIBLE_DEVICES`` still reorders it: causes are tied to rails by PCI
    address, ``bench.rails.measurement.local_causes``)."""
    return set_default(CUDA_ORDER_VAR, PCI_BUS_ORDER)


@contextlib.contextmanager
def scoped(name: str, value: str | None) -> Iterator[None]:
    """``name`` set to ``value`` inside the block, restored after (no change for None).

    For libraries that read a variable at one moment and have no other knob: gloo binds a new process
    group's sockets to the interface ``GLOO_SOCKET_IFNAME`` names when the group is made.
    """
    if value is None:
        yield
        return
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def recorded_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The NCCL_*/UCX_*/GLOO_* (and a few more) variables that belong in run.json."""
    src = os.environ if env is None else env
    return {k: v for k, v in sorted(src.items()) if k.startswith(RECORDED_PREFIXES)}


@dataclass(frozen=True)
class RankInfo:
    """Who this process is, as its launcher told it."""

    rank: int
    """Global rank, 0 .. world_size-1."""
    local_rank: int
    """Rank among the processes on this node; picks the GPU and the rail."""
    world_size: int
    local_world_size: int
    node_rank: int
    """Index of this node, 0 .. nnodes-1."""
    nnodes: int
    master_addr: str | None
    """Rendezvous address; None until rank 0 picks it (MPI-family launchers)."""
    master_port: int | None
    launcher: Launcher

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise UserError(
                f"rank {self.rank} is outside 0..{self.world_size - 1} (launcher {self.launcher}): "
                "the launcher's rank and world-size variables disagree"
            )
        if not 0 <= self.local_rank < self.local_world_size:
            raise UserError(
                f"local rank {self.local_rank} is outside 0..{self.local_world_size - 1} "
                f"(launcher {self.launcher}): check the launcher's local-rank variables"
            )
        if self.local_world_size > self.world_size:
            raise UserError(
                f"local world size {self.local_world_size} exceeds world size {self.world_size} "
                f"(launcher {self.launcher}): check the launcher's size variables"
            )


@dataclass(frozen=True)
class NodeLaunch:
    """A per-node launch (bare clusters, RunPod pods): this node starts ``nproc_per_node`` ranks."""

    nnodes: int
    node_rank: int
    nproc_per_node: int
    main_address: str
    main_port: int
    source: Literal["cli", "runpod"]


def _int(env: Mapping[str, str], name: str, hint: str, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        raise UserError(f"{name} is not set: {hint}")
    try:
        if not ascii_digits(raw.strip().removeprefix("-")):  # int() reads '١' and '1_0', and '²' raises
            raise ValueError(raw)
        value = int(raw.strip())
    except ValueError:
        raise UserError(f"{name}={printable(raw)!r} is not an integer: {hint}") from None
    if value < minimum:
        raise UserError(f"{name}={value} must be at least {minimum}: {hint}")
    return value


def _opt_int(env: Mapping[str, str], name: str, hint: str, minimum: int = 0) -> int | None:
    return _int(env, name, hint, minimum) if env.get(name, "").strip() else None


def _port(env: Mapping[str, str], name: str, hint: str) -> int:
    port = _int(env, name, hint, minimum=1)
    if port > 65535:
        raise UserError(f"{name}={port} is not a TCP port (1..65535): {hint}")
    return port


def _slurm_tasks_on_node(spec: str, node_id: int) -> int | None:
    """Tasks on node ``node_id`` from Slurm's compressed list, e.g. ``"8(x2),4"``."""
    index = 0
    for part in spec.split(","):
        match = re.fullmatch(r"\s*([0-9]+)(?:\(x([0-9]+)\))?\s*", part)
        if not match:
            return None
        tasks, repeat = int(match.group(1)), int(match.group(2) or 1)
        if index <= node_id < index + repeat:
            return tasks
        index += repeat
    return None


def _block_mapping(rank: int, world_size: int, local_world_size: int) -> tuple[int, int]:
    nnodes = max(1, -(-world_size // local_world_size))
    return min(rank // local_world_size, nnodes - 1), nnodes


def _from_openmpi(env: Mapping[str, str]) -> RankInfo:
    hint = "these are set by mpirun; launch with 'mpirun -np N railbench run ...'"
    rank = _int(env, "OMPI_COMM_WORLD_RANK", hint)
    size = _int(env, "OMPI_COMM_WORLD_SIZE", hint, 1)
    local_rank = _opt_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", hint)
    local_size = _opt_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", hint, 1)
    local_rank = rank if local_rank is None else local_rank
    local_size = size if local_size is None else local_size
    node_rank, nnodes = _block_mapping(rank, size, local_size)
    return RankInfo(rank, local_rank, size, local_size, node_rank, nnodes, None, None, "openmpi")


def _from_torch_env(env: Mapping[str, str]) -> RankInfo:
    launcher: Launcher = "torchrun" if "TORCHELASTIC_RUN_ID" in env else "deepspeed"
    hint = f"{launcher} sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every rank"
    rank = _int(env, "RANK", hint)
    size = _int(env, "WORLD_SIZE", hint, 1)
    local_rank = _int(env, "LOCAL_RANK", hint)
    local_size = _opt_int(env, "LOCAL_WORLD_SIZE", hint, 1) or _opt_int(env, "LOCAL_SIZE", hint, 1)
    if local_size is None:
        local_size = size
    addr = env.get("MASTER_ADDR", "").strip()
    if not addr:
        raise UserError(f"MASTER_ADDR is not set: {hint}")
    port = _port(env, "MASTER_PORT", hint)
    node_rank = _opt_int(env, "GROUP_RANK", hint)
    if node_rank is None:
        node_rank = _opt_int(env, "CROSS_RANK", hint)
    block_node, nnodes = _block_mapping(rank, size, local_size)
    node_rank = block_node if node_rank is None else node_rank
    nnodes = max(nnodes, node_rank + 1)
    return RankInfo(rank, local_rank, size, local_size, node_rank, nnodes, addr, port, launcher)


def _from_pmi(env: Mapping[str, str]) -> RankInfo:
    if "PMIX_RANK" in env:
        launcher: Launcher = "pmix"
        rank_var = "PMIX_RANK"
        size_var = next((v for v in ("PMIX_SIZE", "OMPI_UNIVERSE_SIZE", "SLURM_NTASKS") if v in env), "PMIX_SIZE")
    else:
        launcher, rank_var, size_var = "pmi", "PMI_RANK", "PMI_SIZE"
    hint = f"{launcher} launchers set {rank_var} and {size_var}; launch with mpirun or srun"
    rank = _int(env, rank_var, hint)
    size = _int(env, size_var, hint, 1)
    local_rank = _opt_int(env, "MPI_LOCALRANKID", hint)
    if local_rank is None:
        local_rank = _opt_int(env, "SLURM_LOCALID", hint)
    local_size = _opt_int(env, "MPI_LOCALNRANKS", hint, 1)
    if local_rank is None or local_size is None:
        local_rank, local_size = rank, size  # corrected by bench.runtime.dist from the gathered hostnames
    node_rank, nnodes = _block_mapping(rank, size, local_size)
    return RankInfo(rank, local_rank, size, local_size, node_rank, nnodes, None, None, launcher)


def _from_slurm(env: Mapping[str, str]) -> RankInfo:
    hint = "srun sets these for every task; launch with 'srun --ntasks-per-node=8 railbench run ...'"
    rank = _int(env, "SLURM_PROCID", hint)
    size = _int(env, "SLURM_NTASKS", hint, 1)
    local_rank = _int(env, "SLURM_LOCALID", hint)
    node_rank = _int(env, "SLURM_NODEID", hint)
    nnodes = _opt_int(env, "SLURM_NNODES", hint, 1) or _opt_int(env, "SLURM_JOB_NUM_NODES", hint, 1) or 1
    spec = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or ""
    local_size = _slurm_tasks_on_node(spec, node_rank) if spec else None
    if local_size is None:
        local_size = max(1, size // nnodes)
    return RankInfo(rank, local_rank, size, local_size, node_rank, nnodes, None, None, "slurm")


def discover_rank(env: Mapping[str, str] | None = None) -> RankInfo | None:
    """The rank this process is, or None when no launcher started it."""
    env = os.environ if env is None else env
    if "OMPI_COMM_WORLD_RANK" in env:
        return _from_openmpi(env)
    if "RANK" in env and "LOCAL_RANK" in env:
        return _from_torch_env(env)
    in_step = "SLURM_PROCID" in env and ("SLURM_STEP_ID" in env or "SLURM_STEPID" in env)
    pmi_rank = env.get("PMIX_RANK", env.get("PMI_RANK"))
    if pmi_rank is not None and not (in_step and pmi_rank.strip() == env["SLURM_PROCID"].strip()):
        return _from_pmi(env)
    if in_step:
        return _from_slurm(env)
    return None


_PMI_PREFIXES = ("PMIX_", "PMI_")


def missing_pmi(info: RankInfo, env: Mapping[str, str]) -> str | None:
    """Why ``info`` cannot form a world, or None: srun started several tasks without a PMI plugin.

    Under ``srun`` the ranks find each other through MPI (mpi4py), and MPI needs the PMI server srun starts
    only with ``--mpi=pmix`` (or ``MpiDefault=pmix`` in slurm.conf). Without it every task is a world of one,
    and the mismatch would surface later as "a different MPI". PMIx and PMI-2 both leave ``PMIX_*``/``PMI_*``
    variables in the task's environment, so their absence says it.
    """
    if info.launcher != "slurm" or info.world_size <= 1:
        return None
    if any(name.startswith(_PMI_PREFIXES) for name in env):
        return None
    return (
        f"srun started {info.world_size} tasks without a PMI plugin, so they cannot find each other: "
        "launch with 'srun --mpi=pmix ...' (or set MpiDefault=pmix in slurm.conf)"
    )


def discover_launched_rank(env: Mapping[str, str] | None = None) -> RankInfo | None:
    """:func:`discover_rank`, refusing (UserError) a launch whose ranks cannot form one world."""
    env = os.environ if env is None else env
    info = discover_rank(env)
    problem = missing_pmi(info, env) if info is not None else None
    if problem is not None:
        raise UserError(problem)
    return info


@dataclass(frozen=True)
class SlurmJob:
    """The Slurm job this process runs in."""

    job_id: str
    partition: str | None
    nodelist: str | None
    """Slurm's compressed list of the job's nodes, ``node[01-03]``."""


def slurm_node_name(env: Mapping[str, str] | None = None) -> str | None:
    """This node's name in slurm.conf (``SLURMD_NODENAME``), where slurmd started this process."""
    name = (os.environ if env is None else env).get("SLURMD_NODENAME", "").strip()
    return name or None


def slurm_job(env: Mapping[str, str] | None = None) -> SlurmJob | None:
    """The job this process runs in (``SLURM_JOB_ID``, else the older ``SLURM_JOBID``), or None outside one."""
    env = os.environ if env is None else env
    job_id = (env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or "").strip()
    if not job_id:
        return None
    partition = env.get("SLURM_JOB_PARTITION", "").strip() or None
    nodelist = (env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "").strip() or None
    return SlurmJob(job_id, partition, nodelist)


def discover_node_launch(env: Mapping[str, str] | None = None) -> NodeLaunch | None:
    """A RunPod Instant Cluster per-pod launch from its variables, or None when they are absent."""
    env = os.environ if env is None else env
    if "PRIMARY_ADDR" not in env and "NUM_TRAINERS" not in env:
        return None
    hint = (
        "RunPod Instant Clusters set PRIMARY_ADDR, PRIMARY_PORT, NODE_RANK, NUM_NODES and NUM_TRAINERS "
        "on every pod; set the missing one by hand or pass --nnodes/--node-rank/--main-address"
    )
    addr = (env.get("PRIMARY_ADDR") or env.get("MASTER_ADDR") or "").strip()
    if not addr:
        raise UserError(f"PRIMARY_ADDR is not set: {hint}")
    port_var = "PRIMARY_PORT" if env.get("PRIMARY_PORT", "").strip() else "MASTER_PORT"
    port = _port(env, port_var, hint) if env.get(port_var, "").strip() else 29500
    nnodes = _int(env, "NUM_NODES", hint, 1)
    node_rank = _int(env, "NODE_RANK", hint)
    nproc = _int(env, "NUM_TRAINERS", hint, 1)
    if node_rank >= nnodes:
        raise UserError(f"NODE_RANK={node_rank} is not below NUM_NODES={nnodes}: {hint}")
    world = _opt_int(env, "WORLD_SIZE", hint, 1)
    if world is not None and world != nnodes * nproc:
        raise UserError(
            f"WORLD_SIZE={world} but NUM_NODES x NUM_TRAINERS = {nnodes} x {nproc} = {nnodes * nproc}: "
            "the pod variables disagree; fix WORLD_SIZE or NUM_TRAINERS"
        )
    return NodeLaunch(nnodes, node_rank, nproc, addr, port, "runpod")
