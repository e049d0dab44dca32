"""What every rank settles before its first communicator exists: run directory, GPU, NCCL's environment.

NCCL reads ``NCCL_DEBUG``, ``NCCL_DEBUG_FILE``, ``NCCL_SOCKET_IFNAME`` and ``NCCL_IB_HCA`` once per process,
when the first communicator is made, and railbench makes the world communicator eagerly
(``init_process_group(device_id=...)``). So these steps run between the rendezvous (the key-value store is
up) and process-group creation, and agree through the store, never through a collective: the run
directory (it names the NCCL log files), the GPU each rank drives (two ranks on one GPU are refused here,
before NCCL meets them as "Duplicate GPU"), the NCCL log variables, and for a rails rank the one rail it
may use (``NCCL_SOCKET_IFNAME`` or an exact single-HCA ``NCCL_IB_HCA``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.exits import UserError
from bench.runtime import env as benv
from bench.runtime.env import RankInfo
from bench.runtime.placement import cuda_device_index, placement_post, placement_verdict

ASYNC_ERROR_VAR = "TORCH_NCCL_ASYNC_ERROR_HANDLING"
ASYNC_ERROR_CLEANUP_ONLY = "2"
"""Abort the failed communicator and raise in the waiting call, without tearing the process down: a dead
peer or rail then reaches railbench's own error path (exit 3, the rank and host named, run.json failed)
instead of ProcessGroupNCCL's watchdog killing the process and leaving run.json ``running``."""


@dataclass(frozen=True)
class Prelude:
    """What a rank knows between the rendezvous and its first communicator."""

    info: RankInfo
    store: Any
    """The rendezvous key-value store (torch.distributed.Store)."""
    reads_nccl_env: bool
    """The world's backend is NCCL (or a model of it): its environment must be set now."""
    timeout_s: float


PreludeStep = Callable[[Prelude], Path | None]
"""A command's before-init step; returns the agreed run directory (None when it has none)."""


def gather_str(prelude: Prelude, key: str, value: str) -> list[str]:
    """Every rank's ``value`` for ``key``, in rank order, on every rank (through the store)."""
    info, store = prelude.info, prelude.store
    store.set(f"railbench/{key}/{info.rank}", value)
    keys = [f"railbench/{key}/{r}" for r in range(info.world_size)]
    store.wait(keys, timedelta(seconds=prelude.timeout_s))
    return [store.get(k).decode() for k in keys]


def store_broadcast(store: Any, key: str, rank: int, timeout_s: float, rank0_value: Callable[[], str]) -> str:
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


def agree_all_ok(prelude: Prelude, key: str, problem: str | None) -> None:
    """Raise the first rank's problem on every rank, so that every rank stops together (exit 2)."""
    problems = [p for p in gather_str(prelude, key, problem or "") if p]
    if problems:
        raise UserError(problems[0])


def nccl_log_environment(out_dir: Path, host: str, rank: int) -> dict[str, str]:
    """NCCL's INFO log into ``<run dir>/nccl/<host>-<rank>.log``: the evidence the fabric checks read."""
    return {
        "NCCL_DEBUG": "INFO",
        "NCCL_DEBUG_SUBSYS": "INIT,ENV,NET",
        "NCCL_DEBUG_FILE": str(out_dir / "nccl" / f"{host}-{rank}.log"),
        ASYNC_ERROR_VAR: ASYNC_ERROR_CLEANUP_ONLY,
    }


def apply_defaults(values: Mapping[str, str]) -> None:
    """Set each variable unless the user already set it (their choice wins, and run.json records it)."""
    for name, value in values.items():
        benv.set_default(name, value)


def prepare_nccl_logs(prelude: Prelude, out_dir: Path) -> None:
    if not prelude.reads_nccl_env:
        return
    (out_dir / "nccl").mkdir(parents=True, exist_ok=True)
    apply_defaults(nccl_log_environment(out_dir, socket.gethostname(), prelude.info.rank))


def run_directory(prelude: Prelude, proposal: Callable[[], Path]) -> Path:
    """The run directory rank 0 proposes, agreed by every rank, with NCCL's logs pointed into it."""
    out_dir = Path(agree(prelude, "out_dir", lambda: str(proposal())))
    prepare_nccl_logs(prelude, out_dir)
    return out_dir


def rail_pin(rail: int, *, socket_ifname: str | None, ifnames: Sequence[str], hcas: Sequence[str]) -> dict[str, str]:
    """The NCCL variables that keep rail ``rail``'s rank on its own rail, or {} when nothing pins it.

    Socket rails: ``NCCL_SOCKET_IFNAME`` set exactly to the interface this rail binds. IB rails: an exact,
    single-HCA ``NCCL_IB_HCA`` naming the rail's HCA port (the ``rail``-th of those the profile's
    ``NCCL_IB_HCA`` selects, in NCCL's order: ``hcas``), so a rail test cannot pass through a neighbour's
    NIC. ``ifnames`` are the interfaces ``socket_ifname`` selects on this node, in order.
    """
    if socket_ifname:
        return {"NCCL_SOCKET_IFNAME": f"={ifnames[rail]}"} if rail < len(ifnames) else {}
    if rail < len(hcas):
        return {"NCCL_IB_HCA": f"={hcas[rail]}"}
    return {}


def pin_rail(prelude: Prelude, pin: Mapping[str, str]) -> None:
    """Set this rail rank's pin before its first communicator (these are the rank's own; they override)."""
    if prelude.reads_nccl_env:
        for name, value in pin.items():
            benv.set_value(name, value)


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
