"""Whether the IOMMU translates the DMA of a GPU or a NIC: from sysfs, and the kernel command line.

GPUDirect RDMA has the NIC write into GPU memory by its bus address, peer to peer through the PCIe switch. With
the IOMMU translating DMA, every such access is translated (and with ACS, sent up to the root complex to be),
which slows it or breaks it; NCCL's troubleshooting guide and NVIDIA's GPUDirect RDMA documentation ask for
the IOMMU off or in passthrough (``iommu=pt``, ``intel_iommu=on iommu=pt``, ``amd_iommu=on iommu=pt``).

Sources (the kernel's Documentation/ABI/testing/sysfs-class-iommu and sysfs-kernel-iommu_groups):

* ``class/iommu/<unit>``: one entry per IOMMU the kernel drives (``dmar0`` on Intel, ``ivhd0`` on AMD); none
  when the IOMMU is off;
* ``bus/pci/devices/<addr>/iommu_group`` -> ``kernel/iommu_groups/<n>``, whose ``type`` (kernel 5.11+) is the
  default domain of the group: ``identity`` (passthrough: bus address = physical address), ``DMA`` or
  ``DMA-FQ`` (translated; FQ with a lazy flush queue), ``unmanaged`` (owned by a user driver such as VFIO),
  ``blocked``;
* ``/proc/cmdline`` on a live node, said beside the finding (it is how the mode was chosen).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.bounded import InputError, read_bytes
from bench.fabric.sysfs import Sysfs

TRANSLATING = ("DMA", "DMA-FQ")
"""Default domain types that translate every DMA (``sysfs-kernel-iommu_groups``)."""
PASSTHROUGH = ("identity",)
CMDLINE = Path("/proc/cmdline")
IOMMU_WORDS = ("iommu", "intel_iommu", "amd_iommu", "iommu.passthrough", "iommu.strict")
"""The kernel parameters that choose the IOMMU's mode (Documentation/admin-guide/kernel-parameters.txt)."""


@dataclass(frozen=True)
class IommuDomain:
    """One device's IOMMU group and its default domain type."""

    address: str
    group: str | None
    """The group's number; None when the device is in no group (no IOMMU drives it)."""
    type: str | None
    """``identity``, ``DMA``, ``DMA-FQ``, ``unmanaged``, ``blocked``; None when the kernel does not say."""

    @property
    def translating(self) -> bool:
        return self.type in TRANSLATING


def units(sysfs: Sysfs) -> list[str]:
    """The IOMMUs the kernel drives (``class/iommu``)."""
    return sysfs.listdir("class", "iommu")


def domain(sysfs: Sysfs, address: str) -> IommuDomain:
    """The IOMMU group of the PCI function at ``address`` and its domain type."""
    group = sysfs.resolve("bus", "pci", "devices", address, "iommu_group")
    if group is None:
        return IommuDomain(address, None, None)
    kind = sysfs.read("kernel", "iommu_groups", group.name, "type")
    return IommuDomain(address, group.name, kind.split()[0] if kind else None)


def kernel_cmdline(live: bool) -> str | None:
    """The node's kernel command line (``/proc/cmdline``), only on the live node (a copied sysfs tree is another
    node's); None when it cannot be read."""
    if not live:
        return None
    try:
        data = read_bytes(CMDLINE, fix="the kernel command line is optional", max_bytes=4096)
    except InputError:
        return None
    return data.decode("utf-8", errors="replace").strip()


def iommu_parameters(cmdline: str | None) -> tuple[str, ...]:
    """The IOMMU parameters on ``cmdline``, as written (``intel_iommu=on``, ``iommu=pt``)."""
    if not cmdline:
        return ()
    return tuple(w for w in cmdline.split() if w.partition("=")[0] in IOMMU_WORDS)
