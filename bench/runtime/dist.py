"""Process-group start-up for every launcher, and the facts every rank needs afterwards.

Under the MPI family (mpirun, srun, PMI) the user sets nothing: mpi4py tells each rank its hostname's
peers (so local rank, node rank and node count come from the hostnames, not from guesses), rank 0 opens a
TCPStore on a free port and broadcasts the address. Under torchrun and the deepspeed launcher the usual
``env://`` rendezvous gives the same store. railbench keeps that store: the hang watchdog
(``bench.runtime.watchdog``) and the agreement on the output directory use it. The rendezvous itself is
``bench.runtime.rendezvous``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bench import sysroot
from bench.backends import Backend, ResolvedBackend
from bench.exits import EXIT_USAGE, InfraError, UserError
from bench.runtime import orphan, rank_exit, signals
from bench.runtime.before_init import Prelude, PreludeStep, gather_str, place_gpu, store_broadcast
from bench.runtime.env import Launcher, RankInfo, scoped
from bench.runtime.rendezvous import env_rendezvous, mpi_rendezvous, node_layout
from bench.runtime.watchdog import DIAGNOSE_S, RANK0_GRACE_S, RANK0_LEAVING_KEY

if TYPE_CHECKING:
    import torch
    from torch.distributed import Store


@dataclass(frozen=True)
class DistContext:
    """What a rank knows once the world process group is up."""

    info: RankInfo
    """Launcher facts, with local rank, node rank and node count corrected from the gathered hostnames."""
    backend: ResolvedBackend
    device: torch.device
    """torch.device the buffers live on (cuda:<local rank> or cpu)."""
    hosts: tuple[str, ...]
    """Hostname of every rank, in rank order."""
    store: Store
    """The rendezvous key-value store (torch.distributed.Store)."""
    sysfs_root: Path
    """This node's ``/sys`` or its stand-in (``--sysfs-root``, ``{host}`` expanded): every node fact a rank reads
    (ports, counters, the PCIe path) comes from here."""
    world_ifname: str | None = None
    """The one interface a gloo world group is bound to (``--oob-ifname``); None when NCCL picks its own."""
    out_dir: Path | None = None
    """The run directory every rank agreed on before the first communicator (None: the command has none)."""

    @property
    def node_hosts(self) -> tuple[str, ...]:
        """Hostnames in node order (node i is the host of the lowest rank on it)."""
        return tuple(dict.fromkeys(self.hosts))


def resolve_backend(requested: Backend) -> ResolvedBackend:
    """``auto`` is nccl when CUDA is available, gloo otherwise; nccl without CUDA is a usage error."""
    import torch

    cuda = torch.cuda.is_available()
    if requested == "auto":
        return "nccl" if cuda else "gloo"
    if requested == "nccl" and not cuda:
        raise UserError("--backend nccl needs CUDA GPUs but torch sees none on this node: use --backend gloo")
    return requested


@dataclass(frozen=True)
class Transport:
    """How the world's communication is carried: railbench's backend role, the torch backend that plays it,
    and the device its buffers live on.

    ``torch_backend`` differs from ``role`` only in the test suite, whose model of NCCL
    (``tests/support/models/async_backend.py``) plays the ``nccl`` role on the CPU: everything that depends on NCCL's
    behaviour (its environment read once at the first communicator, its asynchronous completion) runs
    unchanged on it.
    """

    role: ResolvedBackend
    torch_backend: str
    cuda: bool

    @property
    def reads_nccl_env(self) -> bool:
        return self.role == "nccl"


def transport_for(backend: Backend) -> Transport:
    chosen = resolve_backend(backend)
    return Transport(chosen, chosen, cuda=chosen == "nccl")


def gpu_bus_id(index: int) -> str:
    """PCI bus id of CUDA device ``index``, as nvidia-smi writes it: ``0000:9a:00.0``."""
    import torch

    props = torch.cuda.get_device_properties(index)
    # torch's stubs lack the PCI fields its CUDA builds have (torch >= 2.1 on CUDA).
    domain, bus, dev = (int(getattr(props, f"pci_{part}_id")) for part in ("domain", "bus", "device"))
    return f"{domain:04x}:{bus:02x}:{dev:02x}.0"


def _cuda_device(prelude: Prelude) -> torch.device:
    """This rank's GPU, agreed by every rank before NCCL sees it; the current device from here on."""
    import torch

    device = torch.device("cuda", place_gpu(prelude, torch.cuda.device_count(), gpu_bus_id))
    torch.cuda.set_device(device)
    return device


