"""The PCIe layer of a fixture node: link speed and width, configuration space, IOMMU groups, peer memory.

``build(root, spec, path)`` writes ``fabric_trees.build(root, spec)`` and then, for every PCI function on the
GPUs' and NICs' chains, what the kernel shows of it (Documentation/ABI/testing/sysfs-bus-pci,
sysfs-kernel-iommu_groups, sysfs-class-iommu, sysfs-module):

* ``current_link_speed``/``max_link_speed`` in the kernel's words (``32.0 GT/s PCIe``) and
  ``current_link_width``/``max_link_width`` as lane counts, on both ends of each link: the root port and the
  switch's upstream port, each switch downstream port and the device below it;
* ``config``: 4096 bytes laid out as PCI Express Base 6.0 chapter 7 says (the header's status bit 4 and
  capability pointer at 0x34; the PCI Express capability at 0x40 with its device/port type, Device Control's
  MaxReadReq and MaxPayload, Link Capabilities and Link Status; at 0x100 an ACS extended capability on every
  root and switch downstream port), or only the first 64 bytes, as an unprivileged reader gets them;
* ``iommu_group`` links to ``kernel/iommu_groups/<n>`` with a ``type``, and ``class/iommu/dmar0``, when the
  IOMMU is on.

A healthy H100 node is Gen5 x16 everywhere (H100 SXM5 and ConnectX-7 are both PCIe Gen5 x16 devices); each
preset changes one thing, as an operator meets it on a delivered cluster.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.support.trees import fabric_trees
from tests.support.trees.fabric_trees import NodeSpec

GEN5 = 32.0
GEN4 = 16.0
_SPEED_CODES = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}
_ROOT_PORT, _UPSTREAM, _DOWNSTREAM, _ENDPOINT = 4, 5, 6, 0
ACS_ALL = 0x7F
"""Every ACS control a switch port implements: SrcValid, TransBlk, ReqRedir, CmpltRedir, UpstreamFwd,
EgressCtrl, DirectTrans."""
ACS_ON = 0x1D
"""What Linux's ``pci_enable_acs`` switches on when an IOMMU asks for isolation (and what BIOS "ACS enable"
options set): SrcValid, ReqRedir, CmpltRedir, UpstreamFwd (``lspci``: ``SrcValid+ ReqRedir+ CmpltRedir+
UpstreamFwd+``)."""


@dataclass(frozen=True)
class PathSpec:
    """The PCIe layer of a node, healthy unless told otherwise."""

    gpu_width: Mapping[int, int] = field(default_factory=dict)
    """Switch index (GPU k sits on switch k) -> the width GPU k's link trained at (16 when absent)."""
    gpu_speed: Mapping[int, float] = field(default_factory=dict)
    nic_speed: Mapping[str, float] = field(default_factory=dict)
    """HCA name -> the speed its link trained at (Gen5 when absent)."""
    nic_width: Mapping[str, int] = field(default_factory=dict)
    acs: Mapping[int, int] = field(default_factory=dict)
    """Switch index -> the ACS control value of its downstream ports (0 when absent: ACS off)."""
    max_read_request: Mapping[str, int] = field(default_factory=dict)
    """HCA name -> its MaxReadReq in bytes (4096 when absent)."""
    iommu: str | None = None
    """None: no IOMMU; else every device's group type (``identity``, ``DMA-FQ``...)."""
    config_bytes: int = 4096
    """How much of ``config`` the reader gets: 4096 as root, 64 unprivileged."""
    live_net: bool = False
    """``class/net`` is a link to the reader's own ``/sys/class/net`` and there is no ``class/infiniband``: the
    namespace testbed's nodes, whose rails are their own veths and whose GPUs are this tree's."""


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(target, link.parent))


