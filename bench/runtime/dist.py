"""Process-group start-up for every launcher, and the facts every rank needs afterwards.

Under the MPI family (mpirun, srun, PMI) the user sets nothing: mpi4py tells each rank its hostname's
peers (so local rank, node rank and node count come from the hostnames, not from guesses), rank 0 opens a
TCPStore on a free port and broadcasts the address. Under torchrun and the deepspeed launcher the usual
``env://`` rendezvous gives the same store. railbench keeps that store: the hang watchdog
(``bench.runtime.watchdog``) and the agreement on the output directory use it.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from bench.errors import EXIT_USAGE, InfraError, UserError
from bench.netaddr import rendezvous_address
from bench.runtime import signals
from bench.runtime.env import RankInfo, scoped

Backend = Literal["auto", "nccl", "gloo"]


@dataclass(frozen=True)
class DistContext:
    """What a rank knows once the world process group is up."""

    info: RankInfo
    """Launcher facts, with local rank, node rank and node count corrected from the gathered hostnames."""
    backend: Literal["nccl", "gloo"]
    device: Any
    """torch.device the buffers live on (cuda:<local rank> or cpu)."""
    hosts: tuple[str, ...]
    """Hostname of every rank, in rank order."""
    store: Any
    """The rendezvous key-value store (torch.distributed.Store)."""
    world_ifname: str | None = None
    """The one interface a gloo world group is bound to (``--oob-ifname``); None when NCCL picks its own."""

    @property
    def node_hosts(self) -> tuple[str, ...]:
        """Hostnames in node order (node i is the host of the lowest rank on it)."""
        return tuple(dict.fromkeys(self.hosts))


def node_layout(hosts: list[str] | tuple[str, ...], rank: int) -> tuple[int, int, int, int]:
    """(local_rank, local_world_size, node_rank, nnodes) of ``rank`` from every rank's hostname."""
    nodes = list(dict.fromkeys(hosts))
    mine = hosts[rank]
    peers = [r for r, h in enumerate(hosts) if h == mine]
    return peers.index(rank), len(peers), nodes.index(mine), len(nodes)


def resolve_backend(requested: Backend) -> Literal["nccl", "gloo"]:
    """``auto`` is nccl when CUDA is available, gloo otherwise; nccl without CUDA is a usage error."""
    import torch

    cuda = torch.cuda.is_available()
    if requested == "auto":
        return "nccl" if cuda else "gloo"
    if requested == "nccl" and not cuda:
        raise UserError("--backend nccl needs CUDA GPUs but torch sees none on this node: use --backend gloo")
    return requested


def _mpi_rendezvous(
    info: RankInfo, oob_ifname: str | None, timeout: timedelta
) -> tuple[RankInfo, tuple[str, ...], Any]:
    import torch.distributed as dist
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.Get_size() != info.world_size or comm.Get_rank() != info.rank:
        raise UserError(
            f"MPI says rank {comm.Get_rank()} of {comm.Get_size()} but the launcher variables say "
            f"{info.rank} of {info.world_size}: mpi4py is linked against a different MPI than the one that "
            "launched railbench; use that MPI's mpirun"
        )
    hosts = tuple(comm.allgather(socket.gethostname()))
    local_rank, local_size, node_rank, nnodes = node_layout(hosts, info.rank)
    info = dataclasses.replace(
        info, local_rank=local_rank, local_world_size=local_size, node_rank=node_rank, nnodes=nnodes
    )
    if info.rank == 0:
        addr = rendezvous_address(oob_ifname, single_host=nnodes == 1)
        store = dist.TCPStore(addr, 0, info.world_size, True, timeout=timeout, wait_for_workers=False)
        addr_port = comm.bcast((addr, store.port), root=0)
    else:
        addr_port = comm.bcast(None, root=0)
        store = dist.TCPStore(addr_port[0], addr_port[1], info.world_size, False, timeout=timeout)
    info = dataclasses.replace(info, master_addr=addr_port[0], master_port=addr_port[1])
    return info, hosts, store


def _env_rendezvous(info: RankInfo, timeout: timedelta) -> Any:
    import torch.distributed as dist

    store, _, _ = next(dist.rendezvous("env://", info.rank, info.world_size, timeout=timeout))
    return store


def init_distributed(info: RankInfo, backend: Backend, timeout_s: float, oob_ifname: str | None = None) -> DistContext:
    """Start the world process group for ``info``; returns the corrected facts and the store."""
    import torch
    import torch.distributed as dist

    chosen = resolve_backend(backend)
    timeout = timedelta(seconds=timeout_s)
    if info.master_addr is None:
        info, hosts, store = _mpi_rendezvous(info, oob_ifname, timeout)
    else:
        store = _env_rendezvous(info, timeout)
        hosts = None
    if chosen == "nccl":
        device = torch.device("cuda", info.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    # The process group's own timeout is longer than the watchdog's, so that the watchdog, which can name
    # the ranks that did not arrive, speaks first.
    dist.init_process_group(
        chosen,
        store=dist.PrefixStore("pg", store),
        rank=info.rank,
        world_size=info.world_size,
        timeout=timedelta(seconds=2 * timeout_s + 30),
    )
    if hosts is None:
        gathered: list[Any] = [None] * info.world_size
        dist.all_gather_object(gathered, socket.gethostname())
        hosts = tuple(str(h) for h in gathered)
        _, local_size, node_rank, nnodes = node_layout(hosts, info.rank)
        info = dataclasses.replace(info, node_rank=node_rank, nnodes=nnodes, local_world_size=local_size)
    world_ifname = oob_ifname if chosen == "gloo" else None
    return DistContext(info=info, backend=chosen, device=device, hosts=hosts, store=store, world_ifname=world_ifname)


def run_as_rank(
    info: RankInfo,
    backend: Backend,
    timeout_s: float,
    oob_ifname: str | None,
    body: Callable[[DistContext], int],
) -> int:
    """Start the world group, run ``body`` on it and always tear it down; every command's rank entry.

    Bad input is said once, by rank 0 (the others return 2 quietly). An infrastructure fault is reported by
    rank 0 for everyone; the other ranks hold back a few seconds, so they speak only when the launcher has
    not stopped them by then, i.e. when rank 0 itself is what was lost.
    """
    signals.install()  # SIGTERM (scancel, timeout) ends the run as Ctrl-C does: recorded as interrupted
    try:
        # gloo's world group binds GLOO_SOCKET_IFNAME as it is at start-up: the management interface.
        with scoped("GLOO_SOCKET_IFNAME", oob_ifname):
            ctx = init_distributed(info, backend, timeout_s, oob_ifname)
    except UserError:
        if info.rank != 0:
            return EXIT_USAGE
        raise
    try:
        return body(ctx)
    except UserError:
        if ctx.info.rank != 0:
            return EXIT_USAGE
        raise
    except InfraError:
        if ctx.info.rank != 0:
            time.sleep(5.0)
        raise
    finally:
        shutdown()


def shutdown() -> None:
    """Tear the process group down if it is up."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_str(store: Any, key: str, value: str | None, rank: int, timeout_s: float) -> str:
    """Rank 0's ``value`` for ``key``, on every rank (through the store, so it works before any collective)."""
    if rank == 0:
        store.set(f"railbench/{key}", value or "")
        return value or ""
    store.wait([f"railbench/{key}"], timedelta(seconds=timeout_s))
    return store.get(f"railbench/{key}").decode()