def torch_timeout_s(watchdog_s: float) -> float:
    """The timeout every process group gets from torch (its start-up and its operations), for a run whose
    watchdog fires at ``watchdog_s``: one order of timeouts, railbench's first.

    railbench's watchdog can name the ranks that did not arrive, so it must speak before torch or NCCL end a
    step on their own: after the step's timeout, rank 0 diagnoses (at most ``DIAGNOSE_S``) and records the
    hang, and the other ranks end by themselves ``RANK0_GRACE_S`` later. torch's own timeout (its NCCL
    watchdog, gloo's operations, a non-blocking communicator's start-up) comes after all of that, with as
    much again to spare: twice the step's timeout, and at least half a minute past the others' grace.
    """
    return max(2 * watchdog_s + 30, watchdog_s + RANK0_GRACE_S + DIAGNOSE_S + 30)


def init_distributed(
    info: RankInfo,
    transport: Transport,
    timeout_s: float,
    oob_ifname: str | None = None,
    before_init: PreludeStep | None = None,
    *,
    sysfs_root: Path,
) -> DistContext:
    """Start the world process group for ``info``; returns the corrected facts and the store.

    ``sysfs_root`` (``--sysfs-root``) is expanded for this rank's host; a node where it is no directory is bad
    input said by every rank alike, before any communicator.

    Order matters on NCCL: rendezvous (the store), then ``before_init`` (run directory and NCCL's
    environment, agreed through the store), then the world communicator, made eagerly on this rank's GPU
    (``device_id``) so that every later group is split from it at creation, not lazily inside a
    measurement with the device guessed from the global rank.
    """
    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    if info.master_addr is None:
        info, hosts, store = mpi_rendezvous(info, oob_ifname, timeout)
    else:
        store = env_rendezvous(info, timeout)
        hosts = None
    prelude = Prelude(info, store, transport.reads_nccl_env, timeout_s)
    my_root = node_sysfs_root(prelude, sysfs_root)
    device = _cuda_device(prelude) if transport.cuda else torch.device("cpu")
    out_dir = before_init(prelude) if before_init is not None else None
    dist.init_process_group(
        transport.torch_backend,
        store=dist.PrefixStore("pg", store),
        rank=info.rank,
        world_size=info.world_size,
        timeout=timedelta(seconds=torch_timeout_s(timeout_s)),
        device_id=device if transport.cuda else None,
    )
    if hosts is None:
        hosts = tuple(gather_str(prelude, "host", socket.gethostname()))
        _, local_size, node_rank, nnodes = node_layout(hosts, info.rank)
        info = dataclasses.replace(info, node_rank=node_rank, nnodes=nnodes, local_world_size=local_size)
    world_ifname = oob_ifname if transport.role == "gloo" else None
    return DistContext(
        info=info,
        backend=transport.role,
        device=device,
        hosts=hosts,
        store=store,
        world_ifname=world_ifname,
        out_dir=out_dir,
        sysfs_root=my_root,
    )


def node_sysfs_root(prelude: Prelude, template: Path) -> Path:
    """This rank's ``/sys`` stand-in (``bench.sysroot``), agreed sound on every node through the store."""
    host = socket.gethostname()
    if template == sysroot.LIVE:
        return template
    problems = [p for p in gather_str(prelude, "sysfs_root", sysroot.problem(template, host) or "") if p]
    if problems:
        raise UserError(problems[0])
    return sysroot.node_root(template, host)


USAGE_HOLD_S = 3.0
"""How long a rank other than 0 waits before exiting 2 on bad input: the launcher stops the whole job at the
first non-zero exit, and rank 0 must have said the one line by then."""


def say_leaving(store: Store, status: int) -> None:
    """Rank 0, its output flushed: post its exit status at :data:`RANK0_LEAVING_KEY`, within a bounded wait (the
    store may be torchrun's, in another process that is gone)."""
    store.set_timeout(timedelta(seconds=SAID_READ_S))
    store.set(RANK0_LEAVING_KEY, str(status))


