"""Rank program for the tests on the model of NCCL: railbench's own rank code on
``tests/support/models/async_backend.py``.

Started under mpirun (by ``tests/test_measure_timing_async.py`` and its neighbours). Every rank registers the model,
starts the world through railbench's ``init_distributed`` with the model in NCCL's role, runs one scenario,
and rank 0 writes what it saw as JSON:

- ``timing``: all_reduce through railbench's timing loop, and the same calls timed by the host clock alone
  (what a loop that forgets to synchronise would report);
- ``rails``: the rails phase (rail groups, rail all_reduce, pair matrix) on pretend nodes; ``ASYNC_RAILS``
  (JSON) overrides the rails settings (sizes, line rate, pairs on or off);
- ``railsprog``: the rails rank program as the command runs it: its before-init step (run directory, NCCL's
  environment) on the real ``/sys`` of each node, then the rails phase (run it on the namespace testbed,
  where every node has its own hostname and rail interfaces);
- ``intranode``: the intra-node pair matrix on one pretend node of all the ranks;
- ``env``, ``envrails``: the order in which NCCL's variables and the world's communicator appear, for ``run``
  and for ``rails`` (and the NIC variables every rank's first communicator saw);
- ``nics``: ranks of one host set different ``NCCL_IB_HCA`` values and start the world (the model refuses);
  later, changed variables are ignored by the next communicator;
- ``nccllogs``: NCCL's logs parsed on each node and gathered to rank 0;
- ``agree``: railbench's agreement on one number across ranks, and the model's time per call;
- ``accept``: the accept command's job on the model (``RAILBENCH_ASYNC_DEAD`` black-holes a NIC there too);
- ``railsjob``: the rails command's job on the model (``RAILBENCH_ASYNC_DIES`` kills a NIC mid-measurement);
- ``dead``: one world rank's NIC black-holed (``RAILBENCH_ASYNC_DEAD``): a group across hosts hangs until the
  model aborts it, a group within one host still works;
- ``capture``: a world all-reduce captured in a graph (``bench.measure.device.capture``) and replayed: how long
  the capture took and what the buffer held after the capture and after the replay;
- ``dumpkill``: a world all-reduce that fails (a dead NIC), then ``ASYNC_HOLD_S`` seconds of the rank living on
  before it reports: torch's heartbeat monitor may end it first.

Pretend nodes: with ``ASYNC_RANKS_PER_NODE=k`` world rank r reports hostname ``node{r // k}``, as if the
launcher had placed k ranks on each host (railbench and the model both learn the node from the hostname).

Usage: ``python -m tests.support.ranks.async_ranks SCENARIO OUT.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist

from bench import sysroot
from bench.busbw import BUSBW_FACTOR
from bench.exits import FabricFault
from bench.frame import evidence
from bench.frame.config_parts import Launch, Output
from bench.measure import device as device_ops
from bench.measure.collectives import get_collective
from bench.measure.size import measure
from bench.measure.timing import Loop, group_max
from bench.profile.cluster import load_profile
from bench.rails.diagnosis.corroborate import convicted_gpu
from bench.rails.measurement.intranode import intra_node_phase
from bench.rails.plan.config import RailsConfig, validate
from bench.rails.rank import RailsJob, rail_prelude, rails_phase
from bench.rundir.finding_words import shortfall_line
from bench.runtime.before_init import run_directory
from bench.runtime.coord import coordinator
from bench.runtime.dist import DistContext, Transport, init_distributed, shutdown
from bench.runtime.env import discover_rank
from bench.runtime.rank_exit import end_rank
from bench.runtime.watchdog import Watchdog
from tests.support.models import async_backend
from tests.support.rails_configs import rails_config

if TYPE_CHECKING:
    from bench.accept.rank import AcceptJob

MODEL_OF_NCCL = Transport("nccl", async_backend.register(), cuda=False)
MIB = 1 << 20
T = TypeVar("T")
JOBS = ("railsjob", "accept")
"""The scenarios that run a command's job (its frame, run.json): their ranks end as the command's do."""


def _pretend_nodes() -> None:
    """``ASYNC_RANKS_PER_NODE=k``: this rank reports the hostname of node ``world rank // k``."""
    per_node = int(os.environ.get("ASYNC_RANKS_PER_NODE") or 0)
    if per_node:
        name = f"node{int(os.environ['OMPI_COMM_WORLD_RANK']) // per_node}"
        socket.gethostname = lambda: name


