"""Whether an RDMA NIC can reach GPU memory on this node: the peer-memory path GPUDirect RDMA needs.

Two kernel paths let ``ibv_reg_mr`` (or ``ibv_reg_dmabuf_mr``) register GPU memory with the NIC; without either,
NCCL keeps GPUDirect RDMA off and stages every network transfer through host memory (its log then says
``GPU Direct RDMA Disabled for HCA ...`` and the channels lack ``/GDRDMA``; ``Connected all rings ... GDR 0``):

* the peer-memory module: ``nvidia_peermem`` (shipped with the driver since R470), or the older Mellanox
  ``nv_peer_mem``; loaded, it appears as ``/sys/module/<name>`` with ``initstate`` ``live``;
* DMA-BUF: Linux 5.12 or later, the NVIDIA *open* GPU kernel module, CUDA 11.7+ and NCCL 2.13+ (NVIDIA's
  GPUDirect RDMA documentation, "Using DMA-BUF"). The open module carries no proprietary taint: its
  ``/sys/module/nvidia/taint`` lacks ``P`` (Documentation/ABI/testing/sysfs-module: ``P`` proprietary, ``O``
  out-of-tree, ``E`` unsigned).

The kernel's release is known only on the live node (``os.uname``); a copied sysfs tree does not say it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.bounded import ascii_digits
from bench.fabric.sysfs import Sysfs

PEERMEM_MODULES = ("nvidia_peermem", "nv_peer_mem")
DMABUF_KERNEL = (5, 12)
"""The first kernel with ``ibv_reg_dmabuf_mr`` (RDMA's DMA-BUF import)."""


@dataclass(frozen=True)
class PeerMemory:
    """The node's peer-memory paths."""

    driver_loaded: bool
    """``/sys/module/nvidia`` is there: the GPU driver is loaded."""
    peermem: str | None
    """The peer-memory module that is loaded, if any."""
    open_module: bool | None
    """The GPU kernel module is NVIDIA's open one (no ``P`` taint); None when its taint cannot be read."""
    kernel: str | None
    """The running kernel's release (live node only)."""

    @property
    def kernel_dmabuf(self) -> bool | None:
        """Whether the kernel is new enough for DMA-BUF; None when its release is unknown."""
        if self.kernel is None:
            return None
        numbers = []
        for part in self.kernel.split("-", 1)[0].split(".")[:2]:
            digits = part[:4]
            if not ascii_digits(digits):
                return None
            numbers.append(int(digits))
        return tuple(numbers) >= DMABUF_KERNEL if len(numbers) == 2 else None


def _loaded(sysfs: Sysfs, module: str) -> bool:
    if not sysfs.is_dir("module", module):
        return False
    state = sysfs.read("module", module, "initstate")
    return state in (None, "live")  # built-in modules have no initstate


def read(sysfs: Sysfs, live: bool) -> PeerMemory:
    """The peer-memory paths of the node whose sysfs ``sysfs`` is (``live``: this machine's own)."""
    taint = sysfs.read("module", "nvidia", "taint")
    return PeerMemory(
        driver_loaded=sysfs.is_dir("module", "nvidia"),
        peermem=next((m for m in PEERMEM_MODULES if _loaded(sysfs, m)), None),
        open_module=None if taint is None else "P" not in taint,
        kernel=os.uname().release if live else None,
    )
