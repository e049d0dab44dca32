"""GPU <-> NIC affinity from PCI paths, the idea behind ``nvidia-smi topo -m``'s PIX/PXB/PHB/NODE/SYS.

NCCL treats a PCIe switch (its upstream port and the downstream ports) as one hop, so a GPU and a NIC behind
the same switch are PIX even though the sysfs path passes two bridge ports. Here the distance comes from the
deepest common PCI ancestor:

* ``PIX``: both sit at most two levels below it (the same switch, or the same downstream port);
* ``PXB``: a common bridge exists, but deeper (several switches, no host bridge crossed);
* ``PHB``: only the host bridge (root complex) is shared;
* ``NODE``: different host bridges in one NUMA node (or NUMA unknown on both);
* ``SYS``: different NUMA nodes (the path crosses the CPU interconnect).

GPUs are counted and placed from the PCI bus in sysfs (NVIDIA display/3D controllers): a rank that sees one
GPU (``srun --gpus-per-task=1``, a per-rank ``CUDA_VISIBLE_DEVICES``) still checks the whole node. torch,
imported lazily and only on the real ``/sys``, supplies names: each GPU it sees names every GPU on the bus
with the same PCI device id.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench import sysroot
from bench.fabric import pci_config
from bench.fabric.sysfs import PciDevice, Sysfs, nvidia_gpus

Distance = Literal["PIX", "PXB", "PHB", "NODE", "SYS"]
ORDER: tuple[Distance, ...] = ("PIX", "PXB", "PHB", "NODE", "SYS")

# PCI device ids of datacenter GPUs, so a node without working CUDA still says what it has.
GPU_MODELS = {
    0x20B0: "NVIDIA A100-SXM4-40GB",
    0x20B2: "NVIDIA A100-SXM4-80GB",
    0x20B5: "NVIDIA A100 80GB PCIe",
    0x2324: "NVIDIA H800",
    0x2330: "NVIDIA H100 80GB HBM3",
    0x2331: "NVIDIA H100 PCIe",
    0x2335: "NVIDIA H200",
    0x2901: "NVIDIA B200",
    0x2941: "NVIDIA GB200",  # as nvidia-smi names it (tests/data/wild/nvlink-status/gb200-gpu0.txt)
}


@dataclass(frozen=True)
class Gpu:
    """One GPU of this node."""

    index: int
    model: str
    pci_address: str | None
    numa_node: int | None
    pci_path: tuple[str, ...]
    source: Literal["torch", "sysfs"]


def distance(a: Sequence[str], a_numa: int | None, b: Sequence[str], b_numa: int | None) -> Distance:
    """The PIX/PXB/PHB/NODE/SYS distance between two PCI chains (host bridge first, device last)."""
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    bridges_shared = [part for part in a[:common] if not part.startswith("pci")]
    if bridges_shared:
        below_a, below_b = len(a) - common, len(b) - common
        return "PIX" if max(below_a, below_b) <= 2 else "PXB"
    if common:  # only the host bridge is shared
        return "PHB"
    if a_numa is None or b_numa is None or a_numa == b_numa:
        return "NODE"
    return "SYS"


def gpus(sysfs: Sysfs, *, use_torch: bool = True) -> list[Gpu]:
    """This node's GPUs, in PCI order, from the PCI bus in sysfs; names from torch where it sees them.

    torch is imported only when the PCI bus shows NVIDIA GPUs, so a CPU machine never pays for it.
    """
    on_bus = nvidia_gpus(sysfs)
    names: dict[str, str] = {}
    if use_torch and on_bus and Path(os.path.realpath(sysfs.root)) == sysroot.LIVE:  # realpath: no loop error
        names = _torch_names([dev.address for dev in on_bus])
    return named_gpus(on_bus, names)


def named_gpus(on_bus: Sequence[PciDevice], names: Mapping[str, str]) -> list[Gpu]:
    """The GPUs on the bus, each named by torch (``names``: PCI address -> name of the GPUs this process sees),
    else by a visible GPU with the same PCI device id, else by the device-id table."""
    by_device = {dev.device: names[dev.address] for dev in on_bus if dev.address in names}
    out = []
    for index, dev in enumerate(on_bus):
        model = names.get(dev.address) or by_device.get(dev.device)
        model = model or GPU_MODELS.get(dev.device, f"NVIDIA GPU 0x{dev.device:04x}")
        out.append(Gpu(index, model, dev.address, dev.numa_node, dev.pci_path, "sysfs"))
    return out


ALL_ONES = (pci_config.NO_FUNCTION, 0xFFFFFFFF)
"""An id attribute read back as all ones: the 16-bit register's, or a 32-bit read of it."""