def _start(before_init: Any = None, oob_ifname: str | None = None) -> DistContext:
    info = discover_rank()
    assert info is not None, "start under mpirun"
    return init_distributed(info, MODEL_OF_NCCL, 60.0, oob_ifname, before_init, sysfs_root=sysroot.LIVE)


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
        Loop(iters, warmup=1),
        dtype=torch.float32,
        elsize=4,
        device=ctx.device,
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


def _rails_settings(profile: str = "local", **given: Any) -> Any:
    defaults: dict[str, Any] = {
        "collectives": ("all_reduce",),
        "rail_bytes": 8 * MIB,
        "pair_bytes": 8 * MIB,
        "iters": 3,
        "warmup": 1,
        "repeats": 1,
    }
    # ASYNC_RAILS overrides any of these (a size given twice was a TypeError).
    config = rails_config(profile=profile, **{**defaults, **given, **json.loads(os.environ.get("ASYNC_RAILS") or "{}")})
    return validate(config)


def _rails() -> dict[str, Any]:
    ctx = _start()
    _, settings = _rails_settings()
    # The local profile binds gloo's rail groups to loopback; the model's groups bind nothing.
    settings = dataclasses.replace(settings, socket_ifname=None)
    began = time.perf_counter()
    outcome = _watched(ctx, lambda watchdog: rails_phase(settings, ctx, watchdog))
    if outcome is None:
        return {}
    return {
        "pairs_Gbps": [8 * t.nbytes / (t.time_us * 1e-6) / 1e9 for t in outcome.pair_times],
        "pairs": [[t.rail, t.node, t.peer] for t in outcome.pair_times],
        "rail_busbw_Gbps": [r.busbw_Gbps for r in outcome.rail_results],
        "rail_samples": [r.measured for r in outcome.rail_results],
        "below": [shortfall_line(s) for s in outcome.below_target],
        "rail_nodes": [[r.rail, r.nnodes] for r in outcome.rail_results],
        "rail_bytes": [r.nbytes for r in outcome.rail_results],
        "defects": [[d.kind, d.node, d.rail, d.conviction.symptom] for d in outcome.named],
        "links": [link.to_json() for link in outcome.written.links],
        "process_groups": outcome.process_groups,
        "nodes": list(outcome.nodes),
        "seconds": time.perf_counter() - began,
    }


def _railsprog(out_root: Path) -> dict[str, Any]:
    """The rails command's rank program: its before-init step, the world, the rails phase (no pair matrix)."""
    profile_path = Path(os.environ["ASYNC_PROFILE"])
    profile, settings = _rails_settings(str(profile_path), pairs=False)
    ctx = _start(rail_prelude(settings, profile, lambda: out_root / "rails-run"), settings.oob_ifname)
    outcome = _watched(ctx, lambda watchdog: rails_phase(settings, ctx, watchdog))
    if outcome is None:
        return {}
    return {
        "nodes": list(outcome.nodes),
        "rail_busbw_Gbps": [r.busbw_Gbps for r in outcome.rail_results],
        "communicators": len(async_backend.NCCL_SEEN),
        "nic_vars": {name: async_backend.nccl_environment().get(name) for name in async_backend.NIC_VARS},
        "profile": profile.name,
    }


def _intranode() -> dict[str, Any]:
    ctx = _start()
    ctx = dataclasses.replace(ctx, hosts=("node0",) * ctx.info.world_size)
    _, settings = validate(rails_config(profile="local", pair_bytes=MIB, iters=3, warmup=1, intra_node=True))
    outcome = _watched(ctx, lambda watchdog: intra_node_phase(settings, ctx, watchdog))
    if outcome is None:
        return {}
    return {
        "pairs_Gbps": [[t.gpu, t.peer, t.busbw_Gbps] for t in outcome.times],
        "remeasured_Gbps": [[t.gpu, t.peer, t.busbw_Gbps] for t in outcome.remeasured],
        # the parts the matrix named, each convicted with no cause and no action, as rails.json would hold it
        "defects": [convicted_gpu(part, action="").to_json() for part in outcome.named.parts],
        "transients": [t.to_json() for t in outcome.named.transients],
        "level_Gbps": outcome.named.level_Gbps,
        "too_noisy": outcome.named.too_noisy,
        "process_groups": outcome.process_groups,
        "communicators": len(async_backend.NCCL_SEEN),
    }


