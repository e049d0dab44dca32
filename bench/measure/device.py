"""The few calls in which a GPU and the host differ, in one place: synchronise, time a region, name the device.

NCCL's operations are asynchronous: ``Work.wait()`` makes the current CUDA stream wait for NCCL's stream and
returns at once, so the host learns that a transfer ended only from the device (``cuda.synchronize`` or a
CUDA event). A timed region therefore ends with the device's own synchronisation, never with the host's
clock alone: ``perf_counter`` around ``iters`` NCCL calls measures the queuing (TB/s for a 256 MB pair).

Two implementations of the same calls:

- **CUDA**: ``torch.cuda.synchronize`` and CUDA events on the current stream (the stream torch makes wait
  for NCCL's work), which bracket exactly the device work of the region.
- **host**: ``perf_counter``, after waiting for every registered *host queue*. gloo completes every
  operation before ``wait()`` returns, so it registers nothing. A backend whose operations finish
  later on a thread of its own (the test suite's model of NCCL, ``tests/support/models/async_backend.py``) registers
  the call that drains its queue, and is then timed exactly as CUDA is: the region ends when the work
  ends. Such a backend may also register its *device clock*, read in place of ``perf_counter`` as a CUDA
  event is: the time its stream spent on the work, which a busy host does not stretch, and its *graph
  capture* (:func:`register_host_capture`), so that the CUDA-graph path runs on it as on a GPU.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol


class Graph(Protocol):
    """A captured sequence of device work (``torch.cuda.CUDAGraph``), run again by each ``replay()``."""

    def replay(self) -> None: ...


HostCapture = Callable[[Callable[[], None]], Graph]
"""A host backend's graph capture: the graph of the work its argument issues (see :func:`capture`)."""

_HOST_CAPTURE: list[HostCapture] = []

if TYPE_CHECKING:
    import torch

_HOST_QUEUES: list[Callable[[], None]] = []
"""Calls that wait until a host-side asynchronous backend has finished everything queued so far."""


_HOST_CLOCK: list[Callable[[], float]] = []
"""The device clock of a host-side asynchronous backend (seconds), when it keeps one."""


def register_host_clock(clock: Callable[[], float]) -> None:
    """Time host regions by ``clock`` (seconds of the backend's stream) instead of the host's ``perf_counter``."""
    _HOST_CLOCK[:] = [clock]


def unregister_host_clock(clock: Callable[[], float]) -> None:
    if clock in _HOST_CLOCK:
        _HOST_CLOCK.clear()


def _host_seconds() -> float:
    return _HOST_CLOCK[0]() if _HOST_CLOCK else time.perf_counter()


def register_host_queue(drain: Callable[[], None]) -> None:
    """Make :func:`synchronize` on a host device also wait for ``drain`` (idempotent)."""
    if drain not in _HOST_QUEUES:
        _HOST_QUEUES.append(drain)


def unregister_host_queue(drain: Callable[[], None]) -> None:
    if drain in _HOST_QUEUES:
        _HOST_QUEUES.remove(drain)


def register_host_capture(capture_graph: HostCapture) -> None:
    """Capture graphs on a host device with ``capture_graph`` (the test suite's model of NCCL)."""
    _HOST_CAPTURE[:] = [capture_graph]


def unregister_host_capture(capture_graph: HostCapture) -> None:
    if capture_graph in _HOST_CAPTURE:
        _HOST_CAPTURE.clear()


def can_capture(device: torch.device) -> bool:
    """Whether :func:`capture` works on ``device``: a GPU, or a host backend that registered a capture."""
    return is_cuda(device) or bool(_HOST_CAPTURE)


def capture(first: Callable[[], None], record: Callable[[], None], device: torch.device) -> Graph:
    """The graph of what ``record`` issues, after ``first`` ran once eagerly on the stream the capture uses
    (NCCL needs one eager call on that stream before a collective is captured there). The eager call is a real
    one: a collective in it waits for its peers, and the capture's start (``torch.cuda.graph`` synchronises the
    device first) waits for it. RuntimeError when this build, driver or backend cannot capture."""
    if not is_cuda(device):
        first()
        return _HOST_CAPTURE[0](record)
    import torch

    cuda_graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        first()
    torch.cuda.current_stream(device).wait_stream(side)
    with warnings.catch_warnings():
        # One rank's in-place all_reduce (or broadcast) issues no device work: NCCL returns at once, the graph is
        # empty and torch warns on stderr. The row stands as nccl-tests prints it (the empty replay's time, busbw
        # factor 0), and the run's own line says one rank moves nothing; the warning would only alarm.
        warnings.filterwarnings("ignore", message="The CUDA Graph is empty", category=UserWarning)
        with torch.cuda.graph(cuda_graph, stream=side):
            record()
    return cuda_graph


def is_cuda(device: torch.device) -> bool:
    return getattr(device, "type", "cpu") == "cuda"


def device_name(device: torch.device) -> str:
    """The GPU's name as torch and nvidia-smi say it (``NVIDIA H100 80GB HBM3``); empty on the host."""
    if not is_cuda(device):
        return ""
    import torch

    return str(torch.cuda.get_device_name(device))


def synchronize(device: torch.device) -> None:
    """Return only when every operation queued so far on ``device`` has finished."""
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)
        return
    for drain in list(_HOST_QUEUES):
        drain()


@dataclass
class RegionTimer:
    """Times one region of device work: ``start()``, issue the work, ``stop()`` gives seconds.

    ``stop`` returns only when the work has finished, so the result is always the device's time.
    """

    device: torch.device
    _start_s: float = 0.0
    _events: tuple[Any, Any] | None = field(default=None, repr=False)

    def start(self) -> None:
        if is_cuda(self.device):
            import torch

            begin = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            begin.record()
            self._events = (begin, end)
            return
        synchronize(self.device)  # nothing queued earlier may land inside the region
        self._start_s = _host_seconds()

    def stop(self) -> float:
        if self._events is not None:
            begin, end = self._events
            end.record()
            end.synchronize()
            self._events = None
            return float(begin.elapsed_time(end)) / 1e3
        synchronize(self.device)
        return _host_seconds() - self._start_s