def _write(path: Path, text: str | int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def _speed_text(gts: float) -> str:
    return f"{gts:.1f} GT/s PCIe"


def config_space(
    port_type: int,
    *,
    speed: float,
    width: int,
    max_speed: float,
    max_width: int,
    max_read_request: int = 512,
    acs_control: int | None = None,
    vendor: int = 0x10DE,
    device: int = 0x2330,
) -> bytes:
    """4096 bytes of configuration space laid out as the PCI Express Base specification says."""
    space = bytearray(4096)
    struct.pack_into("<HH", space, 0x00, vendor, device)
    struct.pack_into("<H", space, 0x06, 0x0010)  # Status: a capability list follows
    space[0x0E] = 0x01 if port_type in (_ROOT_PORT, _UPSTREAM, _DOWNSTREAM) else 0x00
    space[0x34] = 0x40
    space[0x40], space[0x41] = 0x10, 0x00  # PCI Express capability, last in the list
    struct.pack_into("<H", space, 0x42, 0x2 | port_type << 4)
    read_code = (max_read_request // 128).bit_length() - 1
    struct.pack_into("<H", space, 0x48, read_code << 12 | 1 << 5 | 1 << 4)  # MaxPayload 256, relaxed ordering
    struct.pack_into("<I", space, 0x4C, _SPEED_CODES[max_speed] | max_width << 4)
    struct.pack_into("<H", space, 0x52, _SPEED_CODES[speed] | width << 4)
    if acs_control is not None:
        struct.pack_into("<IHH", space, 0x100, 0x000D | 1 << 16, ACS_ALL, acs_control)
    return bytes(space)


@dataclass(frozen=True)
class _End:
    address: str
    port_type: int
    speed: float
    width: int
    max_speed: float = GEN5
    max_width: int = 16
    acs: int | None = None
    read_request: int = 512
    vendor: int = 0x10DE


def _ends(spec: NodeSpec, path: PathSpec) -> list[_End]:
    """Every function on the GPUs' and rail NICs' chains, with its link's state (each once)."""
    out: dict[str, _End] = {}
    for k, gpu in enumerate(spec.gpus):
        chain = fabric_trees._gpu_chain(gpu)
        root, up, down, device = chain[1:]
        width, speed = path.gpu_width.get(k, 16), path.gpu_speed.get(k, GEN5)
        out.setdefault(root, _End(root, _ROOT_PORT, GEN5, 16, acs=0))
        out.setdefault(up, _End(up, _UPSTREAM, GEN5, 16))
        out[down] = _End(down, _DOWNSTREAM, speed, width, acs=path.acs.get(gpu.switch, 0))
        out[device] = _End(device, _ENDPOINT, speed, width)
    for index, hca in enumerate(spec.hcas):
        chain = fabric_trees._nic_chain(hca, index)
        speed, width = path.nic_speed.get(hca.name, GEN5), path.nic_width.get(hca.name, 16)
        read_request = path.max_read_request.get(hca.name, 4096)
        if hca.switch is None:
            root, device = chain[1:]
            out.setdefault(root, _End(root, _ROOT_PORT, speed, width, acs=0))
        else:
            root, up, down, device = chain[1:]
            out.setdefault(root, _End(root, _ROOT_PORT, GEN5, 16, acs=0))
            out.setdefault(up, _End(up, _UPSTREAM, GEN5, 16))
            out[down] = _End(down, _DOWNSTREAM, speed, width, acs=path.acs.get(hca.switch, 0))
        out[device] = _End(device, _ENDPOINT, speed, width, read_request=read_request, vendor=0x15B3)
    return list(out.values())


def build(root: Path, spec: NodeSpec, path: PathSpec | None = None) -> Path:
    """``spec``'s tree (``fabric_trees.build``) with its PCIe layer (``path``, healthy by default)."""
    path = path or PathSpec()
    fabric_trees.build(root, spec)
    devices = root / "bus" / "pci" / "devices"
    for group, end in enumerate(_ends(spec, path)):
        function = devices / end.address
        if not function.exists():
            continue
        _write(function / "current_link_speed", _speed_text(end.speed))
        _write(function / "current_link_width", end.width)
        _write(function / "max_link_speed", _speed_text(end.max_speed))
        _write(function / "max_link_width", end.max_width)
        space = config_space(
            end.port_type,
            speed=end.speed,
            width=end.width,
            max_speed=end.max_speed,
            max_width=end.max_width,
            max_read_request=end.read_request,
            acs_control=end.acs,
            vendor=end.vendor,
        )
        (function.resolve() / "config").write_bytes(space[: path.config_bytes])
        if path.iommu is not None:
            groups = root / "kernel" / "iommu_groups" / str(group)
            _write(groups / "type", path.iommu)
            _link(function.resolve() / "iommu_group", groups)
    if path.iommu is not None:
        (root / "class" / "iommu" / "dmar0").mkdir(parents=True, exist_ok=True)
    if path.live_net:
        _live_net(root)
    return root


def _live_net(root: Path) -> None:
    """``class/net`` -> ``/sys/class/net`` (absolute: each reader sees its own network namespace's), and no
    RDMA devices: the testbed's rails are sockets."""
    net = root / "class" / "net"
    for entry in net.iterdir():
        entry.unlink()
    net.rmdir()
    net.symlink_to("/sys/class/net")
    infiniband = root / "class" / "infiniband"
    for entry in infiniband.iterdir():
        entry.unlink()


# ---------------------------------------------------------------------------------------------------------
# presets: a healthy node and one fault each (GPUs in PCI bus order: GPU k sits on switch k, beside mlx5_{k+1})


def healthy() -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec()


def gpu_at_x8(k: int = 3) -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec(gpu_width={k: 8})


def nic_at_gen4(hca: str = "mlx5_6") -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec(nic_speed={hca: GEN4})


def acs_on(switch: int = 2) -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec(acs={switch: ACS_ON})


def iommu_translating() -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec(iommu="DMA-FQ")


def iommu_passthrough() -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec(iommu="identity")


def no_peermem() -> tuple[NodeSpec, PathSpec]:
    return replace(fabric_trees.healthy_1cc(), peermem=False), PathSpec()


def small_read_request(hca: str = "mlx5_2") -> tuple[NodeSpec, PathSpec]:
    return fabric_trees.healthy_1cc(), PathSpec(max_read_request={hca: 512})


def unprivileged() -> tuple[NodeSpec, PathSpec]:
    """A healthy node as a user other than root reads it: 64 bytes of each ``config``."""
    return fabric_trees.healthy_1cc(), PathSpec(config_bytes=64)


@dataclass(frozen=True)
class Fault:
    """A preset, the check that must name it, the device it must name, and the words its line must hold."""

    name: str
    node: tuple[NodeSpec, PathSpec]
    check: str
    device: str | None
    words: tuple[str, ...]
    action: str
    """Words of the action the result must carry."""


FAULTS = (
    Fault(
        "gpu-x8", gpu_at_x8(3), "pcie-link", "GPU3", ("x8", "capable of x16", "under the rail's 400"), "reseat GPU 3"
    ),
    Fault("nic-gen4", nic_at_gen4("mlx5_6"), "pcie-link", "mlx5_6", ("16 GT/s (Gen4)", "252 of 504"), "reseat mlx5_6"),
    Fault("acs-on", acs_on(2), "pcie-acs", "0000:52:00.0", ("ReqRedir+", "CmpltRedir+"), "disable ACS"),
    Fault("iommu-dma", iommu_translating(), "iommu", None, ("all 16 GPUs and rail NICs", "DMA-FQ"), "iommu=pt"),
    Fault("no-peermem", no_peermem(), "gpu-peer-memory", None, ("neither nvidia_peermem",), "modprobe nvidia-peermem"),
    Fault("small-mrrs", small_read_request("mlx5_2"), "nic-pcie", "mlx5_2", ("MaxReadReq 512",), "4096"),
)
