"""The PCIe links on the path between a GPU and its rail NIC, read from sysfs.

Every PCI function in ``bus/pci/devices/<addr>`` has ``current_link_speed``, ``current_link_width``,
``max_link_speed`` and ``max_link_width`` (the kernel's Documentation/ABI/testing/sysfs-bus-pci), in the
kernel's words: ``32.0 GT/s PCIe`` (``16 GT/s`` on kernels before 5.x, ``Unknown`` for a code it does not
know) and a decimal lane count (0 while the link is down). A link has two ends: the port above it (a root port
or a switch's downstream port) and the function below (an endpoint, or a switch's upstream port); both read the
same current speed and width, and each its own maximum. A link trains to what both ends support, so it is
*degraded* when it runs below the lesser of the two maxima, which is the kernel's own test
(``drivers/pci/pci.c`` ``__pcie_print_link_status``: "... available PCIe bandwidth, limited by ... at ...").

Which functions face down (so that a link runs from them to the function below) comes from the configuration
space's device/port type (``bench.fabric.pci_config``) when it could be read; otherwise the tree's shape says
it, as it is everywhere in practice: under the host bridge a root port, then switch upstream and downstream
ports in turn, the device last.

A link's bandwidth per direction is its lanes times the rate of one lane after line coding, as the kernel
computes it (``drivers/pci/pci.h`` ``PCIE_SPEED2MBS_ENC``): 8b/10b up to 5 GT/s, 128b/130b at 8 to 32 GT/s,
FLIT mode at 64 GT/s. A Gen5 x16 GPU link moves 504 Gb/s each way; at x8 or at Gen4 speed 252 Gb/s, under one
400 Gb/s NDR port: GPUDirect RDMA through that link cannot fill its rail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.bounded import InputError, Where, parse_float
from bench.fabric import pci_config
from bench.fabric.sysfs import PCI_ADDRESS, Sysfs

LANE_GBPS: dict[float, float] = {
    2.5: 2.5 * 8 / 10,
    5.0: 5.0 * 8 / 10,
    8.0: 8.0 * 128 / 130,
    16.0: 16.0 * 128 / 130,
    32.0: 32.0 * 128 / 130,
    64.0: 64.0,
}
"""GT/s -> Gb/s of one lane after line coding (the kernel's ``PCIE_SPEED2MBS_ENC``)."""
SPEED_CODES: dict[int, float] = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0}
"""Link Status / Link Capabilities speed code -> GT/s (PCIe Base 6.0 section 7.5.3.6, as ``lspci`` reads them)."""
GENERATIONS: dict[float, int] = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}
MAX_WIDTH = 32
"""A PCIe link has at most 32 lanes."""
NVIDIA_VENDOR = 0x10DE
MELLANOX_VENDOR = 0x15B3
GRACE_SUPERCHIP_GPUS: dict[int, str] = {
    0x2342: "GH200",
    0x2345: "GH200",
    0x2348: "GH200",
    0x2941: "GB200",
    0x31C2: "GB300",
}
"""PCI device ids of the GPUs of NVIDIA's Grace superchips, each joined to its Grace CPU by NVLink-C2C: the ids
Linux's ``drivers/vfio/pci/nvgrace-gpu/main.c`` (``nvgrace_gpu_vfio_pci_table``) lists as GH200 120GB/480GB,
GH200, GB200 and GB300. Such a GPU reaches its rail NIC through its Grace (C2C, then a Grace root port): no PCIe
switch is shared by design, NCCL enables GPUDirect RDMA over C2C (``NCCL_NET_GDR_C2C``, NVIDIA/nccl#1579), and
``nvidia-smi topo -m`` prints every GPU-NIC pair of a GB200 tray SYS (sgl-project/sglang#11208)."""


def parse_speed(text: str | None) -> float | None:
    """``32.0 GT/s PCIe`` or ``16 GT/s`` -> GT/s; None for ``Unknown``, an empty value or anything else."""
    if not text:
        return None
    words = text.split()
    if len(words) < 2 or not words[1].startswith("GT/s"):
        return None
    try:
        return parse_float(words[0], Where("link speed", "GT/s"), sign="positive", maximum=1024)
    except InputError:
        return None


