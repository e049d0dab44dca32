"""railbench's reading of one NCCL_DEBUG=INFO log (``bench.nccllogs.nccl_log.parse_file``), as plain data.

``versions``: every ``NCCL version`` the log prints. ``hosts``: per host (``""`` for lines without the
``host:pid:tid [dev]`` prefix, such as a bare version line): its NCCL version, the transport NCCL used (IB,
RoCE, Socket or another net's name; ``"unknown"`` where the log does not say), the networks of ``Using
network``, the IB ports, sockets and other nets' devices it opened, GPUDirect RDMA on its channels (``"no
channel"`` where the log has no NET channel), SHARP, the GPUs DMA-BUF is available on, the net plugins that loaded
and whether one was missing, the ranks it shows (``pid/device``), its WARN count, each completion error as
``[peer, status, what it points at, HCA or ""]``, each async event as ``[device, event, fault]``, and the HCAs
its errors name.
"""

from __future__ import annotations

from pathlib import Path

from bench.nccllogs.nccl_hostnet import HostNet
from bench.nccllogs.nccl_log import parse_file


def _host(h: HostNet) -> dict[str, object]:
    out: dict[str, object] = {
        "nccl_version": h.nccl_version or "not said",
        "transport": h.transport or "unknown",
        "networks": list(h.networks),
        "ib_devices": list(h.devices),
        "socket_devices": list(h.socket_devices),
        "other_devices": list(h.other_devices),
        "gdrdma": "no channel" if h.gdrdma is None else h.gdrdma,
        "sharp": h.sharp,
        "dmabuf_gpus": list(h.dmabuf_gpus),
        "plugins": list(h.plugins),
        "plugin_missing": h.plugin_missing,
        "ranks": list(h.nccl_ranks),
        "warnings": len(h.warnings),
        "completions": [[c.peer, c.status, c.points_at, c.hca or ""] for c in h.completions],
        "async_events": [[e.device, e.event, e.fault] for e in h.async_events],
        "error_hcas": list(h.error_hcas),
    }
    return out


def read(path: Path) -> dict[str, object]:
    log = parse_file(path)
    return {"versions": list(log.versions), "hosts": {name: _host(h) for name, h in log.hosts.items()}}
