"""net_ib's completion error in every NCCL wording since 2.17, and what its status points at.

When a work request of an IB connection completes in error, net_ib logs one WARN per completion
(``src/transport/net_ib.cc`` ``ncclIbTest``; ``src/transport/net_ib/p2p.cc`` from 2.29). The peer is the
connection's out-of-band address (``ncclSocketGetAddr`` of the socket the queue pairs were exchanged over:
``address<port>``); the wording changed four times, checked against NVIDIA/nccl's own history
(``git log -S`` on the format string):

==============  ===========================================================================  ==========
NCCL            the WARN's words                                                             commit
==============  ===========================================================================  ==========
2.17 - 2.19     ``NET/IB : Got completion from peer A<p> with error 12, opcode 0, len 0,``   d97a32fa
                ``vendor err 129 (Recv)`` (2.17: no ``(Recv)``; 2.18.1 added it and GIDs)    (2.18.1)
2.20 - 2.21     ``NET/IB : Got completion from peer A<p> with status=12 opcode=0 len=0``     b6475625
                ``vendor err 129 (Recv) localGid ... remoteGids...``                         (2.20.3)
2.22 - 2.28.3   ``NET/IB: ... with status=12 opcode=0 len=0 ... remoteGids... hca mlx5_1``   178b6b75
                                                                                             (2.22.3)
2.28.7 -        ``NET/IB: ... with status=IBV_WC_RETRY_EXC_ERR(12) opcode=... hca mlx5_1``   ae7aed19
                                                                                             (2.28.7)
==============  ===========================================================================  ==========

Only 2.22 and later name the HCA, so the post-mortem (``bench.frame.postmortem``) takes each rank's own NIC
from railbench, not from this line; the peer and the status are in every wording.

The status is ``enum ibv_wc_status`` (rdma-core ``libibverbs/verbs.h``; NCCL carries the same enum in
``src/include/ibvcore.h``). What it points at decides what is named:

- **the peer or the path to it**: ``IBV_WC_RETRY_EXC_ERR`` (12: the transport's retries ran out, no ACK came
  back: a dead link, port or switch path), ``IBV_WC_RNR_RETRY_EXC_ERR`` (13), ``IBV_WC_RESP_TIMEOUT_ERR``
  (20), and the errors the remote end answered with (``BAD_RESP`` 7, ``REM_INV_REQ`` 9, ``REM_ACCESS`` 10,
  ``REM_OP`` 11, ``REM_INV_RD_REQ`` 15, ``REM_ABORT`` 16);
- **the reporting host's own HCA**: the local errors, ``LOC_LEN`` 1, ``LOC_QP_OP`` 2, ``LOC_EEC_OP`` 3,
  ``LOC_PROT`` 4 (a memory key the HCA may not use: GPUDirect RDMA or peer memory, vendor err 81 on mlx5),
  ``MW_BIND`` 6, ``LOC_ACCESS`` 8, ``LOC_RDD_VIOL`` 14, and ``FATAL`` 19;
- **nothing**: ``WR_FLUSH_ERR`` (5) flushes the work still queued on a queue pair that an earlier error
  already broke, and the rest say nothing of where.

net_ib's async thread also logs every asynchronous event its HCA raises but ``IBV_EVENT_COMM_EST``
(``ncclIbAsyncThreadMain``: ``NET/IB : Got async event : <ibv_event_type_str>``; later NCCL, 2.20 in
NVIDIA/nccl#1524, names the device and port: ``NET/IB : mlx5_0:1 Got async event : local access violation work
queue error``). The events whose words say error, catastrophic or fatal (rdma-core ``ibv_event_type_str``: a
queue pair's access or request error, a CQ or SRQ error, ``local catastrophic error``, ``port error``) are the
reporting host's own HCA or port failing: the status 5 flushes that follow them are its consequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATUS_NAMES = (
    "IBV_WC_SUCCESS",
    "IBV_WC_LOC_LEN_ERR",
    "IBV_WC_LOC_QP_OP_ERR",
    "IBV_WC_LOC_EEC_OP_ERR",
    "IBV_WC_LOC_PROT_ERR",
    "IBV_WC_WR_FLUSH_ERR",
    "IBV_WC_MW_BIND_ERR",
    "IBV_WC_BAD_RESP_ERR",
    "IBV_WC_LOC_ACCESS_ERR",
    "IBV_WC_REM_INV_REQ_ERR",
    "IBV_WC_REM_ACCESS_ERR",
    "IBV_WC_REM_OP_ERR",
    "IBV_WC_RETRY_EXC_ERR",
    "IBV_WC_RNR_RETRY_EXC_ERR",
    "IBV_WC_LOC_RDD_VIOL_ERR",
    "IBV_WC_REM_INV_RD_REQ_ERR",
    "IBV_WC_REM_ABORT_ERR",
    "IBV_WC_INV_EECN_ERR",
    "IBV_WC_INV_EEC_STATE_ERR",
    "IBV_WC_FATAL_ERR",
    "IBV_WC_RESP_TIMEOUT_ERR",
    "IBV_WC_GENERAL_ERR",
)
"""``enum ibv_wc_status`` in its order: the index is the status."""
PEER_SIDE = frozenset({7, 9, 10, 11, 12, 13, 15, 16, 20})
REFUSED = frozenset({9, 10, 11, 15})
"""Peer-side statuses the responder answered with (ibv_poll_cq(3): ``REM_INV_REQ`` "the responder detected an
invalid message", ``REM_ACCESS`` "a protection error occurred on a remote data buffer", ``REM_OP`` "the
operation could not be completed successfully by the responder", ``REM_INV_RD_REQ``): packets crossed the link
and came back, so the path works; the peer's memory registration (its peer memory or DMA-BUF, its IOMMU) or its
HCA refused the work."""
LOCAL = frozenset({1, 2, 3, 4, 6, 8, 14, 19})

_COMPLETION = re.compile(
    r"\bGot completion from peer (?:(?P<peer>[^\s<]+)(?:<[^>\s]*>)? )?with "
    r"(?:error (?P<old>\d{1,3})\b|status=(?:[A-Z_]{1,40}\()?(?P<new>\d{1,3})\b)"
)
"""The peer may be missing: ``Got completion from peer with error 4, ...`` (NCCL 2.18, NVIDIA/nccl#1052's
title) printed no address; the status still says what it points at."""
_HCA = re.compile(r"\bhca (\S{1,64})")
_ASYNC = re.compile(r"^NET/\w{1,16} ?: (?:(?P<device>\S{1,64}) )?Got async event : (?P<event>.{1,120}?)\s*$")
_FAULT_WORDS = ("error", "catastrophic", "fatal")


@dataclass(frozen=True)
class Completion:
    """One completion error: the peer's out-of-band address, the status, and the HCA where the line names it
    (NCCL 2.22+)."""

    peer: str
    status: int
    hca: str | None = None

    @property
    def points_at(self) -> str:
        """``peer`` (the peer or the path to it), ``local`` (the reporting host's own HCA) or ``nothing`` (also a
        peer-side status whose line printed no peer address: there is no one to name)."""
        if self.status in LOCAL:
            return "local"
        return "peer" if self.status in PEER_SIDE and self.peer else "nothing"

    @property
    def refused(self) -> bool:
        """The peer answered and refused the work (:data:`REFUSED`): its link is alive."""
        return self.status in REFUSED

    def words(self) -> str:
        """``status 4 (IBV_WC_LOC_PROT_ERR)``."""
        name = STATUS_NAMES[self.status] if self.status < len(STATUS_NAMES) else "an unknown status"
        return f"status {self.status} ({name})"


def completion(message: str) -> Completion | None:
    """The completion error a WARN message holds, in any wording above; None for any other message."""
    found = _COMPLETION.search(message)
    if found is None:
        return None
    hca = _HCA.search(message, found.end())
    return Completion((found["peer"] or "")[:64], int(found["old"] or found["new"]), hca.group(1) if hca else None)


@dataclass(frozen=True)
class AsyncEvent:
    """An asynchronous event net_ib's HCA raised: the device and port where NCCL names them (``mlx5_0:1``, ""
    where it does not) and the event's words."""

    device: str
    event: str

    @property
    def fault(self) -> bool:
        """Whether the event is the HCA or its port failing (see the module's note), not a notice."""
        return any(word in self.event.lower() for word in _FAULT_WORDS)

    @property
    def hca(self) -> str | None:
        return self.device.partition(":")[0] or None

    def words(self) -> str:
        """``async event 'local access violation work queue error' on mlx5_0:1``."""
        return f"async event '{self.event}'" + (f" on {self.device}" if self.device else "")


def async_event(message: str) -> AsyncEvent | None:
    """The async event a WARN message reports, in either wording; None for any other message."""
    found = _ASYNC.match(message)
    return AsyncEvent(found["device"] or "", found["event"]) if found else None
