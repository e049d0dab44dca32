"""What one NCCL_DEBUG=INFO log says about each host's network, as records (``bench.nccllogs.nccl_log``
reads the log into them; the evidence, the preflight checks and the post-mortem read them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bench.nccllogs.ib_completion import AsyncEvent, Completion
from bench.nccllogs.nccl_init import InitFailure
from bench.nccllogs.nccl_lines import Channel, Fact, NetUsing

SOCKET_NETS = ("Socket", "FastSocket")
"""NCCL's socket transports: a host whose only networks are these fell back to TCP."""


@dataclass(frozen=True)
class HostNet:
    """What one host's NCCL said about its network."""

    host: str
    nccl_version: str | None = None
    nccl_ib_hca: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    """``Using network X`` values (``IB``, ``IBext_v8``, ``Socket``)."""
    devices: tuple[str, ...] = ()
    """IB ports NCCL opened (``NET/IB : Using`` lists and per-device discovery lines)."""
    link_layers: tuple[str, ...] = ()
    socket_devices: tuple[str, ...] = ()
    other_devices: tuple[str, ...] = ()
    """Devices of other nets (``NET/FastSocket : Using``), as ``net:name``."""
    ib_no_device: bool = False
    channel_devices: tuple[str, ...] = ()
    """IB ports that channels go through (resolved ``via NET/...`` indexes)."""
    channel_nics: tuple[str, ...] = ()
    """``net/index`` of NET channels whose ``Using`` list is not in the log."""
    gdrdma: bool | None = None
    """Whether NET channels use GPUDirect RDMA; None when the log has no NET channel."""
    intra_node: tuple[str, ...] = ()
    """Intra-node transports seen (``P2P/CUMEM/read``, ``P2P/IPC``, ``SHM``)."""
    sharp: bool = False
    plugins: tuple[str, ...] = ()
    """External net plugins that loaded."""
    plugin_missing: bool = False
    plugin_failed: bool = False
    ranks: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()
    """NCCL WARN messages."""
    error_hcas: tuple[str, ...] = ()
    """HCAs named in completion errors (``... hca mlx5_1``)."""
    error_peers: tuple[str, ...] = ()
    """Peer addresses of the completion errors that point at the peer or the path to it
    (``NET/IB : Got completion from peer 10.0.0.3<47123> with status=12``, ``src/transport/net_ib``: the address
    is the peer's out-of-band one, from the connection's handshake; ``bench.nccllogs.ib_completion``)."""
    completions: tuple[Completion, ...] = ()
    """Every distinct completion error, whatever its status points at (the first 256)."""
    async_events: tuple[AsyncEvent, ...] = ()
    """Every distinct async event net_ib's HCAs raised (the first 256): a fault one is the host's own HCA."""
    dmabuf_gpus: tuple[int, ...] = ()
    """CUDA devices NCCL found DMA-BUF available on (``DMA-BUF is available on GPU device 0``, init.cc
    ``ncclCudaDmaBufSupport``): the GPU and driver can export its memory to the NIC without nvidia_peermem."""
    oob_addresses: tuple[str, ...] = ()
    """This host's own out-of-band address (``NET/IB : Using ... ; OOB eno1:10.0.0.1<0>``): what its peers'
    completion errors name it by."""
    roce_gid: bool = False
    cuda_driver: str | None = None
    socket_reason: Fact | None = None
    """The line that shows NCCL fell back to sockets (None: no such line, or ``NET/Socket : Using`` alone
    where it names the bootstrap interface, as NCCL 2.4 prints on every rank)."""
    facts: tuple[Fact, ...] = ()
    """What the log said, each with its file and line (first occurrence)."""
    gdr_off: Fact | None = None
    """The first line in which NCCL said GPUDirect RDMA is off: ``Connected all rings, use ring PXN 0 GDR 0``
    (NCCL 2.23+, ``transport.cc``: some ring's network connection stages through host memory) or ``GPU Direct
    RDMA Disabled for ...`` (``transport/net_ib.cc``: no peer-memory module; ``graph/paths.cc``: the NIC is
    farther from the GPU than ``NCCL_NET_GDR_LEVEL``)."""
    init_failures: tuple[InitFailure, ...] = ()
    """Ranks whose communicator init failed (``bench.nccllogs.nccl_init``)."""
    nccl_ranks: tuple[str, ...] = ()
    """Every rank the log shows on this host, as ``pid/device``."""

    @property
    def transport(self) -> str | None:
        """``IB``, ``RoCE``, ``IB+RoCE``, ``Socket``, another net's name, or None when the log does not say."""
        nets = set(self.networks)
        if nets and nets <= set(SOCKET_NETS):
            return "Socket"
        layers = set(self.link_layers)
        if layers == {"IB", "RoCE"}:
            return "IB+RoCE"
        if layers:
            return layers.pop()
        if self.roce_gid:
            return "RoCE"
        if self.socket_reason is not None:
            return "Socket"  # NCCL falls back to sockets when IB finds no device
        if nets and not any(n.startswith("IB") for n in nets):
            return sorted(nets)[0]
        return None

    @property
    def plugin_fallback(self) -> bool:
        """An external net plugin loaded but NCCL ended up on its internal transport."""
        return bool(self.plugins) and self.plugin_failed

    @property
    def has_network_evidence(self) -> bool:
        return bool(
            self.plugins
            or self.devices
            or self.socket_devices
            or self.other_devices
            or self.networks
            or self.ib_no_device
            or self.channel_devices
            or self.channel_nics
            or self.error_hcas
            or self.async_events
        )


@dataclass(frozen=True)
class NcclLog:
    """A parsed NCCL_DEBUG=INFO log."""

    source: str | None
    hosts: Mapping[str, HostNet]
    usings: tuple[NetUsing, ...]
    channels: tuple[Channel, ...]
    nccl_lines: int
    """How many lines were NCCL lines (with or without a prefix)."""
    notes: tuple[str, ...] = ()
    """Lines skipped (over the length limit), with their numbers."""
    version_facts: tuple[Fact, ...] = ()
    """Every distinct ``NCCL version`` line, with its host's name as ``net`` ("" when it had no prefix)."""

    @property
    def versions(self) -> tuple[str, ...]:
        """Every NCCL version the log names (``2.23.4+cuda12.4``)."""
        return tuple(dict.fromkeys(h.nccl_version for h in self.hosts.values() if h.nccl_version))
