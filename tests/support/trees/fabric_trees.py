"""Build sysfs-like fixture trees for the fabric tests: small, readable and parametrised.

The layout is the kernel's (``class/infiniband/<dev> -> devices/pci.../<addr>/infiniband/<dev>``, ``<dev>/device
-> the PCI function``, ``class/net/<if>``, ``bus/pci/devices/<addr>``) and the values are in the kernel's
words (``4: ACTIVE``, ``5: LinkUp``, ``400 Gb/sec (4X NDR)``), modelled on the ibstat and ibv_devinfo outputs
in the corpus (ConnectX-7 NDR rails, a port that is DOWN reporting ``40 Gb/sec``, RoCE ports, BlueField bond
devices). Each preset is one healthy 1CC-style node with one thing changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

NDR = "400 Gb/sec (4X NDR)"
HDR = "200 Gb/sec (4X HDR)"
DOWN_RATE = "40 Gb/sec (4X QDR)"  # what a CX-7 port that is down reports (see the gpud ibstat captures)

_STATE_CODES = {"DOWN": 1, "INIT": 2, "ARMED": 3, "ACTIVE": 4}
_PHYS_CODES = {"Sleep": 1, "Polling": 2, "Disabled": 3, "LinkUp": 5}


@dataclass(frozen=True)
class PortSpec:
    state: str = "ACTIVE"
    phys_state: str = "LinkUp"
    rate: str = NDR
    link_layer: str = "InfiniBand"
    xmit_words: int = 0
    """port_xmit_data, in the kernel's 4-byte units."""
    rcv_words: int = 0
    ext64: bool = False
    """Also write counters_ext/port_{xmit,rcv}_data_64 (older drivers' extended counters)."""


@dataclass(frozen=True)
class HcaSpec:
    name: str
    ports: tuple[PortSpec, ...] = (PortSpec(),)
    netdev: str | None = None
    switch: int | None = None
    """PCIe switch shared with GPU ``switch`` (PIX affinity); None for a front-end NIC on its own root port."""
    numa: int = 0
    fw_ver: str = "28.39.1002"
    hca_type: str = "MT4129"
    chain: tuple[str, ...] = ()
    """The PCI chain (host bridge first, the NIC last) where a design places it; empty: by ``switch``."""


@dataclass(frozen=True)
class GpuSpec:
    switch: int
    numa: int = 0
    device_id: int = 0x2330  # H100 SXM5 80GB
    bus: int | None = None
    """The GPU's own PCI bus number; None puts it three buses below its root port."""
    chain: tuple[str, ...] = ()
    """The PCI chain (host bridge first, the GPU last) where a design places it; empty: by ``switch``."""


@dataclass(frozen=True)
class NetSpec:
    name: str
    operstate: str = "up"
    speed_mbps: int = 100000
    tx_bytes: int = 0
    rx_bytes: int = 0
    kind: str = "ether"
    """``ether`` (a PCI NIC), ``bond``, ``loopback``, ``virtual``."""
    slaves: tuple[str, ...] = ()


@dataclass(frozen=True)
class PciSpec:
    """Any other PCI function: an NVSwitch, the BMC's VGA, an NVIDIA audio function."""

    chain: tuple[str, ...]
    vendor: int
    device: int
    pci_class: int
    numa: int = 0


@dataclass(frozen=True)
class NodeSpec:
    hcas: tuple[HcaSpec, ...]
    gpus: tuple[GpuSpec, ...] = ()
    nets: tuple[NetSpec, ...] = ()
    driver: str | None = "550.54.15"
    other_pci: tuple[PciSpec, ...] = ()
    peermem: bool = True
    """``module/nvidia_peermem`` is loaded beside the (proprietary, ``POE``-tainted) driver: GPUDirect RDMA works."""