def _order(label: str) -> dict[str, Any]:
    """NCCL's variables as the first communicator saw them, and as they were at the end of start-up."""
    first = async_backend.NCCL_SEEN[0] if async_backend.NCCL_SEEN else {}
    return {"label": label, "seen_at_first_communicator": first, "communicators": len(async_backend.NCCL_SEEN)}


def _env(out_root: Path, command: str) -> dict[str, Any]:
    if command == "rails":
        profile, settings = validate(RailsConfig(profile="local", socket_ifname="lo"))
        ctx = _start(rail_prelude(settings, profile, lambda: out_root / "rails-run"))
    else:
        ctx = _start(lambda prelude: run_directory(prelude, lambda: out_root / f"run-{time.time_ns()}"))
    mine = (str(ctx.out_dir), async_backend.NCCL_SEEN[0] if async_backend.NCCL_SEEN else {})
    everyone: list[Any] = [None] * ctx.info.world_size
    dist.all_gather_object(everyone, mine)
    return {
        **_order(command),
        "out_dirs": [out_dir for out_dir, _ in everyone],
        "seen_by_rank": [seen for _, seen in everyone],
    }


def _nics() -> dict[str, Any]:
    """Ranks of one host with different NCCL_IB_HCA: the world must not form. Then, on a world that formed
    (ASYNC_NICS_AGREE=1), a variable changed afterwards reaches no later communicator."""
    info = discover_rank()
    assert info is not None
    agree = os.environ.get("ASYNC_NICS_AGREE") == "1"
    os.environ["NCCL_IB_HCA"] = "=mlx5_1" if agree else f"=mlx5_{info.rank + 1}"
    try:
        ctx = _start()
    except RuntimeError as exc:
        # No world: rank 0 reports through a file of its own.
        return {"formed": False, "error": " ".join(str(exc).split())}
    os.environ["NCCL_IB_HCA"] = f"=mlx5_{9 + ctx.info.rank}"  # too late: NCCL read it at the first communicator
    later = dist.new_group(list(range(ctx.info.world_size)))
    # No rank leaves while another is still connecting the group's mesh (gloo's connectFullMesh saw "connection
    # closed by peer" when rank 1 exited first under CI load).
    dist.barrier(group=later)
    return {"formed": True, "seen": [seen.get("NCCL_IB_HCA") for seen in async_backend.NCCL_SEEN]}


def _dead() -> dict[str, Any]:
    """World rank 1's NIC black-holed: the world (across hosts) hangs until aborted; a group within a host works."""
    ctx = _start()
    n = ctx.info.world_size
    same_host = [r for r in range(n) if ctx.hosts[r] == ctx.hosts[0]]
    groups = [dist.new_group([r for r in range(n) if ctx.hosts[r] == host]) for host in dict.fromkeys(ctx.hosts)]
    mine = groups[list(dict.fromkeys(ctx.hosts)).index(ctx.hosts[ctx.info.rank])]
    local = torch.ones(4)
    dist.all_reduce(local, group=mine)
    device_ops.synchronize(ctx.device)
    data = torch.ones(1 << 16)
    began = time.perf_counter()
    dist.all_reduce(data)
    queued_s = time.perf_counter() - began
    error = None
    try:
        device_ops.synchronize(ctx.device)
    except RuntimeError as exc:
        error = " ".join(str(exc).split())
    hung_s = time.perf_counter() - began
    again = None
    try:
        dist.all_reduce(data)
        device_ops.synchronize(ctx.device)
    except RuntimeError as exc:
        again = " ".join(str(exc).split())
    return {
        "local_sum": float(local[0]),
        "same_host": len(same_host),
        "queued_s": queued_s,
        "hung_s": hung_s,
        "error": error,
        "again": again,
        "again_s": time.perf_counter() - began - hung_s,
    }


