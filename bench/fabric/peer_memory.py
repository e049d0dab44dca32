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

A copied sysfs tree does not say which kernel the node runs. The release comes from ``os.uname`` on the live node,
else from the node's kernel log (``--kernel-log``): its last boot banner, ``Linux version 6.8.0-45-generic (...)``.
NCCL says it too, in its own ``NCCL_DEBUG=INFO`` log: ``NCCL INFO DMA-BUF is available on GPU device 0``
(``src/init.cc``, ``dmaBufSupported()``: printed only where ``NCCL_DMABUF_ENABLE`` is on, the net plugin can
register DMA-BUF memory, CUDA is 11.7 or later and the driver reports ``CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED``
for the GPU); ``bench.nccllogs`` reads that line per host (``HostNet.dmabuf_gpus``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.bounded import ascii_digits
from bench.fabric import link_flaps
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
    """The running kernel's release: ``uname`` on the live node, else the kernel log's boot banner."""
    kernel_source: str | None = None
    """Where ``kernel`` was read: ``uname``, or the kernel log file."""

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


def read(sysfs: Sysfs, live: bool, banner: tuple[str, str] | None = None) -> PeerMemory:
    """The peer-memory paths of the node whose sysfs ``sysfs`` is (``live``: this machine's own); ``banner`` is
    (release, file) of the node's kernel log's last boot banner, for a copied tree (``uname`` wins on a live one)."""
    taint = sysfs.read("module", "nvidia", "taint")
    kernel, source = (os.uname().release, "uname") if live else banner or (None, None)
    return PeerMemory(
        driver_loaded=sysfs.is_dir("module", "nvidia"),
        peermem=next((m for m in PEERMEM_MODULES if _loaded(sysfs, m)), None),
        open_module=None if taint is None else "P" not in taint,
        kernel=kernel,
        kernel_source=source,
    )


def kernel_banner(kernel_log: Path) -> tuple[str, str] | None:
    """(release, where) of the last boot banner in the kernel log file ``kernel_log`` (``--kernel-log``)."""
    log = link_flaps.read_kernel_log(kernel_log, datetime(1970, 1, 1))
    release = link_flaps.booted_kernel(log.lines)
    return (release, f"the boot banner in {log.source}") if release else None