def speed_words(gts: float | None) -> str:
    """``32 GT/s (Gen5)``; ``unknown speed``."""
    if gts is None:
        return "unknown speed"
    gen = GENERATIONS.get(gts)
    return f"{gts:g} GT/s" + (f" (Gen{gen})" if gen else "")


def link_gbps(gts: float | None, width: int | None) -> float | None:
    """Gb/s per direction of ``width`` lanes at ``gts`` after line coding; None when either is unknown."""
    if gts is None or not width:
        return None
    lane = LANE_GBPS.get(gts)
    return lane * width if lane is not None else None


@dataclass(frozen=True)
class PciFunction:
    """One PCI function as sysfs shows it."""

    address: str
    vendor: int | None
    device: int | None
    pci_class: int | None
    speed_gts: float | None
    width: int | None
    max_speed_gts: float | None
    max_width: int | None
    config: pci_config.ConfigSpace | None
    """None when ``config`` could not be read at all."""

    @property
    def is_gpu(self) -> bool:
        return self.vendor == NVIDIA_VENDOR and self.pci_class is not None and self.pci_class >> 8 in (0x0300, 0x0302)

    @property
    def superchip(self) -> str | None:
        """``GB200`` for the GPU of a Grace superchip (NVLink-C2C to its CPU, :data:`GRACE_SUPERCHIP_GPUS`)."""
        if self.vendor != NVIDIA_VENDOR or self.device is None:
            return None
        return GRACE_SUPERCHIP_GPUS.get(self.device)

    @property
    def pcie(self) -> pci_config.PcieCapability | None:
        return self.config.pcie if self.config is not None else None

    @property
    def has_link(self) -> bool:
        return self.speed_gts is not None or self.width is not None


def _width(sysfs: Sysfs, *parts: str) -> int | None:
    return sysfs.read_int(*parts, maximum=255)


def pci_function(sysfs: Sysfs, address: str) -> PciFunction:
    """What sysfs says of the function at ``address`` (``0000:1b:00.0``); fields it does not show are None."""
    base = ("bus", "pci", "devices", address)
    raw = sysfs.read_raw(*base, "config")
    return PciFunction(
        address=address,
        vendor=sysfs.read_int(*base, "vendor", maximum=0xFFFF),
        device=sysfs.read_int(*base, "device", maximum=0xFFFF),
        pci_class=sysfs.read_int(*base, "class", maximum=0xFFFFFF),
        speed_gts=parse_speed(sysfs.read(*base, "current_link_speed")),
        width=_width(sysfs, *base, "current_link_width"),
        max_speed_gts=parse_speed(sysfs.read(*base, "max_link_speed")),
        max_width=_width(sysfs, *base, "max_link_width"),
        config=pci_config.parse(raw) if raw is not None else None,
    )


@dataclass(frozen=True)
class PcieLink:
    """One PCIe link: the port above it, the function below it, what it runs at and what both ends support."""

    above: PciFunction | None
    """The root or downstream port; None where sysfs shows no port above the function (many VMs)."""
    below: PciFunction
    speed_gts: float | None
    width: int | None
    capable_speed_gts: float | None
    """The lesser of the two ends' maximum speeds (the one end's, when only one is known)."""
    capable_width: int | None

    @property
    def narrow(self) -> bool:
        """Trained at fewer lanes than both ends have."""
        return bool(self.width and self.capable_width and self.width < self.capable_width)

    @property
    def slow(self) -> bool:
        """Trained at a lower speed than both ends support."""
        return bool(self.speed_gts and self.capable_speed_gts and self.speed_gts < self.capable_speed_gts)

    @property
    def degraded(self) -> bool:
        return self.narrow or self.slow

    @property
    def down(self) -> bool:
        """Width 0: no lane trained (the device fell off the link)."""
        return self.width == 0

    @property
    def available_gbps(self) -> float | None:
        return link_gbps(self.speed_gts, self.width)

    @property
    def capable_gbps(self) -> float | None:
        return link_gbps(self.capable_speed_gts, self.capable_width)

    def describe(self) -> str:
        """``x8 at 32 GT/s (Gen5), capable of x16 at 32 GT/s (Gen5): 252 of 504 Gb/s``."""
        now = f"x{self.width} at {speed_words(self.speed_gts)}" if self.width is not None else "width unknown"
        capable = f"x{self.capable_width} at {speed_words(self.capable_speed_gts)}"
        rates = ""
        if self.available_gbps is not None and self.capable_gbps is not None:
            rates = f": {self.available_gbps:.0f} of {self.capable_gbps:.0f} Gb/s each way"
        return f"{now}, capable of {capable}{rates}"


