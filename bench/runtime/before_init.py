"""What every rank settles before its first communicator exists: run directory, GPU, NCCL's environment.

NCCL reads ``NCCL_DEBUG``, ``NCCL_DEBUG_FILE``, ``NCCL_SOCKET_IFNAME`` and ``NCCL_IB_HCA`` once per process,
when the first communicator is made, and railbench makes the world communicator eagerly
(``init_process_group(device_id=...)``). So these steps run between the rendezvous (the key-value store is
up) and process-group creation, and agree through the store, never through a collective: the run
directory (it names the NCCL log files), the GPU each rank drives (two ranks on one GPU are refused here,
before NCCL meets them as "Duplicate GPU"), the NCCL log variables, and NCCL's NIC variables, which must be the
same on every rank of a node (railbench never gives a rank its own NIC: NCCL picks GPU k's nearest NIC itself,
``bench.fabric.rail_nics``).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bench.exits import UserError
from bench.runtime import env as benv
from bench.runtime.env import RankInfo
from bench.runtime.placement import cuda_device_index, placement_post, placement_verdict

if TYPE_CHECKING:
    from torch.distributed import Store

ASYNC_ERROR_VAR = "TORCH_NCCL_ASYNC_ERROR_HANDLING"
ASYNC_ERROR_CLEANUP_ONLY = "2"
"""Abort the failed communicator and raise in the waiting call, without tearing the process down: a dead
peer or rail then reaches railbench's own error path (exit 3, the rank and host named, run.json failed)
instead of ProcessGroupNCCL's watchdog killing the process and leaving run.json ``running``."""


@dataclass(frozen=True)
class Prelude:
    """What a rank knows between the rendezvous and its first communicator."""

    info: RankInfo
    store: Store
    """The rendezvous key-value store (torch.distributed.Store)."""
    reads_nccl_env: bool
    """The world's backend is NCCL (or a model of it): its environment must be set now."""
    timeout_s: float


PreludeStep = Callable[[Prelude], Path | None]
"""A command's before-init step; returns the agreed run directory (None when it has none)."""


def gather_str(prelude: Prelude, key: str, value: str) -> list[str]:
    """Every rank's ``value`` for ``key``, in rank order, on every rank (through the store)."""
    info = prelude.info
    return store_gather(prelude.store, key, info.rank, info.world_size, value, prelude.timeout_s)


def store_gather(store: Store, key: str, rank: int, world_size: int, value: str, timeout_s: float) -> list[str]:
    """Every rank's ``value`` for ``key``, in rank order, on every rank, through the store: it works before
    any communicator exists and beside one that a dead link broke. Each ``key`` is used once per run."""
    store.set(f"railbench/{key}/{rank}", value)
    keys = [f"railbench/{key}/{r}" for r in range(world_size)]
    store.wait(keys, timedelta(seconds=timeout_s))
    return [store.get(k).decode() for k in keys]


def store_broadcast(store: Store, key: str, rank: int, timeout_s: float, rank0_value: Callable[[], str]) -> str:
    """Rank 0's value for ``key`` on every rank, through the store (it works before any communicator and after
    a broken one); ``rank0_value`` is called on rank 0 only, once."""
    full = f"railbench/{key}"
    if rank == 0:
        value = rank0_value()
        store.set(full, value)
        return value
    store.wait([full], timedelta(seconds=timeout_s))
    return str(store.get(full).decode())


def agree(prelude: Prelude, key: str, rank0_value: Callable[[], str]) -> str:
    """Rank 0's value for ``key`` on every rank, before the first communicator."""
    return store_broadcast(prelude.store, key, prelude.info.rank, prelude.timeout_s, rank0_value)


HEARD_POLL_S = 0.05


def refuse_together(prelude: Prelude, key: str, rank0_problem: Callable[[], str]) -> None:
    """Bad input only rank 0 checks (the history on its node, ``--topology``), raised on every rank: UserError
    with rank 0's one line, or nothing when it answers "". Rank 0 raises only once every rank has heard: the
    store lives in rank 0's process, and a rank still connecting to it when rank 0 left would retry for its
    whole timeout while Open MPI's finalize holds rank 0 and the launcher waits on both."""
    problem = agree(prelude, key, rank0_problem)
    if not problem:
        return
    info, heard = prelude.info, f"railbench/{key}/heard"
    if info.rank != 0:
        prelude.store.add(heard, 1)
    else:
        deadline = time.monotonic() + prelude.timeout_s
        while prelude.store.add(heard, 0) < info.world_size - 1 and time.monotonic() < deadline:
            time.sleep(HEARD_POLL_S)
    raise UserError(problem)


DEBUG_FILE_VAR = "NCCL_DEBUG_FILE"
DUMP_WAIT_VAR = "TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC"
DUMP_WAIT_MS = "1000"
"""How long torch's watchdog waits for its flight-recorder dump (``ProcessGroupNCCL::HeartbeatMonitor`` reads
TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC, 15 000 by default, with TORCH_NCCL_DUMP_ON_TIMEOUT on by default), and
sleeps four times before it ends a failed communicator: a minute by default, after IB's own ~34 s of retries
for a link that dies mid-measurement. One second keeps the dump (a site may set its own) and ends the step in
well under a minute, so railbench, not the wait, says what broke."""


