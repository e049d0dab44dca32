"""Healthy nodes of current designs as sysfs trees, and one fault on each (issue 42, "a node's design is not its
fault"): a GB200 NVL72 compute tray, an HGX B200 node on the DMA-BUF path, an H200 node and a RoCE node like a
Dell XE9680. ``build(root, design)`` writes ``fabric_trees.build``'s tree with each GPU and NIC at its design's
PCI chain, then the PCIe layer of every function on those chains (link speed and width on both ends, the
configuration space of ``gpudirect_trees.config_space`` with its port type and ACS control).

What each property stands on:

* **GB200 tray** (``gb200``): two Grace CPUs (NUMA 0 and 1: CPU affinity 0-71 and 72-143 in the tray's
  ``nvidia-smi topo -m``, sgl-project/sglang#11208), four GB200 GPUs, PCI device 0x2941 (Linux's
  ``drivers/vfio/pci/nvgrace-gpu/main.c``), each alone in a PCI domain of its own on bus 1 at 0008, 0009, 0018
  and 0019:01:00.0 (nvidia-smi listings of GB200 trays), joined to its Grace by NVLink-C2C, so that every
  GPU-NIC pair prints SYS (sglang#11208) and NCCL runs GPUDirect RDMA over C2C (NCCL_NET_GDR_C2C, NVIDIA/nccl#1579).
  Four ConnectX-7 rails at 0000, 0002, 0010 and 0012:03:00.0 below a switch under a Grace root port (OCI's
  BM.GPU.GB200.4 shape lists these four addresses, and a public NIC-selection test the chain ``0010:03:00.0 <-
  0010:02:00.0 <- 0010:00:00.0``; both seen in the code index without a URL), named mlx5_0, mlx5_1, mlx5_3 and
  mlx5_4 for GPUs 0-3 (NVIDIA/nvidia-resiliency-ext#152's GB200 GPU-NIC map), and a front end as mlx5_2
  (0006:09:00.0) and mlx5_5 (0016:0b:00.0) (a public GB200 address-to-HCA table in the code index; modelled as
  a BlueField-3's Ethernet ports). The Grace root ports keep ACS redirection on (the kernel enables it under an
  SMMU): they carry no GPU-NIC peer traffic.
* **HGX B200** (``hgx_b200``): 8 B200 (0x2901) and 8 NDR ConnectX-7, GPU k and NIC k below one switch tree two
  levels deep, PXB to each other and NODE to the other pairs of their socket (the HGX B300 matrix of
  sglang#26039, in the corpus), NUMA 0 for pairs 0-3 and 1 for 4-7; NVIDIA's open GPU kernel module (no ``P``
  taint) and no nvidia_peermem: GPUDirect RDMA by DMA-BUF (NVIDIA's GPUDirect RDMA guide, "Using DMA-BUF").
* **H200** (``h200``): 8 H200 (0x2335) and 8 NDR ConnectX-7, GPU k and NIC k on one PCIe switch (PIX), plus a
  front-end NIC on a CPU root port (NODE to GPUs 0-3: sglang#3824's 8 x H200 matrix); nvidia_peermem loaded.
* **RoCE node like a Dell XE9680** (``roce``): 8 H100 (0x2330), 8 x 400G ConnectX-7 (MT4129) with link layer
  Ethernet named mlx5_0, 3, 4, 5, 6, 9, 10, 11 and four 100G ConnectX-6 Dx (MT4125) front-end ports mlx5_1, 2,
  7, 8 (leptonai/gpud's ibstat of an 8 x H100 RoCE node, in the corpus), each rail NIC on GPU k's switch (PIX),
  interface MTU 9000 (RoCE MTU 4096).

Every link is PCIe Gen5 x16 (B200, H100/H200 SXM, ConnectX-7 and BlueField-3 are Gen5 x16 devices), but a
ConnectX-6 Dx's (Gen4 x16).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.support.trees import fabric_trees
from tests.support.trees.fabric_trees import NDR, GpuSpec, HcaSpec, NetSpec, NodeSpec, PortSpec
from tests.support.trees.gpudirect_trees import ACS_ON, GEN4, GEN5, _speed_text, _write, config_space

_ROOT_PORT, _UPSTREAM, _DOWNSTREAM, _ENDPOINT = 4, 5, 6, 0


@dataclass(frozen=True)
class Design:
    """A node of one design: its tree, the profile that describes it, and what the PCIe layer holds."""

    name: str
    profile: str
    spec: NodeSpec
    open_module: bool = False
    """NVIDIA's open GPU kernel module (taint ``OE``, no ``P``) instead of the proprietary one."""
    root_port_acs: int = 0
    """ACS control of every root port (Grace keeps redirection on); switch downstream ports have none on."""
    acs: Mapping[str, int] = field(default_factory=dict)
    """A bridge's address -> its ACS control, where a fault sets one."""
    links: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    """A function's address -> (GT/s, lanes) of the link above it, where a fault downtrains one."""


