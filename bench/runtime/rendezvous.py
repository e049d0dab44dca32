"""The rendezvous every rank goes through before its process group exists: under the MPI family, mpi4py's
allgather of the hostnames (so local rank, node rank and node count come from the hostnames, not from guesses) and
rank 0's TCPStore on a free port, its address broadcast; under torchrun and the deepspeed launcher the ``env://``
rendezvous. Either way every rank ends with the same store (``bench.runtime.dist.init_distributed``)."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from bench.exits import EXIT_INFRA, UserError
from bench.netaddr import rendezvous_address
from bench.runtime.env import RankInfo

if TYPE_CHECKING:
    from mpi4py import MPI
    from torch.distributed import Store


def node_layout(hosts: list[str] | tuple[str, ...], rank: int) -> tuple[int, int, int, int]:
    """(local_rank, local_world_size, node_rank, nnodes) of ``rank`` from every rank's hostname."""
    nodes = list(dict.fromkeys(hosts))
    mine = hosts[rank]
    peers = [r for r, h in enumerate(hosts) if h == mine]
    return peers.index(rank), len(peers), nodes.index(mine), len(nodes)


def mpi_rendezvous(
    info: RankInfo, oob_ifname: str | None, timeout: timedelta
) -> tuple[RankInfo, tuple[str, ...], Store]:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    every_rank_reached(comm, info, timeout)
    return mpi_exchange(comm, info, oob_ifname, timeout)


def every_rank_reached(comm: MPI.Intracomm, info: RankInfo, timeout: timedelta) -> None:
    """Wait, within the start-up timeout, until every rank has reached the rendezvous. MPI's blocking
    collectives have no deadline and hold the interpreter (no Python thread or signal handler runs): under a
    launcher railbench did not start (srun, the user's mpirun) a wire-up that never completes (a transport that
    cannot reach a peer) held every rank in the first allgather for ever, and srun with it. A non-blocking
    barrier polled against the clock cannot hang; nothing is measured yet, so the rank says where it stopped,
    in one line, and leaves with the infrastructure status."""
    seconds = timeout.total_seconds()
    deadline = time.monotonic() + seconds
    request = comm.Ibarrier()
    while not request.Test():
        if time.monotonic() > deadline:
            print(
                f"railbench: rank {info.rank}: the MPI rendezvous did not complete within {seconds:g} s (not every "
                "rank reached it): check that MPI's transports reach every node (btl_tcp_if_include, PMIx)",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_INFRA)
        time.sleep(0.005)


def mpi_exchange(
    comm: MPI.Intracomm, info: RankInfo, oob_ifname: str | None, timeout: timedelta
) -> tuple[RankInfo, tuple[str, ...], Store]:
    import torch.distributed as dist

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
        try:
            addr = rendezvous_address(oob_ifname, single_host=nnodes == 1)
            store = dist.TCPStore(addr, 0, info.world_size, True, timeout=timeout, wait_for_workers=False)
        except BaseException as exc:
            # The other ranks wait in the bcast below: tell them, so they leave instead of waiting for ever
            # (and rank 0's own MPI_Finalize waiting for them), then say it once here.
            comm.bcast(("", 0, str(exc) if isinstance(exc, UserError) else f"rank 0 failed: {exc!r}"), root=0)
            raise
        addr, port, _ = comm.bcast((addr, store.port, ""), root=0)
    else:
        addr, port, problem = comm.bcast(None, root=0)
        if not addr:
            raise UserError(problem)  # rank 0 says it; this rank leaves quietly (run_as_rank)
        store = dist.TCPStore(addr, port, info.world_size, False, timeout=timeout)
    info = dataclasses.replace(info, master_addr=addr, master_port=port)
    return info, hosts, store


def env_rendezvous(info: RankInfo, timeout: timedelta) -> Store:
    import torch.distributed as dist

    store, _, _ = next(dist.rendezvous("env://", info.rank, info.world_size, timeout=timeout))
    return store