def _rc(switch: int) -> int:
    return 0x10 + 0x20 * switch


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def _write(path: Path, text: str | int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def _pci_function(root: Path, chain: list[str], numa: int, vendor: int, device: int, pci_class: int) -> Path:
    path = root / "devices"
    for part in chain:
        path = path / part
    for depth in range(1, len(chain)):  # every bridge and the function itself, as bus/pci/devices lists them
        bus_link = root / "bus" / "pci" / "devices" / chain[depth]
        if not bus_link.is_symlink():
            target = root.joinpath("devices", *chain[: depth + 1])
            target.mkdir(parents=True, exist_ok=True)
            _link(bus_link, target)
    _write(path / "numa_node", numa)
    _write(path / "vendor", f"0x{vendor:04x}")
    _write(path / "device", f"0x{device:04x}")
    _write(path / "class", f"0x{pci_class:06x}")
    return path


def _nic_chain(hca: HcaSpec, index: int) -> list[str]:
    if hca.chain:
        return list(hca.chain)
    if hca.switch is None:
        return ["pci0000:00", "0000:00:02.0", f"0000:{index + 1:02x}:00.0"]
    rc = _rc(hca.switch)
    return [
        f"pci0000:{rc:02x}",
        f"0000:{rc:02x}:01.0",
        f"0000:{rc + 1:02x}:00.0",
        f"0000:{rc + 2:02x}:01.0",
        f"0000:{rc + 4:02x}:00.0",
    ]


def _gpu_chain(gpu: GpuSpec) -> list[str]:
    if gpu.chain:
        return list(gpu.chain)
    rc = _rc(gpu.switch)
    return [
        f"pci0000:{rc:02x}",
        f"0000:{rc:02x}:01.0",
        f"0000:{rc + 1:02x}:00.0",
        f"0000:{rc + 2:02x}:00.0",
        f"0000:{rc + 3 if gpu.bus is None else gpu.bus:02x}:00.0",
    ]


def _netdev(root: Path, spec: NetSpec, pci: Path | None, dev_port: int = 0) -> None:
    if pci is not None:
        path = pci / "net" / spec.name
        _link(root / "class" / "net" / spec.name, path)
        _link(path / "device", pci)
        _write(path / "dev_port", dev_port)
    else:
        path = root / "devices" / "virtual" / "net" / spec.name
        _link(root / "class" / "net" / spec.name, path)
    _write(path / "operstate", spec.operstate)
    _write(path / "speed", spec.speed_mbps if spec.operstate == "up" else -1)
    _write(path / "type", {"loopback": 772, "ipoib": 32}.get(spec.kind, 1))
    _write(path / "statistics" / "tx_bytes", spec.tx_bytes)
    _write(path / "statistics" / "rx_bytes", spec.rx_bytes)
    if spec.kind == "bond":
        _write(path / "bonding" / "slaves", " ".join(spec.slaves))


def build(root: Path, spec: NodeSpec) -> Path:
    """Write ``spec`` as a sysfs tree under ``root``; returns ``root`` (use it as --sysfs-root)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "class" / "infiniband").mkdir(parents=True, exist_ok=True)
    (root / "class" / "net").mkdir(parents=True, exist_ok=True)
    for index, hca in enumerate(spec.hcas):
        pci = _pci_function(root, _nic_chain(hca, index), hca.numa, 0x15B3, 0x1021, 0x020700)
        ib = pci / "infiniband" / hca.name
        _link(root / "class" / "infiniband" / hca.name, ib)
        _link(ib / "device", pci)
        _write(ib / "fw_ver", hca.fw_ver)
        _write(ib / "hca_type", hca.hca_type)
        _write(ib / "board_id", "MT_0000000838")
        _write(ib / "node_type", "1: CA")
        for number, port in enumerate(hca.ports, start=1):
            base = ib / "ports" / str(number)
            _write(base / "state", f"{_STATE_CODES[port.state]}: {port.state}")
            _write(base / "phys_state", f"{_PHYS_CODES[port.phys_state]}: {port.phys_state}")
            _write(base / "rate", port.rate)
            _write(base / "link_layer", port.link_layer)
            _write(base / "counters" / "port_xmit_data", port.xmit_words)
            _write(base / "counters" / "port_rcv_data", port.rcv_words)
            if port.ext64:
                _write(base / "counters_ext" / "port_xmit_data_64", port.xmit_words)
                _write(base / "counters_ext" / "port_rcv_data_64", port.rcv_words)
            if hca.netdev and port.link_layer == "Ethernet":
                _write(base / "gid_attrs" / "ndevs" / "0", hca.netdev)
        if hca.netdev and hca.netdev not in {n.name for n in spec.nets}:
            kind = "ipoib" if hca.ports[0].link_layer == "InfiniBand" else "ether"
            up = "down" if kind == "ipoib" else "up"  # no IPoIB configured on a pure IB fabric
            _netdev(root, NetSpec(hca.netdev, operstate=up, speed_mbps=400000, kind=kind), pci)
    for gpu in spec.gpus:
        _pci_function(root, _gpu_chain(gpu), gpu.numa, 0x10DE, gpu.device_id, 0x030200)
    for other in spec.other_pci:
        _pci_function(root, list(other.chain), other.numa, other.vendor, other.device, other.pci_class)
    for number, net in enumerate(spec.nets):
        if net.kind == "ether":
            chain = ["pci0000:00", "0000:00:03.0", f"0000:{0x80 + number:02x}:00.0"]
            pci = _pci_function(root, chain, 0, 0x8086, 0x1593, 0x020000)
            _netdev(root, net, pci)
        else:
            _netdev(root, net, None)
    if spec.driver:
        _write(root / "module" / "nvidia" / "version", spec.driver)
        _write(root / "module" / "nvidia" / "taint", "POE")
        if spec.peermem:
            _write(root / "module" / "nvidia_peermem" / "initstate", "live")
    return root


# ---------------------------------------------------------------------------------------------------------
# presets: a healthy 1CC-style node and one fault each


def healthy_1cc(**port_overrides: PortSpec) -> NodeSpec:
    """mlx5_0 is a front-end Ethernet port (not for RDMA); mlx5_1..mlx5_8 are NDR IB rails, rail k shares a
    PCIe switch with GPU k-1. ``port_overrides`` replaces a rail's port, e.g. ``mlx5_3=PortSpec(...)``."""
    hcas = [HcaSpec("mlx5_0", (PortSpec(rate="100 Gb/sec (4X EDR)", link_layer="Ethernet"),), netdev="eno1")]
    for k in range(1, 9):
        name = f"mlx5_{k}"
        hcas.append(
            HcaSpec(
                name, (port_overrides.get(name, PortSpec()),), netdev=f"ibp{k}s0", switch=k - 1, numa=0 if k <= 4 else 1
            )
        )
    gpus = tuple(GpuSpec(switch=k, numa=0 if k < 4 else 1) for k in range(8))
    nets = (NetSpec("lo", operstate="unknown", kind="loopback"), NetSpec("docker0", kind="virtual"))
    return NodeSpec(tuple(hcas), gpus, nets)


def hgx_with_other_pci(gpu_device_id: int = 0x2330) -> NodeSpec:
    """A healthy 1CC node as an HGX board shows it: besides the 8 GPUs, 4 NVSwitches (NVIDIA's vendor id,
    class 0x0680 "other bridge"), an NVIDIA HDMI audio function (0x0403) and the BMC's ASPEED VGA (0x0300,
    not NVIDIA's). Only the 8 GPUs are GPUs."""
    base = healthy_1cc()
    gpus = tuple(replace(g, device_id=gpu_device_id) for g in base.gpus)
    nvswitches = tuple(
        PciSpec(("pci0000:c0", "0000:c0:01.0", f"0000:{0xC1 + k:02x}:00.0"), 0x10DE, 0x22A3, 0x068000, 1)
        for k in range(4)
    )
    audio = PciSpec(("pci0000:c0", "0000:c0:02.0", "0000:c9:00.1"), 0x10DE, 0x22BA, 0x040300, 1)
    bmc_vga = PciSpec(("pci0000:00", "0000:00:1c.0", "0000:03:00.0"), 0x1A03, 0x2000, 0x030000, 0)
    return replace(base, gpus=gpus, other_pci=(*nvswitches, audio, bmc_vga))


HGX_H100_GPU_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
"""The GPUs' PCI bus numbers on an HGX H100 8-GPU board (Dell XE9680 / Supermicro SYS-821GE ``nvidia-smi``
listings): bus order is CUDA's PCI_BUS_ID order and nvidia-smi's, and half of them start with a hex letter."""


def hgx_h100_buses() -> NodeSpec:
    """A healthy 1CC node whose GPUs sit at an HGX H100's real bus numbers (GPU k on PCIe switch k)."""
    base = healthy_1cc()
    return replace(base, gpus=tuple(replace(g, bus=b) for g, b in zip(base.gpus, HGX_H100_GPU_BUSES, strict=True)))


SHUFFLED_HCA_NAMES = (5, 7, 6, 8, 1, 3, 2, 4)
"""mlx5_{SHUFFLED_HCA_NAMES[k]} shares GPU k's PCIe switch: HCA names that do not follow the GPUs' bus order, as
some cloud images enumerate them (the driver names HCAs in its own probe order, not by PCI bus)."""


def hca_names_out_of_gpu_order(down_gpu: int | None = None) -> NodeSpec:
    """A 1CC node whose rail NICs are named out of GPU order; the NIC nearest GPU ``down_gpu`` has its port
    DOWN."""
    base = healthy_1cc()
    rails = []
    for k, hca in enumerate(h for h in base.hcas if h.switch is not None):
        name = f"mlx5_{SHUFFLED_HCA_NAMES[k]}"
        port = PortSpec(state="DOWN", phys_state="Disabled", rate=DOWN_RATE) if k == down_gpu else PortSpec()
        rails.append(replace(hca, name=name, netdev=f"ibp{SHUFFLED_HCA_NAMES[k]}s0", ports=(port,)))
    return replace(base, hcas=(base.hcas[0], *rails))


def port_down(rail: str = "mlx5_3") -> NodeSpec:
    return healthy_1cc(**{rail: PortSpec(state="DOWN", phys_state="Disabled", rate=DOWN_RATE)})


def rail_at_hdr(rail: str = "mlx5_6") -> NodeSpec:
    return healthy_1cc(**{rail: PortSpec(rate=HDR)})


def missing_rail(rail: str = "mlx5_4") -> NodeSpec:
    spec = healthy_1cc()
    return replace(spec, hcas=tuple(h for h in spec.hcas if h.name != rail))


def roce_node() -> NodeSpec:
    """Every rail is a 400G RoCE (Ethernet) port, as in the gpud RoCE capture."""
    spec = healthy_1cc()
    hcas = tuple(
        replace(h, ports=(replace(h.ports[0], link_layer="Ethernet"),), netdev=f"enp{i}s0np0")
        if h.switch is not None
        else h
        for i, h in enumerate(spec.hcas)
    )
    return replace(spec, hcas=hcas)


def bond_node() -> NodeSpec:
    """A healthy node plus a BlueField-3 RoCE bond (mlx5_bond_0 over two Ethernet ports, bond0)."""
    spec = healthy_1cc()
    bond = HcaSpec(
        "mlx5_bond_0",
        (PortSpec(rate="200 Gb/sec (2X NDR)", link_layer="Ethernet"),),
        netdev="bond0",
        fw_ver="32.38.3056",
        hca_type="MT41692",
    )
    nets = (*spec.nets, NetSpec("bond0", kind="bond", slaves=("enp3s0f0np0", "enp3s0f1np1")))
    return replace(spec, hcas=(*spec.hcas, bond), nets=nets)


@dataclass(frozen=True)
class Case:
    """A preset, what ``railbench check --profile lambda-1cc`` must say, and the device it must name."""

    name: str
    spec: NodeSpec
    verdict: str
    device: str | None
    words: tuple[str, ...] = field(default=())


CASES = (
    Case("healthy", healthy_1cc(), "pass", None),
    Case("port-down", port_down("mlx5_3"), "fail", "mlx5_3:1", ("DOWN",)),
    Case("rail-hdr", rail_at_hdr("mlx5_6"), "fail", "mlx5_6:1", ("200",)),
    Case("missing-rail", missing_rail("mlx5_4"), "fail", "mlx5_4", ("missing",)),
    Case("roce", roce_node(), "fail", "mlx5_1:1", ("Ethernet",)),
    Case("bond", bond_node(), "fail", "mlx5_bond_0:1", ()),
)