def _capture() -> dict[str, Any]:
    """A world all-reduce captured (after one eager call, as railbench captures) and replayed."""
    ctx = _start()
    data = torch.ones(4)
    began = time.perf_counter()
    error = None
    graph = None
    try:
        graph = device_ops.capture(lambda: dist.all_reduce(data), lambda: dist.all_reduce(data), ctx.device)
    except RuntimeError as exc:
        error = " ".join(str(exc).split())
    captured_s = time.perf_counter() - began
    after_capture = float(data[0])
    if graph is not None:
        graph.replay()
        device_ops.synchronize(ctx.device)
    return {"captured_s": captured_s, "error": error, "after_capture": after_capture, "after_replay": float(data[0])}


def _dumpkill() -> dict[str, Any]:
    """A world all-reduce over a dead NIC fails; the rank then lives on for ``ASYNC_HOLD_S`` seconds."""
    ctx = _start()
    data = torch.ones(4)
    dist.all_reduce(data)
    error = None
    try:
        device_ops.synchronize(ctx.device)
    except RuntimeError as exc:
        error = " ".join(str(exc).split())
    time.sleep(float(os.environ.get("ASYNC_HOLD_S") or 0))
    return {"error": error, "alive": True}


def _agree() -> dict[str, Any]:
    """railbench's agreement on one number (``group_max``) and the model's time per call: a call's latency and
    rate, and its first use on a communicator paying the connection."""
    ctx = _start()
    agreed = group_max(float(ctx.info.rank), None, ctx.device)
    data = torch.ones(MIB // 4)
    calls = []
    for _ in range(2):
        began = time.perf_counter()
        dist.all_reduce(data)
        device_ops.synchronize(ctx.device)
        calls.append(time.perf_counter() - began)
    everyone: list[Any] = [None] * ctx.info.world_size
    dist.all_gather_object(everyone, agreed)
    return {"agreed": everyone, "first_s": calls[0], "second_s": calls[1], "bytes": MIB}


def _nccllogs(out_root: Path) -> dict[str, Any]:
    """Each pretend node's NCCL log is parsed on that node and removed before rank 0 gathers: rank 0 never reads
    another node's file (as without a shared file system), and still reports every node's NICs."""
    ctx = _start()
    host, rank = ctx.hosts[ctx.info.rank], ctx.info.rank
    log = out_root / "nccl" / f"{host}-{rank}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        f"{host}:1:1 [0] NCCL INFO NCCL version 2.21.5+cuda12.4\n"
        f"{host}:1:2 [0] NCCL INFO NET/IB : Using [0]mlx5_{rank + 1}:1/IB ; OOB eth0:10.0.0.{rank}<0>\n"
    )
    dist.barrier()
    mine = evidence.node_nccl_logs(out_root, ctx.info.local_rank, host)
    dist.barrier()
    log.unlink()  # gone before rank 0 gathers: only what each node parsed can reach rank 0
    dist.barrier()
    coord = coordinator("nccl", ctx.store, rank, ctx.info.world_size, 60.0)  # as the frame's, on NCCL
    found, _ = evidence.gather_nccl_log_evidence(mine, load_profile("lambda-1cc"), coord)
    return {
        "hosts": sorted(found["hosts"]) if found else [],
        "devices": found and {name: h["devices"] for name, h in found["hosts"].items()},
    }


def _accept(out_root: Path) -> dict[str, Any]:
    """``railbench accept`` as the command's ranks run it (its job, the frame, run.json), with the model in
    NCCL's role: ``transport_for`` hands out the model where the command would start NCCL (``Transport``'s
    docstring: only the test suite does this). Small sizes: the model's time, not the sizes, is under test."""
    from bench.accept.config import AcceptConfig
    from bench.accept.rank import AcceptJob
    from bench.sweep.config import RunConfig

    profile = os.environ.get("ASYNC_PROFILE") or "local"
    rails = rails_config(
        profile=profile, collectives=("all_reduce",), rail_bytes=MIB, pair_bytes=MIB, iters=3, warmup=1, repeats=1
    )
    sweep = RunConfig(collectives=("all_reduce",), min_bytes=MIB, max_bytes=MIB, iters=3, warmup=1)
    launch, output = Launch(backend="gloo", timeout_s=60.0), Output(out=out_root / "accept-run", no_history=True)
    config = AcceptConfig(profile, sweep, rails, launch=launch, output=output)
    done = _job_on_the_model(lambda: AcceptJob(config))
    run_json = out_root / "accept-run" / "run.json"
    return {**done, "run": json.loads(run_json.read_text()) if run_json.is_file() else {}}


