"""Which NIC rail k uses on a node: the one nearest GPU k in the PCIe tree, among those NCCL_IB_HCA selects.

This is how NCCL itself picks a GPU's NIC, so railbench never pins one. Each process sees its own GPU and the
IB devices its ``NCCL_IB_HCA`` selects (``src/transport/net_ib/init.cc`` ``ncclIbInitDevices``, once per
process, ACTIVE ports only); a communicator fuses the topologies of its ranks on one node
(``src/graph/topo.cc`` ``ncclTopoGetSystem``), and a GPU's network devices are those at the best path from it,
highest bandwidth then shortest PCI distance (``ncclTopoGetLocal``; ``ncclTopoGetLocalNetType`` spreads the
GPUs that share one set of NICs over it by device index). A rail group holds one rank per node, so on each node
its communicator sees GPU k alone, and rings and point-to-point leave through GPU k's nearest NIC
(``src/graph/search.cc`` ``ncclTopoSelectNets`` tries the GPU's local NICs first). A rail-optimised node has
one NIC on each GPU's PCIe switch (PIX): rail k is that NIC.

The mapping is computed from sysfs for every GPU of the node, down ports included: a port that is down is
still its rail's NIC (a dead link, named as such), and no other rail moves to another NIC because of it. NCCL,
which ignores ports that are not ACTIVE, will route that GPU through some other NIC; the byte counters show
it (``bench.rails.diagnosis.evidence``).

Pure functions over sysfs records (``node_rail_nics`` reads a ``Sysfs`` tree).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.fabric.hca_list import select_hcas
from bench.fabric.sysfs import IbDevice, Sysfs, ib_devices, nvidia_gpus, pci_device_path
from bench.fabric.topology import ORDER, Distance, distance

NEAR: tuple[Distance, ...] = ("PIX", "PXB")
"""Distances at which a NIC is next to its GPU (no host bridge crossed): GPUDirect RDMA runs at full rate."""
RDMA_LINK_LAYERS = ("InfiniBand", "Ethernet")
"""The ports NCCL's IB transport considers (RoCE included)."""


@dataclass(frozen=True)
class PlacedGpu:
    """A GPU and where it sits in the PCIe tree."""

    address: str
    pci_path: tuple[str, ...]
    numa_node: int | None


@dataclass(frozen=True)
class PlacedNic:
    """One NIC port NCCL may use, where it sits, and its state."""

    name: str
    """``mlx5_4:1``."""
    pci_path: tuple[str, ...]
    numa_node: int | None
    state: str
    """``ACTIVE``, ``DOWN``...: NCCL uses only ACTIVE ports."""


@dataclass(frozen=True)
class RailNic:
    """The NIC one GPU's rail should leave through."""

    gpu: str
    """The GPU's PCI address."""
    nic: str | None
    """``mlx5_4:1``; None when no selected NIC can be placed relative to the GPU."""
    distance: Distance | None
    state: str | None
    """The port's state (``ACTIVE``, ``DOWN``...)."""
    shared: bool = False
    """Other GPUs of the node are as near to the same NICs: NCCL spreads a lone GPU's rail over all of them."""

    @property
    def up(self) -> bool:
        return self.state == "ACTIVE"

    @property
    def near(self) -> bool:
        return self.distance in NEAR


def nearest_rail_nics(gpus: Sequence[PlacedGpu], nics: Sequence[PlacedNic]) -> dict[str, RailNic]:
    """GPU address -> its rail NIC, for every GPU: the nearest of ``nics`` (in NCCL's device order).

    GPUs whose nearest NICs are the same set share them in order, as NCCL spreads local GPUs over shared NICs:
    the i-th such GPU (in PCI order) gets the set's i-th NIC, modulo its size.
    """
    nearest: dict[str, tuple[int, ...]] = {}
    where: dict[str, Distance | None] = {}
    for gpu in gpus:
        ranked = [
            (ORDER.index(distance(gpu.pci_path, gpu.numa_node, nic.pci_path, nic.numa_node)), i)
            for i, nic in enumerate(nics)
            if gpu.pci_path and nic.pci_path
        ]
        best = min((rank for rank, _ in ranked), default=None)
        nearest[gpu.address] = tuple(i for rank, i in ranked if rank == best)
        where[gpu.address] = ORDER[best] if best is not None else None
    sharing: dict[tuple[int, ...], list[str]] = {}
    for gpu in sorted(gpus, key=lambda g: g.address):
        sharing.setdefault(nearest[gpu.address], []).append(gpu.address)
    out: dict[str, RailNic] = {}
    for gpu in gpus:
        local = nearest[gpu.address]
        if not local:
            out[gpu.address] = RailNic(gpu.address, None, None, None)
            continue
        peers = sharing[local]
        nic = nics[local[peers.index(gpu.address) % len(local)]]
        out[gpu.address] = RailNic(
            gpu.address, nic.name, where[gpu.address], nic.state, len(peers) > 1 or len(local) > 1
        )
    return out


def placed_nics(devices: Sequence[IbDevice], nccl_ib_hca: str | None) -> list[PlacedNic]:
    """The RDMA ports ``nccl_ib_hca`` selects, whatever their state, in NCCL's (the device list's) order."""
    ports = {
        port.name: (device, port) for device in devices for port in device.ports if port.link_layer in RDMA_LINK_LAYERS
    }
    return [
        PlacedNic(name, ports[name][0].pci_path, ports[name][0].numa_node, ports[name][1].state)
        for name in select_hcas(nccl_ib_hca, list(ports))
    ]


def node_rail_nics(sysfs: Sysfs, nccl_ib_hca: str | None) -> dict[str, RailNic]:
    """GPU address -> its rail NIC, for every NVIDIA GPU on this node's PCI bus (see the module docstring)."""
    gpus = [PlacedGpu(g.address, g.pci_path, g.numa_node) for g in nvidia_gpus(sysfs)]
    return nearest_rail_nics(gpus, placed_nics(ib_devices(sysfs), nccl_ib_hca))


def rail_nic(sysfs: Sysfs, gpu_address: str, nccl_ib_hca: str | None) -> RailNic:
    """The rail NIC of the GPU at ``gpu_address`` (a GPU sysfs does not list is placed by its own PCI path)."""
    found = node_rail_nics(sysfs, nccl_ib_hca)
    if gpu_address.lower() in found:
        return found[gpu_address.lower()]
    path, numa = pci_device_path(sysfs, gpu_address)
    alone = nearest_rail_nics([PlacedGpu(gpu_address, path, numa)], placed_nics(ib_devices(sysfs), nccl_ib_hca))
    return alone[gpu_address]