DUMP_ON_TIMEOUT_VAR = "TORCH_NCCL_DUMP_ON_TIMEOUT"
NO_DUMP = "0"
"""torch's flight-recorder dump on a watchdog-detected error, off unless the site set it. On (torch's default
since 2.7, pytorch PR 143446), the first error any communicator's watchdog sees (``ProcessGroupNCCL.cpp``
``Watchdog::runLoop`` -> ``broadcastDumpSignal``, a key in the world's store) makes every rank's heartbeat
monitor (``HeartbeatMonitor::runLoop``, polling that key every TORCH_NCCL_COORD_CHECK_MILSEC) dump, sleep
TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC (480 s by default) and then end its process (``terminateProcess``:
``LOG(FATAL)``, SIGABRT) unless its world group was shut down first. railbench goes on past an NCCL error by
design (a bounded rail probe that errored names a dead link, and the rails phase and accept continue), so with
the dump on, a run still measuring 480 s after its first NCCL error would lose every rank at once. Off, the
monitor still ends a process whose watchdog thread is stuck (no heartbeat for 480 s)."""


def nccl_log_environment(out_dir: Path, host: str, rank: int) -> dict[str, str]:
    """NCCL's INFO log into ``<run dir>/nccl/<host>-<rank>.log``: the evidence the fabric checks read; torch's
    dump wait bounded (:data:`DUMP_WAIT_MS`) and its dump on error off (:data:`NO_DUMP`), a site value winning
    both; and the log file and error handling railbench needs (set over any site value, see
    :func:`own_debug_file` and :func:`own_error_handling`)."""
    return {
        "NCCL_DEBUG": "INFO",
        "NCCL_DEBUG_SUBSYS": "INIT,ENV,NET",
        DEBUG_FILE_VAR: str(out_dir / "nccl" / f"{host}-{rank}.log"),
        DUMP_WAIT_VAR: DUMP_WAIT_MS,
        DUMP_ON_TIMEOUT_VAR: NO_DUMP,
        ASYNC_ERROR_VAR: ASYNC_ERROR_CLEANUP_ONLY,
    }


def site_dump_note(rank: int) -> str | None:
    """Rank 0's one line when the site itself turned torch's dump on error on (see :data:`NO_DUMP`), which
    railbench keeps: what it costs a run that goes on past an NCCL error."""
    site = (benv.get(DUMP_ON_TIMEOUT_VAR) or "").strip().lower()
    if rank != 0 or site in ("", "0", "false", "no", "off", "n"):
        return None
    return (
        f"# {DUMP_ON_TIMEOUT_VAR}={site} from the environment kept: torch's heartbeat monitor then ends every rank "
        "TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC (480 s by default) after the first NCCL error, and a run still measuring "
        f"then ends as a lost rank; unset it (or set {DUMP_ON_TIMEOUT_VAR}=0) to let a run go on past a dead link"
    )


def apply_defaults(values: Mapping[str, str]) -> None:
    """Set each variable unless the user already set it (their choice wins, and run.json records it)."""
    for name, value in values.items():
        benv.set_default(name, value)


def own_value(name: str, value: str, rank: int, why: str) -> str | None:
    """``name`` set to ``value``, the one railbench needs, over a site's own; returns the one line that says so
    when a site value was overridden (rank 0 prints it), else None. run.json's environment records the value
    the run used."""
    site = benv.get(name)
    benv.set_value(name, value)
    if site is None or site.strip() == value or rank != 0:
        return None
    return f"# {name}={site.strip()[:80]} from the environment overridden to {value}: {why}"


def own_error_handling(rank: int) -> str | None:
    """``TORCH_NCCL_ASYNC_ERROR_HANDLING`` set to the value railbench needs, over a site's own.

    torch reads it when each ProcessGroupNCCL is made (``getCvarInt(TORCH_NCCL_ASYNC_ERROR_HANDLING, 3)``, 3
    SkipCleanUp by default). 3 and 1 tear the process down from torch's own watchdog, after it has slept
    4 x TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC (a minute): run.json stays ``running`` and nobody names the lost
    rank; 0 leaves a failed communicator unhandled. 2 aborts it and raises in the waiting call, so railbench's
    own error path speaks (exit 3, the rank and host named), and railbench's bounded probes may abort a group
    themselves.
    """
    return own_value(
        ASYNC_ERROR_VAR,
        ASYNC_ERROR_CLEANUP_ONLY,
        rank,
        "railbench aborts a failed communicator and names the lost rank itself",
    )