@dataclass(frozen=True)
class SilentFunction:
    """A PCI function sysfs lists that does not answer on the bus: an NVIDIA GPU whose configuration space
    reads all ones (the kernel keeps the vendor and class it read at boot, the device no longer answers), or a
    function whose very vendor reads 0xffff."""

    address: str
    gpu: bool
    """Whether sysfs still names it an NVIDIA GPU (its cached vendor and class)."""
    said: str
    """What was read: ``config space reads 0xffff``, ``vendor 0xffff``."""


def silent_functions(sysfs: Sysfs, gpus_on_bus: Sequence[Gpu]) -> list[SilentFunction]:
    """The PCI functions of this tree that do not answer, in bus order: each GPU of ``gpus_on_bus`` whose
    ``config`` reads a Vendor ID of 0xffff (``pci_config.answers``) or whose device id reads 0xffff, then every
    function whose ``vendor`` attribute itself reads 0xffff. A GPU whose ``config`` cannot be read (absent, as
    in many copied trees) is not counted silent: nothing says so."""
    out = []
    for gpu in gpus_on_bus:
        if gpu.pci_address is None:
            continue
        raw = sysfs.read_raw("bus", "pci", "devices", gpu.pci_address, "config")
        device = sysfs.read_int("bus", "pci", "devices", gpu.pci_address, "device")
        if raw is not None and pci_config.answers(raw) is False:
            out.append(SilentFunction(gpu.pci_address, True, "config space reads 0xffff"))
        elif device in ALL_ONES:
            out.append(SilentFunction(gpu.pci_address, True, "device 0xffff"))
    known = {f.address for f in out}
    for address in sorted(sysfs.listdir("bus", "pci", "devices"), key=str.lower):
        if address in known:
            continue
        vendor = sysfs.read_int("bus", "pci", "devices", address, "vendor")
        if vendor in ALL_ONES:
            out.append(SilentFunction(address, False, "vendor 0xffff"))
    return out


def pci_bus_listed(sysfs: Sysfs) -> bool:
    """Whether the tree lists any PCI function at all (``bus/pci/devices``): an empty tree counts nothing."""
    return bool(sysfs.listdir("bus", "pci", "devices"))


def _torch_names(bus_addresses: list[str]) -> dict[str, str]:
    try:
        import torch  # lazy: only here, only on a machine whose PCI bus has NVIDIA GPUs
    except ImportError:
        return {}
    if not torch.cuda.is_available():
        return {}
    count = torch.cuda.device_count()
    out = {}
    for index in range(count):
        props = torch.cuda.get_device_properties(index)
        if hasattr(props, "pci_bus_id"):
            # torch's stubs lack the PCI fields its CUDA builds have.
            domain, bus, dev = (int(getattr(props, f"pci_{part}_id")) for part in ("domain", "bus", "device"))
            address = f"{domain:04x}:{bus:02x}:{dev:02x}.0"
        elif count == len(bus_addresses):
            # Older torch does not say; identical GPUs enumerate in PCI bus order, as sysfs lists them.
            address = bus_addresses[index]
        else:
            continue
        out[address] = props.name
    return out
