"""Rank program for the async-backend tests: railbench's own rank code on the test model of NCCL.

Started by ``tests/test_timing_async.py`` under mpirun. Every rank registers ``tests/async_backend.py``,
starts the world through railbench's ``init_distributed`` with that backend in NCCL's role, runs one
scenario and rank 0 writes what it saw as JSON:

- ``timing``: all_reduce through railbench's timing loop, and the same calls timed by the host clock alone
  (what a loop that forgets to synchronise would report);
- ``rails``: the whole rails phase (rail groups, rail all_reduce, pair matrix) on two pretend nodes;
- ``intranode``: the intra-node pair matrix on one pretend node of all the ranks (slow one rank with
  ``RAILBENCH_ASYNC_SLOW``);
- ``env``: the order in which NCCL's variables and the world's communicator appear, for ``run`` and for a
  socket-rail ``rails`` rank.

Usage: ``python -m tests.async_ranks SCENARIO OUT.json``; the rate comes from ``RAILBENCH_ASYNC_GBPS``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from bench.busbw import BUSBW_FACTOR
from bench.measure.collectives import get_collective
from bench.measure.timing import measure
from bench.rails.config import RailsConfig, validate
from bench.rails.intranode import intra_node_phase
from bench.rails.rank import rail_prelude, rails_phase
from bench.runtime.before_init import run_directory
from bench.runtime.dist import DistContext, Transport, init_distributed, shutdown
from bench.runtime.env import discover_rank
from bench.runtime.watchdog import Watchdog
from tests import async_backend

MODEL_OF_NCCL = Transport("nccl", async_backend.register(), cuda=False)
MIB = 1 << 20
T = TypeVar("T")


def _start(before_init: Any = None) -> DistContext:
    info = discover_rank()
    assert info is not None, "start under mpirun"
    return init_distributed(info, MODEL_OF_NCCL, 60.0, None, before_init)


def _watched(ctx: DistContext, phase: Callable[[Watchdog], T]) -> T:
    """``phase`` under railbench's hang watchdog (a hang here fails the test by its timeout)."""
    watchdog = Watchdog(ctx.store, ctx.info.rank, ctx.hosts, 120.0, lambda hang: None)
    watchdog.start()
    try:
        return phase(watchdog)
    finally:
        watchdog.stop()


def _timing() -> dict[str, Any]:
    ctx = _start()
    n, nbytes, iters = ctx.info.world_size, 8 * MIB, 4
    coll = get_collective("all_reduce")
    res = measure(
        coll,
        nbytes,
        ctx.info.rank,
        n,
        None,
        dtype=torch.float32,
        elsize=4,
        device=ctx.device,
        iters=iters,
        warmup=1,
        check=True,
    )
    # The same calls timed by the host's clock alone: it sees only the queuing.
    data = torch.ones(nbytes // 4)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(data)
    naive_s = (time.perf_counter() - start) / iters
    async_backend.STREAM.drain()
    factor = BUSBW_FACTOR["all_reduce"](n)
    return {
        "busbw_Gbps": 8 * res.algbw_GBps * factor,
        "naive_busbw_Gbps": 8 * nbytes / naive_s / 1e9 * factor,
        "wrong": res.wrong,
    }


def _rails() -> dict[str, Any]:
    ctx = _start()
    n = ctx.info.world_size
    # Two pretend nodes, n/2 rails: node i holds ranks i*(n/2) .. (i+1)*(n/2)-1, rail k = local rank k.
    per_node = n // 2
    ctx = dataclasses.replace(ctx, hosts=tuple(f"node{r // per_node}" for r in range(n)))
    _, settings = validate(
        RailsConfig(
            profile="local",
            collectives=("all_reduce",),
            rail_bytes=8 * MIB,
            pair_bytes=8 * MIB,
            iters=3,
            warmup=1,
            repeats=1,
        )
    )
    # The local profile binds gloo's rail groups to loopback; this backend's groups bind nothing.
    settings = dataclasses.replace(settings, socket_ifname=None)
    outcome = _watched(ctx, lambda watchdog: rails_phase(settings, ctx, watchdog))
    if outcome is None:
        return {}
    return {
        "pairs_Gbps": [8 * t.nbytes / (t.time_us * 1e-6) / 1e9 for t in outcome.pair_times],
        "rail_busbw_Gbps": [r.busbw_Gbps for r in outcome.rail_results],
        "process_groups": outcome.process_groups,
    }


def _intranode() -> dict[str, Any]:
    ctx = _start()
    ctx = dataclasses.replace(ctx, hosts=("node0",) * ctx.info.world_size)
    _, settings = validate(RailsConfig(profile="local", pair_bytes=MIB, iters=3, warmup=1, intra_node=True))
    outcome = _watched(ctx, lambda watchdog: intra_node_phase(settings, ctx, watchdog))
    if outcome is None:
        return {}
    return {
        "pairs_Gbps": [[t.gpu, t.peer, t.busbw_Gbps] for t in outcome.times],
        "defects": [d.as_dict() for d in outcome.defects],
        "level_Gbps": outcome.localisation.level_Gbps,
        "too_noisy": outcome.localisation.too_noisy,
        "process_groups": outcome.process_groups,
        "communicators": len(async_backend.NCCL_SEEN),
    }


def _order(label: str) -> dict[str, Any]:
    """NCCL's variables as the first communicator saw them, and as they were at the end of start-up."""
    first = async_backend.NCCL_SEEN[0] if async_backend.NCCL_SEEN else {}
    return {"label": label, "seen_at_first_communicator": first, "communicators": len(async_backend.NCCL_SEEN)}


def _env(out_root: Path) -> dict[str, Any]:
    info = discover_rank()
    assert info is not None
    if info.world_size == 1:
        profile, settings = validate(RailsConfig(profile="local", socket_ifname="lo"))
        ctx = _start(rail_prelude(settings, profile, lambda: out_root / "rails-run"))
        return {**_order("rails"), "out_dir": str(ctx.out_dir)}
    ctx = _start(lambda prelude: run_directory(prelude, lambda: out_root / f"run-{time.time_ns()}"))
    everyone: list[Any] = [None] * ctx.info.world_size
    dist.all_gather_object(everyone, str(ctx.out_dir))
    return {**_order("run"), "out_dirs": everyone}


def main(argv: list[str]) -> int:
    scenario, out = argv[0], Path(argv[1])
    scenarios = {"timing": _timing, "rails": _rails, "intranode": _intranode, "env": lambda: _env(out.parent)}
    result = scenarios[scenario]()
    if dist.is_initialized() and dist.get_rank() == 0:
        out.write_text(json.dumps(result))
    shutdown()
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()  # what mpi4py's exit hook would do; the launcher waits for it
    # Leave without interpreter teardown: the model's inner gloo groups would be destroyed during it, with
    # their C++ threads still joinable ("terminate called without an active exception"), after the result
    # was already written.
    os._exit(status)