def own_debug_file(path: str, rank: int) -> str | None:
    """``NCCL_DEBUG_FILE`` pointed at this rank's log in the run directory, over a site's own.

    The post-mortem of a link that dies mid-measurement (``bench.frame.postmortem``) and the fabric checks read
    each rank's NCCL log from ``nccl/<host>-<rank>.log``: a site's own file (NCCL expands ``%h`` and ``%p`` in
    it, ``src/debug.cc``) is per process at best and, without ``%p``, one file every rank of a node opens with
    ``"w"`` over the others'. Left in place, a dead link would end as a lost rank (exit 3) with nothing named.
    A site's ``NCCL_DEBUG`` level is kept: the completion errors the post-mortem reads are WARN lines.
    """
    return own_value(DEBUG_FILE_VAR, path, rank, "railbench reads each rank's NCCL log from its run directory")


def prepare_nccl_logs(prelude: Prelude, out_dir: Path) -> None:
    if not prelude.reads_nccl_env:
        return
    (out_dir / "nccl").mkdir(parents=True, exist_ok=True)
    values = nccl_log_environment(out_dir, socket.gethostname(), prelude.info.rank)
    owned = (ASYNC_ERROR_VAR, DEBUG_FILE_VAR)
    dump = site_dump_note(prelude.info.rank)  # before the default is set: only a site's own value is said
    apply_defaults({name: value for name, value in values.items() if name not in owned})
    for said in (
        dump,
        own_error_handling(prelude.info.rank),
        own_debug_file(values[DEBUG_FILE_VAR], prelude.info.rank),
    ):
        if said:
            print(said, flush=True)


def run_directory(prelude: Prelude, proposal: Callable[[], Path]) -> Path:
    """The run directory rank 0 proposes, agreed by every rank, with NCCL's logs pointed into it."""
    out_dir = Path(agree(prelude, "out_dir", lambda: str(proposal())))
    prepare_nccl_logs(prelude, out_dir)
    return out_dir


NIC_VARS = ("NCCL_IB_HCA", "NCCL_SOCKET_IFNAME")
"""The variables NCCL builds each process's NIC list from (``net_ib/init.cc`` ``ncclIbInitDevices``, the socket
transport's ``ncclFindInterfaces``): once per process, at its first communicator."""


def nic_disagreement(posts: Sequence[tuple[str, Mapping[str, str | None]]]) -> str | None:
    """Why these ranks cannot share communicators (each post: the rank's host and its NIC variables, in rank
    order), or None when every rank of each host sees the same values.

    NCCL fuses the topology of a communicator's ranks on one node (``src/graph/topo.cc`` ``ncclTopoGetSystem``:
    an intra-node all-gather of every local rank's topology, then ``ncclTopoFuseXml``) and each rank's NICs come
    from its own variables: ranks of one node with different lists give one fused system with clashing NIC
    indices, undefined routes or ring-building errors (NVIDIA/nccl issue 1478). Setting them per rank is never
    right, whoever does it (a launcher script, a per-rank wrapper).
    """
    first: dict[tuple[str, str], tuple[int, str | None]] = {}
    for rank, (host, values) in enumerate(posts):
        for name in NIC_VARS:
            seen = first.setdefault((host, name), (rank, values.get(name)))
            if seen[1] != values.get(name):
                return (
                    f"{name} differs between ranks of {host} (rank {seen[0]}: {seen[1]!r}, rank {rank}: "
                    f"{values.get(name)!r}): NCCL merges the NIC lists of a node's ranks and cannot route over "
                    f"per-rank values; give every rank the same {name} (e.g. mpirun -x {name}=...)"
                )
    return None


def shared_nic_environment(prelude: Prelude, defaults: Mapping[str, str | None]) -> None:
    """NCCL's NIC variables before the first communicator: ``defaults`` (the profile's, the rails' interface
    list) where the user set nothing, then agreed through the store to be the same on every rank of each node
    (UserError on every rank otherwise: exit 2 before NCCL meets them)."""
    if not prelude.reads_nccl_env:
        return
    apply_defaults({name: value for name, value in defaults.items() if name in NIC_VARS and value})
    mine = json.dumps({"host": socket.gethostname(), **{name: benv.get(name) for name in NIC_VARS}})
    posts = []
    for text in gather_str(prelude, "nic_environment", mine):
        post = json.loads(text)
        posts.append((str(post.pop("host")), post))
    problem = nic_disagreement(posts)
    if problem:
        raise UserError(problem)


def place_gpu(prelude: Prelude, visible_gpus: int, bus_id: Callable[[int], str]) -> int:
    """This rank's CUDA device index, once every rank agrees no two ranks share a GPU; UserError if they do.

    Each rank posts its host and the PCI bus id of the GPU it would drive; rank 0 judges all posts and every
    rank reads the same verdict, so every rank stops together with one line.
    """
    info = prelude.info
    host = socket.gethostname()
    index = -1
    try:
        index = cuda_device_index(info.local_rank, info.local_world_size, visible_gpus)
        mine = f"{host} {bus_id(index)}"
    except UserError as exc:
        mine = placement_post(host, refusal=str(exc))
    posts = gather_str(prelude, "gpu", mine)
    verdict = placement_verdict(posts)
    if verdict:
        raise UserError(verdict)
    return index