def quiet_usage_exit(store: Store | None = None) -> int:
    """Exit status 2 for a rank that leaves saying the bad input to rank 0 (see :data:`USAGE_HOLD_S`). Inside the
    world every refusal is rank 0's own or agreed by every rank (``bench.runtime.before_init.refuse_together``,
    the ``/sys`` stand-in's gather), so rank 0 says it. There (``store``) the rank leaves as soon as rank 0 has
    said its line and posted its exit status (:func:`rank0_left`): rank 0 then waits in MPI's finalize for this
    rank, and the whole hold only kept the user waiting 3 s after the line."""
    began = time.monotonic()
    if store is not None and rank0_left(store, USAGE_HOLD_S) is not None:
        return EXIT_USAGE
    time.sleep(max(0.0, USAGE_HOLD_S - (time.monotonic() - began)))
    return EXIT_USAGE


def rank0_left(store: Store, hold_s: float) -> int | None:
    """The exit status rank 0 posted on its way out (:func:`say_leaving`), waited for ``hold_s`` at most; None when
    it posted none by then (it may be what was lost) or its store is gone."""
    try:
        store.wait([RANK0_LEAVING_KEY], timedelta(seconds=hold_s))
        store.set_timeout(timedelta(seconds=SAID_READ_S))  # posted: read now, or the store went with rank 0
        return int(store.get(RANK0_LEAVING_KEY).decode())
    except (RuntimeError, OSError, ValueError):  # torch's DistError is a RuntimeError
        return None


KEEPS_RANKS_ON_EXIT: frozenset[Launcher] = frozenset({"slurm"})
"""Launchers that leave the other ranks running when one exits non-zero (srun without ``--kill-on-bad-exit``,
as docs/slurm.md runs it): every rank of a bad command line is still there after the hold."""
ALONE_AFTER_S = 15.0
"""How long a rank other than 0 that refused its input waits, under a launcher that stops the job at the first
non-zero exit, before it concludes that rank 0 accepted that input and says its own refusal: far longer than
rank 0 takes to say the same refusal and exit, and the launcher to stop every rank, on a busy node."""


def refused_before_start(info: RankInfo, refusal: UserError) -> int:
    """Exit status 2 for a rank other than 0 that refused its input before the world started (its job's
    validation; no MPI and no store yet, so rank 0 exits at once when it refused too): rank 0 says it once. A
    rank still alive :data:`ALONE_AFTER_S` later under a launcher that stops the job at rank 0's exit knows rank
    0 accepted what it refused (a profile file, a GPU that only its node lacks) and says it with its rank and
    host: mpirun would otherwise end the job with no reason given. Under srun every rank of a bad command line
    is still alive then, so there a rank stays quiet (:func:`quiet_usage_exit`)."""
    if info.launcher in KEEPS_RANKS_ON_EXIT:
        return quiet_usage_exit()
    time.sleep(ALONE_AFTER_S)
    print(f"railbench: error: rank {info.rank} on {socket.gethostname()}: {refusal}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def run_as_rank(
    info: RankInfo,
    backend: Backend,
    timeout_s: float,
    oob_ifname: str | None,
    body: Callable[[DistContext], int],
    before_init: PreludeStep | None = None,
    *,
    sysfs_root: Path,
) -> int:
    """Start the world group, run ``body`` on it and always tear it down; every command's rank entry.

    Bad input is said once, by rank 0 (the others return 2 quietly). An infrastructure fault is reported by
    rank 0 for everyone; the other ranks hold back a few seconds, so they speak only when the launcher has
    not stopped them by then, i.e. when rank 0 itself is what was lost. A rank that finds rank 0 has already
    said the run's exit status (:func:`say_exit_status`: it recorded the fault and says it) ends with that
    status at once, in silence: rank 0 waits in MPI's finalize for every rank, so no launcher stops the others
    for it, and the hold only kept the run seconds longer and ended with a line blaming rank 0 as gone.
    """
    signals.install()  # SIGTERM (scancel, timeout) ends the run as Ctrl-C does: recorded as interrupted
    orphan.watch_launcher()  # kill -9 of the launcher: the rank stops itself (SIGTERM) instead of going on
    try:
        transport = transport_for(backend)
        # gloo's world group binds GLOO_SOCKET_IFNAME as it is at start-up: the management interface.
        with scoped("GLOO_SOCKET_IFNAME", oob_ifname):
            ctx = init_distributed(info, transport, timeout_s, oob_ifname, before_init, sysfs_root=sysfs_root)
        _STORES.append(ctx.store)
        if info.rank == 0:
            rank_exit.BEFORE_FINALIZE.append(lambda status: say_leaving(ctx.store, status))
    except UserError:
        shutdown()
        if info.rank != 0:
            return quiet_usage_exit()
        raise
    try:
        return body(ctx)
    except UserError:
        if ctx.info.rank != 0:
            return quiet_usage_exit(ctx.store)
        raise
    except InfraError:
        if ctx.info.rank != 0:
            # Rank 0 leaving with a non-zero status recorded and said the run's fault itself (a refused write, a
            # hang it named) and waits in MPI's finalize for this rank: end with it, in silence. Silent within the
            # hold, rank 0 may be what was lost; leaving with 0, it did not see this rank's fault: say it.
            began = time.monotonic()
            left = rank0_left(ctx.store, RANK_HOLD_S)
            if left:
                return left
            time.sleep(max(0.0, RANK_HOLD_S - (time.monotonic() - began)))
        raise
    finally:
        shutdown()