def _gb200() -> Design:
    gpus = tuple(
        GpuSpec(
            switch=k, numa=k // 2, device_id=0x2941, chain=(f"pci{d:04x}:00", f"{d:04x}:00:00.0", f"{d:04x}:01:00.0")
        )
        for k, d in enumerate((0x0008, 0x0009, 0x0018, 0x0019))
    )
    rails = []
    for name, domain, numa in (
        ("mlx5_0", 0x0000, 0),
        ("mlx5_1", 0x0002, 0),
        ("mlx5_3", 0x0010, 1),
        ("mlx5_4", 0x0012, 1),
    ):
        chain = tuple([f"pci{domain:04x}:00"] + [f"{domain:04x}:{bus:02x}:00.0" for bus in range(4)])
        rails.append(HcaSpec(name, netdev=f"ibP{domain}p3s0", numa=numa, chain=chain))
    front = [
        HcaSpec(
            name,
            (PortSpec(rate="200 Gb/sec (2X NDR)", link_layer="Ethernet"),),
            netdev=f"enP{domain}s{bus}np0",
            numa=numa,
            fw_ver="32.39.2048",
            hca_type="MT41692",
            chain=(f"pci{domain:04x}:00", f"{domain:04x}:00:00.0", f"{domain:04x}:{bus:02x}:00.0"),
        )
        for name, domain, bus, numa in (("mlx5_2", 0x0006, 0x09, 0), ("mlx5_5", 0x0016, 0x0B, 1))
    ]
    hcas = sorted((*rails, *front), key=lambda h: int(h.name.split("_")[1]))
    spec = NodeSpec(tuple(hcas), gpus, _nets(), driver="570.172.08")
    return Design("gb200", "gb200-nvl72", spec, root_port_acs=ACS_ON)