def _job_on_the_model(make: Callable[[], RailsJob | AcceptJob]) -> dict[str, Any]:
    """Run a command's job as its ranks do (``run_job``: the frame, run.json) with the model in NCCL's role:
    ``transport_for`` hands out the model where the command would start NCCL (``Transport``'s docstring: only
    the test suite does this). Returns the job's exit status and how long it took."""
    from bench.frame.job import run_job
    from bench.runtime import dist as bench_dist

    bench_dist.transport_for = lambda backend: MODEL_OF_NCCL
    info = discover_rank()
    assert info is not None, "start under mpirun"

    def job() -> RailsJob | AcceptJob:
        made = make()
        # A socket profile binds gloo's rail groups to its interfaces; the model's groups bind nothing.
        made.settings = dataclasses.replace(made.settings, socket_ifname=None)
        return made

    began = time.perf_counter()
    status = run_job(info, job)
    return {"exit": status, "seconds": time.perf_counter() - began}


def _railsjob(out_root: Path) -> dict[str, Any]:
    """``railbench rails`` as the command's ranks run it (its job, the frame, run.json) with the model in NCCL's
    role, as ``accept`` above. ``RAILBENCH_ASYNC_DIES`` may kill a NIC mid-measurement: rank 0 may then end from
    its watchdog's thread, so the test reads run.json from the run directory, not this scenario's output."""
    profile = os.environ.get("ASYNC_PROFILE") or "local"
    sizes = {"rail_bytes": MIB, "pair_bytes": MIB, **json.loads(os.environ.get("ASYNC_RAILS") or "{}")}
    config = rails_config(
        profile=profile,
        collectives=("all_reduce",),
        iters=3,
        warmup=1,
        repeats=1,
        launch=Launch(timeout_s=60.0),
        output=Output(out=out_root / "rails-run"),
        **sizes,
    )
    return _job_on_the_model(lambda: RailsJob(config))


def main(argv: list[str]) -> int:
    scenario, out = argv[0], Path(argv[1])
    _pretend_nodes()
    scenarios: dict[str, Callable[[], dict[str, Any]]] = {
        "timing": _timing,
        "rails": _rails,
        "railsprog": lambda: _railsprog(out.parent),
        "intranode": _intranode,
        "env": lambda: _env(out.parent, "run"),
        "envrails": lambda: _env(out.parent, "rails"),
        "nics": _nics,
        "dead": _dead,
        "capture": _capture,
        "dumpkill": _dumpkill,
        "agree": _agree,
        "nccllogs": lambda: _nccllogs(out.parent),
        "accept": lambda: _accept(out.parent),
        "railsjob": lambda: _railsjob(out.parent),
    }
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    try:
        result = scenarios[scenario]()
    except FabricFault as exc:
        # As the command's entry ends a rank (bench.cli.main): run.json already says the FAIL, rank 0 says it.
        if rank == 0:
            print(f"railbench: FAIL: {exc}", file=sys.stderr)
        return exc.exit_status
    if rank == 0 and result:
        out.write_text(json.dumps(result))
    if scenario not in ("dead", "dumpkill"):  # a black-holed world cannot be torn down; os._exit ends the rank
        shutdown()
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    if sys.argv[1] in JOBS:
        end_rank(status)  # as the command's ranks leave (bench.cli.entry)
    sys.stdout.flush()
    sys.stderr.flush()
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()  # what mpi4py's exit hook would do; the launcher waits for it
    # Leave without interpreter teardown: the model's inner gloo groups would be destroyed during it, with
    # their C++ threads still joinable ("terminate called without an active exception"), after the result
    # was already written.
    os._exit(status)