def _least(a: float | None, b: float | None) -> float | None:
    known = [v for v in (a, b) if v]
    return min(known) if known else None


def _link(above: PciFunction | None, below: PciFunction) -> PcieLink:
    speed = below.speed_gts if below.speed_gts is not None else (above.speed_gts if above else None)
    width = below.width if below.width is not None else (above.width if above else None)
    capable_width = _least(below.max_width, above.max_width if above else None)
    return PcieLink(
        above,
        below,
        speed,
        width,
        _least(below.max_speed_gts, above.max_speed_gts if above else None),
        int(capable_width) if capable_width is not None else None,
    )


def _faces_down(function: PciFunction, depth: int) -> bool:
    pcie = function.pcie
    if pcie is not None:
        return pcie.faces_down
    return depth % 2 == 0  # root port, switch upstream port, downstream port, ... in turn


def chain_links(functions: Sequence[PciFunction]) -> list[PcieLink]:
    """The links along one chain of functions, the one under the host bridge first."""
    if not functions:
        return []
    links = []
    top = functions[0]
    top_type = top.pcie.port_type if top.pcie is not None else None
    # Nothing above the top function in sysfs (a VM's flat bus): its own link, partner unknown.
    if (len(functions) == 1 or top_type in (0, 1)) and top.has_link and top_type != 9:
        links.append(_link(None, top))
    for depth in range(len(functions) - 1):
        if _faces_down(functions[depth], depth):
            links.append(_link(functions[depth], functions[depth + 1]))
    return links


def path_links(sysfs: Sysfs, a: Sequence[str], b: Sequence[str] = ()) -> list[PcieLink]:
    """The links between the functions at the ends of PCI chains ``a`` and ``b`` (host bridge first, as
    ``bench.fabric.sysfs.pci_chain`` gives them): those below their deepest common function, each once. With
    ``b`` empty, every link from the root port down to ``a``'s device."""
    common = 0
    if b:
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            common += 1
    wanted = {p for p in (*a[common:], *b[common:]) if PCI_ADDRESS.match(p)}
    out: dict[tuple[str | None, str], PcieLink] = {}
    for chain in (a, b):
        functions = [pci_function(sysfs, p) for p in chain if PCI_ADDRESS.match(p)]
        for link in chain_links(functions):
            if link.below.address in wanted:
                out.setdefault((link.above.address if link.above else None, link.below.address), link)
    return list(out.values())


def shares_bridge(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether the two chains' devices sit under a PCI bridge they share (a switch port, or a root port they
    are both below): their peer traffic can turn there without reaching the host bridge (PIX or PXB)."""
    for x, y in zip(a[:-1], b[:-1], strict=False):
        if x != y:
            return False
        if PCI_ADDRESS.match(x):
            return True
    return False


def bridges_on_path(a: Sequence[str], b: Sequence[str]) -> list[str]:
    """The bridges a peer-to-peer transfer between the two chains' devices passes through: every bridge below
    the host bridge on either chain from their deepest common function down, the devices themselves left out
    (each chain's last element)."""
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    start = max(common - 1, 0)  # the deepest common function routes the transfer too
    out: dict[str, None] = {}
    for chain in (a, b):
        for part in chain[start:-1]:
            if PCI_ADDRESS.match(part):
                out[part] = None
    return list(out)