def _switch_gpus(gpu_id: int, *, depth: int) -> tuple[GpuSpec, ...]:
    """8 GPUs, GPU k under root port k beside rail NIC k (``_nic_chain``): on that switch (``depth`` 1, PIX) or
    a second switch below it (``depth`` 2, PXB); GPUs 0-3 on NUMA node 0, 4-7 on 1."""
    return tuple(GpuSpec(k, numa=k // 4, device_id=gpu_id, chain=_gpu_chain(k, depth)) for k in range(8))


def _rc(k: int) -> int:
    return 0x10 + 0x20 * k


def _gpu_chain(k: int, depth: int) -> tuple[str, ...]:
    rc = _rc(k)
    chain = [f"pci0000:{rc:02x}", f"0000:{rc:02x}:01.0", f"0000:{rc + 1:02x}:00.0", f"0000:{rc + 2:02x}:00.0"]
    if depth == 2:
        chain += [f"0000:{rc + 3:02x}:00.0", f"0000:{rc + 4:02x}:00.0"]
    return (*chain, f"0000:{rc + 5:02x}:00.0")


def _nic_chain(k: int) -> tuple[str, ...]:
    rc = _rc(k)
    return (
        f"pci0000:{rc:02x}",
        f"0000:{rc:02x}:01.0",
        f"0000:{rc + 1:02x}:00.0",
        f"0000:{rc + 2:02x}:01.0",
        f"0000:{rc + 6:02x}:00.0",
    )


def _nets() -> tuple[NetSpec, ...]:
    return (NetSpec("lo", operstate="unknown", kind="loopback"),)


def _rails(names: tuple[str, ...], port: PortSpec, netdev: str) -> list[HcaSpec]:
    return [
        HcaSpec(name, (port,), netdev=netdev.format(k=k), numa=k // 4, chain=_nic_chain(k))
        for k, name in enumerate(names)
    ]


def _front_end(name: str, rate: str, hca_type: str = "MT4129", bus: int = 0x02) -> HcaSpec:
    chain = ("pci0000:00", f"0000:00:{bus:02x}.0", f"0000:{bus:02x}:00.0")
    return HcaSpec(
        name, (PortSpec(rate=rate, link_layer="Ethernet"),), netdev=f"eno{bus}np0", hca_type=hca_type, chain=chain
    )


def _hgx_b200() -> Design:
    names = tuple(f"mlx5_{k}" for k in range(8))
    gpus = _switch_gpus(0x2901, depth=2)
    spec = NodeSpec(tuple(_rails(names, PortSpec(), "ibp{k}s0")), gpus, _nets(), driver="570.124.06", peermem=False)
    return Design("hgx-b200", "hgx-b200", spec, open_module=True)


def _h200() -> Design:
    names = tuple(f"mlx5_{k}" for k in range(8))
    gpus = _switch_gpus(0x2335, depth=1)
    hcas = (*_rails(names, PortSpec(), "ibp{k}s0"), _front_end("mlx5_8", "100 Gb/sec (4X EDR)"))
    return Design("h200", "h200", NodeSpec(tuple(hcas), gpus, _nets(), driver="550.144.03"))


PCIE_MAX = {"MT4125": GEN4}
"""HCA type -> its PCIe generation where it is not Gen5: ConnectX-6 Dx (MT4125) is a PCIe Gen4 x16 card (NVIDIA's
ConnectX-6 Dx datasheet); ConnectX-7 (MT4129) and BlueField-3 (MT41692) are Gen5."""

ROCE_RAILS = ("mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10", "mlx5_11")
"""The 400G RoCE rails of gpud's 8 x H100 RoCE capture, in GPU order; mlx5_1, 2, 7 and 8 are its 100G ports."""


def _roce() -> Design:
    roce = PortSpec(rate=NDR, link_layer="Ethernet")
    gpus = _switch_gpus(0x2330, depth=1)
    front = [
        _front_end(name, "100 Gb/sec (4X EDR)", "MT4125", bus)
        for name, bus in (("mlx5_1", 0x02), ("mlx5_2", 0x03), ("mlx5_7", 0x04), ("mlx5_8", 0x05))
    ]
    hcas = sorted((*_rails(ROCE_RAILS, roce, "enp{k}s0np0"), *front), key=lambda h: int(h.name.split("_")[1]))
    return Design("roce", "roce-8x400", NodeSpec(tuple(hcas), gpus, _nets(), driver="550.54.15"))


DESIGNS: dict[str, Design] = {d.name: d for d in (_gb200(), _hgx_b200(), _h200(), _roce())}


def _port_types(chain: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """(address, port type) of each function below the host bridge: a root port, then switch upstream and
    downstream ports in turn, the device last."""
    functions = list(chain[1:])
    out = [(functions[0], _ROOT_PORT)]
    for depth, address in enumerate(functions[1:-1]):
        out.append((address, _UPSTREAM if depth % 2 == 0 else _DOWNSTREAM))
    return [*out, (functions[-1], _ENDPOINT)]


def build(root: Path, design: Design) -> Path:
    """``design``'s tree under ``root`` (use it as ``--sysfs-root``)."""
    spec = design.spec
    fabric_trees.build(root, spec)
    chains = [(fabric_trees._gpu_chain(g), GEN5) for g in spec.gpus]
    chains += [(fabric_trees._nic_chain(h, i), PCIE_MAX.get(h.hca_type, GEN5)) for i, h in enumerate(spec.hcas)]
    written: set[str] = set()
    for chain, top in chains:
        typed = _port_types(chain)
        for i, (address, port_type) in enumerate(typed):
            if address in written:
                continue
            written.add(address)
            # A port facing down reads the link below it; the others the link above them.
            below = typed[i + 1][0] if port_type in (_ROOT_PORT, _DOWNSTREAM) and i + 1 < len(typed) else address
            speed, width = design.links.get(below, (top, 16))
            default = design.root_port_acs if port_type == _ROOT_PORT else 0
            acs = design.acs.get(address, default) if port_type in (_ROOT_PORT, _DOWNSTREAM) else None
            _function(root, address, port_type, speed, width, acs, top)
    if design.open_module:
        _write(root / "module" / "nvidia" / "taint", "OE")
    for hca in spec.hcas:
        if hca.netdev and hca.ports[0].link_layer == "Ethernet":
            _write(root / "class" / "net" / hca.netdev / "mtu", 9000)
    return root


def _function(root: Path, address: str, port_type: int, speed: float, width: int, acs: int | None, top: float) -> None:
    function = (root / "bus" / "pci" / "devices" / address).resolve()
    top = top if port_type == _ENDPOINT else GEN5  # a Gen4 card in a Gen5 slot: its link trains to Gen4
    _write(function / "current_link_speed", _speed_text(speed))
    _write(function / "current_link_width", width)
    _write(function / "max_link_speed", _speed_text(top))
    _write(function / "max_link_width", 16)
    vendor = int((function / "vendor").read_text(), 16) if (function / "vendor").exists() else 0x10DE
    space = config_space(
        port_type,
        speed=speed,
        width=width,
        max_speed=top,
        max_width=16,
        max_read_request=4096,
        acs_control=acs,
        vendor=vendor,
    )
    (function / "config").write_bytes(space)


# ---------------------------------------------------------------------------------------------------------
# faults: one thing changed on a healthy node of each design


@dataclass(frozen=True)
class Fault:
    """A fault on a design, the check that must fail on it, the part its line must name, and the action's words."""

    name: str
    design: Design
    check: str
    part: str
    words: tuple[str, ...]


def gpu_downtrained(design: Design, k: int) -> Design:
    """GPU k's own link trained at x8."""
    gpu = fabric_trees._gpu_chain(design.spec.gpus[k])[-1]
    return replace(design, links={**design.links, gpu: (GEN5, 8)})


def upstream_at_x8(design: Design, k: int) -> Design:
    """The link from root port k to its switch's upstream port trained at x8."""
    upstream = fabric_trees._gpu_chain(design.spec.gpus[k])[2]
    return replace(design, links={**design.links, upstream: (GEN5, 8)})


def nic_downtrained(design: Design, name: str) -> Design:
    hca = next(i for i, h in enumerate(design.spec.hcas) if h.name == name)
    address = fabric_trees._nic_chain(design.spec.hcas[hca], hca)[-1]
    return replace(design, links={**design.links, address: (GEN5, 8)})


def acs_above_gpu(design: Design, k: int) -> Design:
    """ACS redirection on the switch downstream port right above GPU k (a BIOS that turned it back on)."""
    port = fabric_trees._gpu_chain(design.spec.gpus[k])[-2]
    return replace(design, acs={**design.acs, port: ACS_ON})


def nic_on_other_socket(design: Design, name: str) -> Design:
    """Rail NIC ``name`` in a slot of the other CPU's root port instead of its GPU's switch."""
    hcas = []
    for hca in design.spec.hcas:
        if hca.name == name:
            hca = replace(hca, numa=1 - hca.numa, chain=("pci0000:f0", "0000:f0:01.0", "0000:f1:00.0"))
        hcas.append(hca)
    return replace(design, spec=replace(design.spec, hcas=tuple(hcas)))


def faults() -> list[Fault]:
    """Every design's faults: a GPU link downtrained; on a switch design also a rail NIC on the other socket, ACS
    redirection between GPU k and its NIC, and a switch's upstream link at x8; on a GB200 tray (no switch shared)
    a rail NIC's link downtrained instead."""
    out = []
    for design in DESIGNS.values():
        gpu_address = fabric_trees._gpu_chain(design.spec.gpus[2])[-1]
        out.append(
            Fault(
                f"{design.name}-gpu-x8",
                gpu_downtrained(design, 2),
                "pcie-link",
                "GPU 2",
                ("x8", gpu_address, "reseat GPU 2"),
            )
        )
        if design.name == "gb200":
            out.append(
                Fault("gb200-nic-x8", nic_downtrained(design, "mlx5_3"), "pcie-link", "mlx5_3", ("x8", "reseat"))
            )
            continue
        moved = next(h.name for h in design.spec.hcas if h.chain == _nic_chain(5))
        out.append(
            Fault(
                f"{design.name}-nic-numa",
                nic_on_other_socket(design, moved),
                "gpu-nic-affinity",
                "GPU5",
                ("expected PIX or PXB",),
            )
        )
        port = fabric_trees._gpu_chain(design.spec.gpus[1])[-2]
        out.append(
            Fault(f"{design.name}-acs", acs_above_gpu(design, 1), "pcie-acs", port, ("ReqRedir+", "disable ACS"))
        )
        upstream = fabric_trees._gpu_chain(design.spec.gpus[6])[2]
        out.append(
            Fault(
                f"{design.name}-upstream-x8",
                upstream_at_x8(design, 6),
                "pcie-link",
                upstream,
                ("x8", "host memory", "reseat"),
            )
        )
    return out
