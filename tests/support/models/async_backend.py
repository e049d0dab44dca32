"""A test-only torch.distributed backend that models NCCL on the CPU: railbench's own code runs unchanged on it.

gloo, the only backend that runs here, completes every call before returning, connects everything when a group
is made, reads no NIC variable and never hangs for long: it cannot show the mistakes that matter on GPUs. This
model can. Each behaviour below cites the NCCL (``src/...``) or torch (``torch/...``) source it models.

1. **Asynchronous completion.** Every operation is queued on one worker thread per process (the "stream"), in
   program order, and really carried out there by an inner gloo process group. ``wait()`` never blocks the host
   (torch ``ProcessGroupNCCL.cpp`` ``WorkNCCL::wait`` -> ``synchronizeStream``: the current stream waits, the
   host does not), whatever the size: railbench code that reads a result on the host must synchronise first
   (``bench.measure.device.synchronize``). Two exceptions block, as they do on a GPU: ``barrier()``
   (``ProcessGroupNCCL::barrier`` marks its work ``isBarrierOp_`` and ``wait`` synchronises the stream), and
   the calls torch's own object collectives make (``distributed_c10d.all_gather_object`` and friends read their
   results with ``.item()`` / ``.cpu()``, device-to-host copies that wait for the stream).
2. **Time per call.** Each operation takes at least ``latency + bus bytes / rate + first-use cost``: bus bytes
   with nccl-tests' factors at ``RAILBENCH_ASYNC_GBPS`` (Gb/s); latency = the algorithm's steps times
   ``RAILBENCH_ASYNC_STEP_US`` (NCCL ``src/graph/tuning.cc`` ``ncclTopoTuneModel``: a ring all_reduce has
   2(n-1) steps, all_gather and reduce_scatter n-1, each paying the per-hop latency; point-to-point one).
   ``RAILBENCH_ASYNC_SLOW=RANK:GBPS`` runs world rank RANK's operations at GBPS (a degraded GPU or link),
   and every operation it takes part in at that rate: a ring or a pair moves at its slowest member's pace
   (NCCL's kernels wait for their peer's data, ``src/device/prims_simple.h`` ``waitPeer``). The stream keeps
   a **device clock** (``bench.measure.device.register_host_clock``), as a GPU's does for CUDA events: it
   advances by each operation's modelled time and, while the stream is idle, with the wall clock. A host
   starved of CPU (the test machine under load) delays when work is queued and may make the inner gloo
   transfer overrun the model, but a GPU's kernels do not slow down when its host is busy: what railbench
   measures is the model's rate, not the test machine's load.
3. **First-use connection.** NCCL connects an algorithm's channels the first time a communicator uses it
   (``src/init.cc`` ``NCCL_RUNTIME_CONNECT``, default 1; ``src/enqueue.cc`` ``ncclPrepareTasks`` sets
   ``algoNeedConnect`` for an algorithm not yet in ``initAlgoChannels``), and a peer's point-to-point
   connectors on the first send or receive to it. The algorithm depends on the size (tuning.cc picks the
   fastest for each call), so the model charges ``RAILBENCH_ASYNC_CONNECT_MS`` once per (communicator,
   collective kind, size class: up to :data:`SMALL_BYTES` or above) and once per (communicator, direction,
   peer) for point-to-point.
4. **One environment per process.** NCCL reads its variables once per process and keeps them (``NCCL_PARAM``'s
   cached value, ``src/misc/param.cc``; ``src/transport/net_ib/init.cc`` ``ncclIbInitDevices`` builds the IB
   device list from ``NCCL_IB_HCA`` once, under ``ncclNIbDevs == -1``): the model takes one snapshot of
   ``NCCL_*`` at the process's first communicator and ignores later changes (:data:`NCCL_SEEN` records, per
   communicator, the snapshot it used).
5. **One NIC view per node.** NCCL fuses the topology of the local ranks of a communicator (``src/graph/topo.cc``
   ``ncclTopoGetSystem``: ``bootstrapIntraNodeAllGather`` of every local rank's XML, then ``ncclTopoFuseXml``);
   each process's NICs come from its own ``NCCL_IB_HCA``, so ranks of one node that select different NICs give
   one fused system with clashing NIC indices, and NCCL's maintainers say not to do it (NVIDIA/nccl issue 1478).
   The model refuses such a communicator: every member posts its hostname and its ``NCCL_IB_HCA`` /
   ``NCCL_SOCKET_IFNAME`` through the store the group is made with, and the group fails to form when two ranks
   of one host differ.
6. **Errors hang until aborted.** NCCL's connections are lazy, so a communicator over a black-holed NIC forms;
   its first operation then retries until IB gives up (``NCCL_IB_TIMEOUT`` 20 x ``NCCL_IB_RETRY_CNT`` 7, about
   30 s, ``net_ib``), and torch's watchdog dumps (``TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC``, 60 s) before it
   aborts the communicator (``ProcessGroupNCCL::watchdogHandler``). ``RAILBENCH_ASYNC_DEAD=RANK[,RANK...]``
   black-holes the NIC of those world ranks: every operation of a communicator that spans more than one host and
   includes one of them hangs on every member, and fails after ``RAILBENCH_ASYNC_ABORT_S`` (default 90). The
   communicator is then aborted: every later operation on it fails at once. A failure surfaces at the next host
   synchronisation (``bench.measure.device.synchronize``), as a CUDA error does, or in a blocking ``wait()``.
   Communicators within one host (NVLink) are not affected. Its owner may abort it sooner
   (``torch.distributed.distributed_c10d._abort_process_group`` -> ``ProcessGroupNCCL::abort`` ->
   ``ncclCommAbort``, whose abort flag makes the communicator's kernels return, ``src/init.cc``): the hung
   operation then fails at once on that member, and so does every later one. An owner that aborts a
   communicator whose operation already failed has dealt with that failure: it is the communicator's
   (``ncclCommGetAsyncError``), not the device's, and does not surface at a later synchronisation.

7. **A link that dies mid-run.** ``RAILBENCH_ASYNC_DIES=RANK:N`` black-holes world rank RANK's NIC after it has
   taken part in N operations of communicators across hosts: its next such operation, and every member's
   operation that waits on it, hangs until IB gives up (``RAILBENCH_ASYNC_ABORT_S``) and fails; the communicator
   is then aborted on those members (``ProcessGroupNCCL::watchdogHandler`` with
   ``TORCH_NCCL_ASYNC_ERROR_HANDLING`` 2: the failed work raises, later work fails at once). Members of the
   communicator that were not waiting on it go on until they next need it.
8. **NCCL's own log.** Where ``NCCL_DEBUG_FILE`` is set, at the level ``NCCL_DEBUG`` asks for (once per process,
   behaviour 4; ``src/debug.cc``: ``WARN`` prints WARN lines only, ``INFO`` and ``TRACE`` INFO lines too), the
   process's first communicator writes (INFO) ``NET/IB : Using`` with its host's NICs and its out-of-band
   address (``src/transport/net_ib.cc`` ``ncclIbInit``: ``... [RO]; OOB eth0:198.18.0.2<0>``), and a failed
   operation over a dead NIC writes (WARN), on each rank that was talking through it, net_ib's completion error
   for the peer whose retries ran out (``ncclIbTest``; status 12 is IBV_WC_RETRY_EXC_ERR) in the wording of the
   NCCL that ``RAILBENCH_ASYNC_NCCL`` names: ``2.18`` (``with error 12, opcode 0, len 0, ...``, no HCA), ``2.20``
   (``with status=12 ...``, no HCA), ``2.22`` (the default: ``NET/IB: ... hca mlx5_2``) or ``2.28``
   (``status=IBV_WC_RETRY_EXC_ERR(12) ...``), each NCCL's own format string (``bench.nccllogs.ib_completion``
   cites the commits). NICs are named as on a 1-Click Cluster node: local rank k drives ``mlx5_{k+1}``
   (``mlx5_0`` is the storage NIC). A host's out-of-band address is, as NCCL finds it (``ncclFindInterfaces``,
   ``src/misc/socket.cc``), the IPv4 address of the first interface ``NCCL_SOCKET_IFNAME`` selects (a prefix,
   ``=`` exact, ``^`` excluded; unset: ``ib`` interfaces first, then any but ``docker`` and ``lo``); where two
   hosts of the world would share one (pretend nodes on one machine), host h of the world's sorted hosts is
   ``198.18.0.{h+1}`` instead.

9. **A work that ended in an error is completed.** ``is_completed()`` is true for a failed operation as for a
   finished one (torch ``ProcessGroupNCCL.cpp`` ``WorkNCCL::isCompleted``: ``exception() ||
   finishedGPUExecutionInternal()``), and ``exception()`` says which (the error, or None: torch's ``Work``
   binding, ``torch/csrc/distributed/c10d/init.cpp``). ``RAILBENCH_ASYNC_ABORT_S`` is then the time IB takes to
   give up (``NCCL_IB_TIMEOUT`` x ``NCCL_IB_RETRY_CNT``: about 4 s at a site's ``NCCL_IB_TIMEOUT=17``).
10. **CUDA-graph capture.** The model captures graphs as a GPU does (``bench.measure.device``'s host capture):
   the capture starts by synchronising the device (``torch/cuda/graphs.py``: ``graph.__enter__`` calls
   ``torch.cuda.synchronize()``), so it waits for the eager call made before it on the capture's stream, and a
   collective of a communicator over a dead NIC hangs it exactly as the eager call hangs (behaviour 6);
   captured operations are recorded, not run, and every ``replay()`` queues them again, each hanging again
   where the eager call would.
11. **torch's kill after a dump.** The first failure a communicator's watchdog sees (behaviour 6, not an
   abort by its owner: ``ProcessGroupNCCL::abort`` broadcasts nothing unless ``TORCH_NCCL_EXTRA_DUMP_ON_EXEC``)
   posts the dump signal in the world's store (``ProcessGroupNCCL::Watchdog::runLoop`` ->
   ``broadcastDumpSignal``). Where ``TORCH_NCCL_DUMP_ON_TIMEOUT`` is on (torch's default since 2.7, pytorch PR
   143446), every process's heartbeat monitor (``HeartbeatMonitor::runLoop``, started with the world's group)
   polls for that signal every ``TORCH_NCCL_COORD_CHECK_MILSEC`` (1000), then sleeps
   ``TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC`` (480, ``getCvarInt(..., 60 * 8)``) and ends its process
   (``terminateProcess``: ``LOG(FATAL)``, SIGABRT) unless the world's group was shut down before
   (``HeartbeatMonitor::stop``). Every rank dies, those whose own communicators are fine included.

It is a model of NCCL's behaviour, not a stand-in for railbench: nothing here knows railbench's code.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.futures import Future

from bench.measure import device as device_ops
from tests.support.models import async_nccl_log as nccl_log

NAME = "asyncsim"
RATE_VAR = "RAILBENCH_ASYNC_GBPS"
SLOW_VAR = "RAILBENCH_ASYNC_SLOW"
STEP_VAR = "RAILBENCH_ASYNC_STEP_US"
CONNECT_VAR = "RAILBENCH_ASYNC_CONNECT_MS"
DEAD_VAR = "RAILBENCH_ASYNC_DEAD"
ABORT_VAR = "RAILBENCH_ASYNC_ABORT_S"
DIES_VAR = "RAILBENCH_ASYNC_DIES"
NIC_VARS = ("NCCL_IB_HCA", "NCCL_SOCKET_IFNAME")
SMALL_BYTES = 64 * 1024
"""Sizes up to this use one algorithm (NCCL's latency-bound choice), larger ones another: two first uses."""
_TORCH_HOST_READERS = frozenset(
    {
        "all_gather_object",
        "gather_object",
        "broadcast_object_list",
        "scatter_object_list",
        "send_object_list",
        "recv_object_list",
    }
)
"""torch's object collectives: they read their results on the host at once (behaviour 1)."""

NCCL_SEEN: list[dict[str, str]] = []
"""The ``NCCL_*`` environment each communicator used (the process's snapshot), in creation order."""
_SNAPSHOT: dict[str, str] | None = None


def nccl_environment() -> dict[str, str]:
    """This process's ``NCCL_*`` variables as its first communicator saw them (behaviour 4)."""
    global _SNAPSHOT
    if _SNAPSHOT is None:
        _SNAPSHOT = {k: v for k, v in os.environ.items() if k.startswith("NCCL_")}
    return dict(_SNAPSHOT)


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


_ADDRESS: dict[str, str] = {}
"""Each host's out-of-band address (behaviour 8), fixed when the world is made."""
_LOCAL_RANK: list[int] = []
"""This process's rank among the world's ranks on its host (the GPU, and so the NIC, it drives)."""
_CROSS_OPS = 0
"""Operations of communicators across hosts this process has taken part in (behaviour 7)."""


def _dies() -> tuple[int, int] | None:
    """``RAILBENCH_ASYNC_DIES``: (the world rank whose NIC dies, after how many operations across hosts)."""
    rank, _, after = os.environ.get(DIES_VAR, "").partition(":")
    return (int(rank), int(after)) if rank.strip() else None


def _hca(local_rank: int) -> str:
    return f"mlx5_{local_rank + 1}"


def _nccl_log(local_rank: int, text: str) -> None:
    """One line of NCCL's log, where the process's snapshot asks for its level (behaviour 8)."""
    nccl_log.write(nccl_environment(), local_rank, text)


class OwnerAborted(RuntimeError):
    """An operation of a communicator its owner aborted (behaviour 6): ``ncclCommAbort`` makes the kernel
    return, so the work fails but no error is left on the device for the next synchronisation."""


class _Stream:
    """One in-order queue of work per process, like a GPU stream, with a drain like ``cuda.synchronize``."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[], float], Future[None], Callable[[], bool]]] = queue.Queue()
        self._error: tuple[BaseException, Callable[[], bool]] | None = None
        """The last failure not yet surfaced, and whether its communicator's owner has since aborted it."""
        self._lock = threading.Lock()
        self._device_s = 0.0
        """The device clock at the end of the last operation (or at ``_idle_from``, while idle)."""
        self._idle_from: float | None = time.perf_counter()
        """Wall-clock time since which the stream has been idle; None while an operation runs."""
        threading.Thread(target=self._run, name="asyncsim-stream", daemon=True).start()

    def clock(self) -> float:
        """The stream's device clock in seconds (behaviour 2): modelled time per operation, wall time idle."""
        with self._lock:
            idle = time.perf_counter() - self._idle_from if self._idle_from is not None else 0.0
            return self._device_s + idle

    def _run(self) -> None:
        while True:
            job, done, handled = self._queue.get()
            with self._lock:
                if self._idle_from is not None:
                    self._device_s += time.perf_counter() - self._idle_from
                self._idle_from = None
            charged = 0.0
            try:
                charged = job()
                done.set_result(None)
            except OwnerAborted as exc:  # the kernel returned: its work failed, the device is fine
                done.set_exception(exc)
            except BaseException as exc:  # surfaces at the next drain, as a CUDA error does at a sync
                self._error = (exc, handled)
                done.set_exception(exc)
            finally:
                with self._lock:
                    self._device_s += charged
                    self._idle_from = time.perf_counter()
                self._queue.task_done()

    def submit(self, job: Callable[[], float], handled: Callable[[], bool] = lambda: False) -> Future[None]:
        """Queue ``job``; ``handled`` says whether the owner of its communicator has aborted it since: the
        failure is the communicator's (``ncclCommGetAsyncError``), and an owner that aborted the communicator
        has dealt with it, so it does not surface at a later synchronisation (behaviour 6)."""
        done: Future[None] = Future()
        self._queue.put((job, done, handled))
        return done

    def drain(self) -> None:
        self._queue.join()
        if self._error is not None:
            (error, handled), self._error = self._error, None
            if not handled():
                raise RuntimeError(f"asyncsim: a queued operation failed: {error}") from error


STREAM = _Stream()
device_ops.register_host_queue(STREAM.drain)
device_ops.register_host_clock(STREAM.clock)


class AsyncWork(dist._Work):
    """The handle of one queued operation; ``wait()`` blocks the host only when ``blocking``."""

    def __init__(self, done: Future[None], blocking: bool) -> None:
        super().__init__()
        self._done, self._blocking = done, blocking

    def wait(self, timeout: timedelta | None = None) -> bool:
        if self._blocking:
            self._done.wait()
        return True

    def is_completed(self) -> bool:
        """Ended, finished or failed (behaviour 9)."""
        return self._done.done()

    def exception(self) -> BaseException | None:
        """The error the operation ended in, or None (behaviour 9)."""
        if not self._done.done():
            return None
        try:
            self._done.value()
        except BaseException as exc:  # the operation's own error, as torch's binding hands it back
            return exc
        return None

    def get_future(self) -> Future[None]:
        return self._done


def _cvar_on(name: str, default: bool) -> bool:
    """A torch boolean variable (``getCvarBool``): 1/true/yes on, 0/false/no off, anything else the default."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    return default


DUMP_KEY = "asyncsim/dump_signal"
"""The world's store key the first watchdog-detected failure posts (behaviour 11)."""


class _HeartbeatMonitor:
    """torch's heartbeat monitor of the world's group (behaviour 11): after the dump signal, a sleep of
    ``TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC``, then SIGABRT, unless the world's group was shut down first."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._stopped = threading.Event()
        self.signalled = threading.Event()
        self._poll_s = _float("TORCH_NCCL_COORD_CHECK_MILSEC", 1000.0) / 1e3
        self._sleep_s = _float("TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC", 480.0)
        if _cvar_on("TORCH_NCCL_DUMP_ON_TIMEOUT", True):
            threading.Thread(target=self._run, name="asyncsim-heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _seen(self) -> bool:
        if self.signalled.is_set():
            return True
        try:
            return bool(self._store.check([DUMP_KEY]))
        except RuntimeError:  # the store is gone: torch gives up polling it, and so does the model
            return False

    def _run(self) -> None:
        while not self._seen():
            if self._stopped.wait(self._poll_s):
                return
        if self._stopped.wait(self._sleep_s):
            return
        sys.stderr.write(
            f"asyncsim: torch's heartbeat monitor ends this process {self._sleep_s:g} s after the dump signal "
            "(TORCH_NCCL_DUMP_ON_TIMEOUT on)\n"
        )
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGABRT)


_MONITOR: list[_HeartbeatMonitor] = []
"""This process's heartbeat monitor, made with the world's group (behaviour 11)."""


def _dump_signal(world_rank: int) -> None:
    """The first failure a watchdog sees posts the dump signal for every rank (behaviour 11)."""
    if not _MONITOR:
        return
    monitor = _MONITOR[0]
    monitor.signalled.set()
    with contextlib.suppress(RuntimeError):
        monitor._store.set(DUMP_KEY, str(world_rank))


_CAPTURING: list[list[Callable[[], float]]] = []
"""The operations recorded by the graph being captured, if any (behaviour 10)."""


class ModelGraph:
    """A captured graph: its operations, queued again by every ``replay()`` (behaviour 10)."""

    def __init__(self, jobs: list[Callable[[], float]]) -> None:
        self._jobs = jobs

    def replay(self) -> None:
        for job in self._jobs:
            STREAM.submit(job)  # a replay's failure is the device's to surface


def _capture(record: Callable[[], None]) -> ModelGraph:
    """The graph of what ``record`` queues (behaviour 10): the device synchronised first, as torch's does."""
    STREAM.drain()
    jobs: list[Callable[[], float]] = []
    _CAPTURING.append(jobs)
    try:
        record()
    finally:
        _CAPTURING.pop()
    return ModelGraph(jobs)


device_ops.register_host_capture(_capture)


def _nbytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _read_on_host_by_torch() -> bool:
    """Whether the caller is one of torch's object collectives, which read the result on the host at once."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name in _TORCH_HOST_READERS and frame.f_globals.get("__name__", "").startswith(
            "torch.distributed"
        ):
            return True
        frame = frame.f_back
    return False


def _post_and_agree(store: Any, rank: int, size: int, world_rank: int, timeout: timedelta) -> list[dict[str, Any]]:
    """Every member's host, world rank and NIC variables; RuntimeError when two ranks of one host differ
    (behaviour 5). Posted through the group's own store, as NCCL's bootstrap exchanges its peers' info."""
    nics = {name: nccl_environment().get(name) for name in NIC_VARS}
    post = {"host": socket.gethostname(), "world": world_rank, "oob": nccl_log.oob_address(nccl_environment()), **nics}
    store.set(f"asyncsim/member/{rank}", json.dumps(post))
    keys = [f"asyncsim/member/{r}" for r in range(size)]
    store.wait(keys, timeout)
    members = [json.loads(store.get(k)) for k in keys]
    mine = members[rank]
    for r, other in enumerate(members):
        if other["host"] != mine["host"]:
            continue
        for name in NIC_VARS:
            if other[name] != mine[name]:
                raise RuntimeError(
                    f"asyncsim: ranks {rank} and {r} of this communicator share host {mine['host']} but see "
                    f"{name}={mine[name]!r} and {other[name]!r}: NCCL fuses the NIC topology of a node's ranks "
                    "and cannot build rings over per-rank NIC lists"
                )
    return members


class AsyncProcessGroup(dist.ProcessGroup):
    """The operations railbench uses, each queued on :data:`STREAM` and done by an inner gloo group."""

    def __init__(self, store: Any, rank: int, size: int, timeout: timedelta) -> None:
        super().__init__(rank, size)
        NCCL_SEEN.append(nccl_environment())
        # The world is the first group made: until it exists, ``rank`` is the world rank.
        world_rank = dist.get_rank() if dist.is_initialized() else rank
        members = _post_and_agree(store, rank, size, world_rank, timeout)
        dead = {int(r) for r in os.environ.get(DEAD_VAR, "").split(",") if r.strip()}
        spans_hosts = len({m["host"] for m in members}) > 1
        self._hung = spans_hosts and any(m["world"] in dead for m in members)
        self._abort_s = _float(ABORT_VAR, 90.0)
        self._spans_hosts = spans_hosts
        self._world = world_rank
        self._members = [(str(m["host"]), int(m["world"])) for m in members]
        self._is_world = not _ADDRESS
        if self._is_world:  # torch's heartbeat monitor lives with the world's group (behaviour 11)
            _MONITOR[:] = [_HeartbeatMonitor(store)]
        if not _ADDRESS:  # the world: every host's address, and this process's NET/IB line (behaviour 8)
            mine = sorted(w for h, w in self._members if h == socket.gethostname())
            _ADDRESS.update(nccl_log.world_addresses(members))
            _LOCAL_RANK.append(mine.index(world_rank))
            nics = " ".join(f"[{k}]{_hca(k)}:1/IB" for k in range(len(mine)))
            _nccl_log(self._local, f"INFO NET/IB : Using {nics} [RO]; OOB eth0:{_ADDRESS[socket.gethostname()]}<0>")
        dies = _dies()
        self._dying: tuple[int, int] | None
        self._dying = dies if dies is not None and spans_hosts and dies[0] in {w for _, w in self._members} else None
        # A hung group's operations never reach its inner group; a dying one's members wait in it until IB gives up.
        inner_timeout = timedelta(seconds=self._abort_s) if self._dying else timeout
        self._inner = dist.ProcessGroupGloo(store, rank, size, inner_timeout)
        self._n = size
        self._gbps = _rate(world_rank)
        self._member_gbps = [_rate(int(m["world"])) for m in members]
        """Each member's own rate (by group rank): an operation moves at its slowest participant's."""
        self._step_s = _float(STEP_VAR, 0.0) * 1e-6
        self._connect_s = _float(CONNECT_VAR, 0.0) * 1e-3
        self._connected: set[tuple[object, ...]] = set()
        self._aborted: str | None = None
        self._abort_called = threading.Event()

    def getBackendName(self) -> str:
        return NAME

    def abort(self) -> None:
        """The owner aborts the communicator (behaviour 6): its hung operation and every later one fail."""
        self._aborted = "aborted by its owner"
        self._abort_called.set()

    def shutdown(self) -> None:
        """``destroy_process_group``: the world's group stops its heartbeat monitor (behaviour 11)."""
        if self._is_world and _MONITOR:
            _MONITOR[0].stop()

    def _queue(
        self,
        use: tuple[object, ...],
        steps: int,
        bus_bytes: float,
        run: Callable[[], Any],
        *,
        blocking: bool = False,
        peer: int | None = None,
    ) -> AsyncWork:
        first_use = use not in self._connected
        self._connected.add(use)
        gbps = min(self._gbps, self._member_gbps[peer]) if peer is not None else min(self._member_gbps)
        modelled = steps * self._step_s + 8 * bus_bytes / (gbps * 1e9) + (self._connect_s if first_use else 0)

        talks_to = self._talks_to(peer)
        recording = _CAPTURING[-1] if _CAPTURING else None

        def job() -> float:
            if self._aborted is not None:
                kind = OwnerAborted if self._abort_called.is_set() else RuntimeError
                raise kind(f"asyncsim: communicator aborted earlier ({self._aborted})")
            began = time.perf_counter()
            died = self._nic_died()
            try:
                if self._hung or died:
                    # Nothing crosses the dead NIC: every member waits until the watchdog or its owner aborts.
                    if self._abort_called.wait(self._abort_s):
                        raise OwnerAborted("asyncsim: communicator aborted by its owner while the operation hung")
                    if died:
                        self._completion_errors(talks_to)
                    raise RuntimeError(f"NET/IB: retry exceeded, communicator aborted after {self._abort_s:g} s")
                run().wait()
            except OwnerAborted:
                self._aborted = "aborted by its owner"
                raise
            except RuntimeError as exc:
                if self._dying is not None and not died and self._dying[0] in talks_to:
                    self._completion_errors([self._dying[0]])  # waited on the dead NIC until IB gave up
                self._aborted = " ".join(str(exc).split())[:200]
                _dump_signal(self._world)  # torch's watchdog saw the failure (behaviour 11)
                raise
            left = modelled - (time.perf_counter() - began)
            if left > 0:
                time.sleep(left)
            return modelled

        if recording is not None:  # captured: recorded, run by each replay (behaviour 10)
            recording.append(job)
            done: Future[None] = Future()
            done.set_result(None)
            return AsyncWork(done, False)
        return AsyncWork(STREAM.submit(job, self._abort_called.is_set), blocking or _read_on_host_by_torch())

    @property
    def _local(self) -> int:
        """This process's local rank on its host, fixed with the world (the GPU and the NIC it drives)."""
        return _LOCAL_RANK[0] if _LOCAL_RANK else 0

    def _talks_to(self, peer: int | None) -> list[int]:
        """World ranks on other hosts this member exchanges data with in one operation: a point-to-point peer,
        else its ring neighbours (``src/graph/rings.cc``: a ring visits the members in order)."""
        me = next(i for i, (_, w) in enumerate(self._members) if w == self._world)
        near = [peer] if peer is not None else [(me - 1) % len(self._members), (me + 1) % len(self._members)]
        host = self._members[me][0]
        return sorted({self._members[i][1] for i in near if self._members[i][0] != host})

    def _nic_died(self) -> bool:
        """Whether this operation is the dying rank's after its NIC died (behaviour 7): counted in stream order
        over communicators across hosts."""
        global _CROSS_OPS
        if self._dying is None or self._world != self._dying[0]:
            return False
        _CROSS_OPS += 1
        return self._dying[1] < _CROSS_OPS

    def _completion_errors(self, peers: list[int]) -> None:
        """net_ib's WARN for each peer whose connection's retries ran out (behaviour 8)."""
        me = _ADDRESS.get(socket.gethostname(), "0.0.0.0")
        for world in peers:
            host = next(h for h, w in self._members if w == world)
            them = _ADDRESS.get(host, "0.0.0.0")
            _nccl_log(self._local, nccl_log.completion_warn(f"{them}<50532>", me, them, _hca(self._local)))

    def _ring(self, kind: str, moved: int, steps: int, bus_bytes: float, run: Callable[[], Any]) -> AsyncWork:
        return self._queue((kind, moved <= SMALL_BYTES), steps, bus_bytes, run)

    def allreduce(self, tensors: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        s, n = _nbytes(tensors), self._n
        return self._ring(
            "all_reduce", s, 2 * (n - 1), s * 2 * (n - 1) / n, lambda: self._inner.allreduce(tensors, opts)
        )

    def all_gather_single(self, out: torch.Tensor, inp: torch.Tensor, opts: Any = None) -> AsyncWork:
        s, n = _nbytes([out]), self._n
        return self._ring("all_gather", s, n - 1, s * (n - 1) / n, lambda: self._inner._allgather_base(out, inp, opts))

    def allgather(self, outs: list[list[torch.Tensor]], inps: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        s, n = sum(_nbytes(o) for o in outs), self._n
        return self._ring("all_gather", s, n - 1, s * (n - 1) / n, lambda: self._inner.allgather(outs, inps, opts))

    def gather(self, outs: list[list[torch.Tensor]], inps: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        # torch ProcessGroupNCCL::gather: the root receives every rank's tensor (ncclRecv from each, ncclSend to
        # the root, in one NCCL group); its bytes cross the root's link once.
        s = _nbytes(inps) * self._n
        return self._ring("gather", s, 1, s, lambda: self._inner.gather(outs, inps, opts))

    def broadcast(self, tensors: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        s = _nbytes(tensors)
        return self._ring("broadcast", s, self._n - 1, s, lambda: self._inner.broadcast(tensors, opts))

    def send(self, tensors: list[torch.Tensor], dst: int, tag: int = 0) -> AsyncWork:
        s = _nbytes(tensors)
        return self._queue(("send", dst), 1, s, lambda: self._inner.send(tensors, dst, tag), peer=dst)

    def recv(self, tensors: list[torch.Tensor], src: int, tag: int = 0) -> AsyncWork:
        s = _nbytes(tensors)
        return self._queue(("recv", src), 1, s, lambda: self._inner.recv(tensors, src, tag), peer=src)

    def barrier(self, opts: Any = None) -> AsyncWork:
        # NCCL's barrier is a one-element all-reduce whose wait() synchronises the stream: it blocks the host.
        steps = 2 * (self._n - 1)
        return self._queue(("all_reduce", True), steps, 0, lambda: self._inner.barrier(opts), blocking=True)


def _rate(world_rank: int) -> float:
    """The rate this process's operations run at: ``RAILBENCH_ASYNC_GBPS``, or the slow rank's own rate."""
    slow_rank, _, slow_gbps = os.environ.get(SLOW_VAR, "").partition(":")
    if slow_rank and int(slow_rank) == world_rank:
        return float(slow_gbps)
    return _float(RATE_VAR, 8.0)


def _create(store: Any, rank: int, size: int, timeout: timedelta) -> AsyncProcessGroup:
    return AsyncProcessGroup(store, rank, size, timeout)


def register() -> str:
    """Make ``asyncsim`` a torch.distributed backend in this process; returns its name."""
    if NAME.upper() not in dist.Backend._plugins:
        dist.Backend.register_backend(NAME, _create, devices=["cpu"])
    return NAME