def shutdown() -> None:
    """Tear the process group down if it is up."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_str(store: Store, key: str, value: str | None, rank: int, timeout_s: float) -> str:
    """Rank 0's ``value`` for ``key``, on every rank (through the store, so it works before any collective)."""
    return store_broadcast(store, key, rank, timeout_s, lambda: value or "")


HEARD_S = 10.0
"""The most rank 0 waits, after saying the exit status, for every rank to have read it."""


EXIT_STATUS_KEY = "exit_status"


def say_exit_status(ctx: DistContext, status: int, key: str = EXIT_STATUS_KEY) -> None:
    """Rank 0, on its way out (a signal in its finish step): its exit status for the ranks waiting in
    :func:`agree_on_exit_status`, said without waiting for them to hear it, so that they end with it instead of
    naming rank 0 lost. Best effort: a store already gone leaves them to say so, as before."""
    with contextlib.suppress(RuntimeError, OSError):
        ctx.store.set(f"railbench/{key}", str(status))


_STORES: list[Store] = []
"""The rendezvous store, held until the process exits: rank 0's process serves it, and rank 0 waits in MPI's
finalize for the other ranks, which may still read what it posted there (:func:`rank0_left`). Freed with
the run's context when rank 0's error was handled, it left them to name rank 0 gone."""
RANK_HOLD_S = 5.0
"""How long a rank other than 0 holds its infrastructure fault back, for rank 0 to say it (see :func:`run_as_rank`)."""
SAID_READ_S = 2.0
"""The most a rank on its way out waits on the store to post or read an exit status: the store may be gone with
rank 0's node (or with torchrun's agent)."""


def agree_on_exit_status(ctx: DistContext, status: int, key: str = EXIT_STATUS_KEY, *, timeout_s: float = 60.0) -> int:
    """Rank 0's exit status on every rank, so that every rank of a command exits the same (through the store,
    which outlives a broken communicator). A rank 0 that never says it within ``timeout_s`` is a fault."""
    try:
        agreed = int(broadcast_str(ctx.store, key, str(status), ctx.info.rank, timeout_s))
    except RuntimeError as exc:  # torch's DistStoreError: the wait timed out or rank 0's store is gone
        raise InfraError(
            f"rank 0 ({ctx.hosts[0]}) never said the exit status: it is gone, or stuck past {timeout_s:g} s ({exc})"
        ) from None
    heard = f"railbench/{key}/heard"
    if ctx.info.rank != 0:
        with contextlib.suppress(RuntimeError):  # rank 0 stopped waiting: it has its answer already
            ctx.store.add(heard, 1)
        return agreed
    # The store lives in rank 0's process: leaving before every rank has read the status would fail their read
    # (a rank slow to read it, under load or beside a stopped launcher, then says rank 0 is gone).
    until = time.monotonic() + min(timeout_s, HEARD_S)
    with contextlib.suppress(RuntimeError):
        while int(ctx.store.add(heard, 0)) < ctx.info.world_size - 1 and time.monotonic() < until:
            time.sleep(0.02)
    return agreed
