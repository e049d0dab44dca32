"""A test-only torch.distributed backend that models NCCL's asynchrony on the CPU.

NCCL's operations are queued on a CUDA stream: ``Work.wait()`` returns at once (it only makes the current
stream wait), the transfer happens later, and the host learns that it ended only from the device
(``torch.cuda.synchronize`` or an event). Code that times NCCL with the host's clock alone measures the
queuing. gloo, the only backend that runs here, completes every call before returning, so it cannot show
that mistake. This backend can:

- every operation is queued on one worker thread per process (the "stream"), in program order, and
  really carried out there by an inner gloo process group;
- ``wait()`` does not block the host, as on NCCL; ``barrier()``'s does, as NCCL's does. Small operations
  (at most :data:`HOST_READ_BYTES`, the sizes torch's object collectives move) block too: torch reads their
  results on the host straight away, which on a GPU is a device-to-host copy that synchronises;
- each operation takes at least its bus bytes divided by the configured rate (``RAILBENCH_ASYNC_GBPS``,
  Gb/s), nccl-tests' bus-bandwidth factors, so the true bus bandwidth of every operation is known;
- one process can be made slow, as a GPU with a degraded NVLink is: ``RAILBENCH_ASYNC_SLOW=RANK:GBPS`` runs
  every operation of world rank RANK at GBPS instead. A pair exchange with it ends when its slow end ends,
  so a pair that includes it measures GBPS and every other pair the configured rate;
- ``bench.measure.device.synchronize`` on the host drains the queue, as ``cuda.synchronize`` drains a
  GPU's streams: the backend registers its drain with ``bench.measure.device``;
- at each process-group creation it records the NCCL variables set at that moment: NCCL reads its
  environment when a communicator is made.

It is a model of NCCL's behaviour, not a stand-in for railbench: railbench's own code runs unchanged on it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.futures import Future

from bench.measure import device as device_ops

NAME = "asyncsim"
RATE_VAR = "RAILBENCH_ASYNC_GBPS"
SLOW_VAR = "RAILBENCH_ASYNC_SLOW"
HOST_READ_BYTES = 64 * 1024
NCCL_SEEN: list[dict[str, str]] = []
"""The ``NCCL_*`` environment at each process group's creation, in creation order."""


class _Stream:
    """One in-order queue of work per process, like a GPU stream, with a drain like ``cuda.synchronize``."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[], None], Future[None]]] = queue.Queue()
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name="asyncsim-stream", daemon=True).start()

    def _run(self) -> None:
        while True:
            job, done = self._queue.get()
            try:
                job()
                done.set_result(None)
            except BaseException as exc:  # surfaces at the next drain, as a CUDA error does at a sync
                self._error = exc
                done.set_exception(exc)
            finally:
                self._queue.task_done()

    def submit(self, job: Callable[[], None]) -> Future[None]:
        done: Future[None] = Future()
        self._queue.put((job, done))
        return done

    def drain(self) -> None:
        self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"asyncsim: a queued operation failed: {error}") from error


STREAM = _Stream()
device_ops.register_host_queue(STREAM.drain)


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
        return self._done.done()

    def get_future(self) -> Future[None]:
        return self._done


def _nbytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class AsyncProcessGroup(dist.ProcessGroup):
    """The operations railbench uses, each queued on :data:`STREAM` and done by an inner gloo group."""

    def __init__(self, store: Any, rank: int, size: int, timeout: timedelta) -> None:
        super().__init__(rank, size)
        NCCL_SEEN.append({k: v for k, v in os.environ.items() if k.startswith("NCCL_")})
        self._inner = dist.ProcessGroupGloo(store, rank, size, timeout)
        self._n = size
        # The world is the first group made: until it exists, ``rank`` is the world rank.
        self._gbps = _rate(dist.get_rank() if dist.is_initialized() else rank)

    def getBackendName(self) -> str:
        return NAME

    def _queue(self, bus_bytes: float, moved: int, run: Callable[[], Any], *, blocking: bool = False) -> AsyncWork:
        def job() -> None:
            began = time.perf_counter()
            run().wait()
            modelled = 8 * bus_bytes / (self._gbps * 1e9)
            left = modelled - (time.perf_counter() - began)
            if left > 0:
                time.sleep(left)

        return AsyncWork(STREAM.submit(job), blocking or moved <= HOST_READ_BYTES)

    def allreduce(self, tensors: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        s = _nbytes(tensors)
        return self._queue(s * 2 * (self._n - 1) / self._n, s, lambda: self._inner.allreduce(tensors, opts))

    def all_gather_single(self, out: torch.Tensor, inp: torch.Tensor, opts: Any = None) -> AsyncWork:
        s = _nbytes([out])
        return self._queue(s * (self._n - 1) / self._n, s, lambda: self._inner._allgather_base(out, inp, opts))

    def allgather(self, outs: list[list[torch.Tensor]], inps: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        s = sum(_nbytes(o) for o in outs)
        return self._queue(s * (self._n - 1) / self._n, s, lambda: self._inner.allgather(outs, inps, opts))

    def broadcast(self, tensors: list[torch.Tensor], opts: Any = None) -> AsyncWork:
        s = _nbytes(tensors)
        return self._queue(s, s, lambda: self._inner.broadcast(tensors, opts))

    def send(self, tensors: list[torch.Tensor], dst: int, tag: int = 0) -> AsyncWork:
        s = _nbytes(tensors)
        return self._queue(s, s, lambda: self._inner.send(tensors, dst, tag))

    def recv(self, tensors: list[torch.Tensor], src: int, tag: int = 0) -> AsyncWork:
        s = _nbytes(tensors)
        return self._queue(s, s, lambda: self._inner.recv(tensors, src, tag))

    def barrier(self, opts: Any = None) -> AsyncWork:
        # NCCL's barrier is an all-reduce whose wait() synchronises the stream: it blocks the host.
        return self._queue(0, 0, lambda: self._inner.barrier(opts), blocking=True)


def _rate(world_rank: int) -> float:
    """The rate this process's operations run at: ``RAILBENCH_ASYNC_GBPS``, or the slow rank's own rate."""
    slow_rank, _, slow_gbps = os.environ.get(SLOW_VAR, "").partition(":")
    if slow_rank and int(slow_rank) == world_rank:
        return float(slow_gbps)
    return float(os.environ.get(RATE_VAR, "8"))


def _create(store: Any, rank: int, size: int, timeout: timedelta) -> AsyncProcessGroup:
    return AsyncProcessGroup(store, rank, size, timeout)


def register() -> str:
    """Make ``asyncsim`` a torch.distributed backend in this process; returns its name."""
    if NAME.upper() not in dist.Backend._plugins:
        dist.Backend.register_backend(NAME, _create, devices=["cpu"])
    return NAME
