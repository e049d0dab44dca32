"""Fabric discovery from sysfs, through one path helper with a configurable root.

``Sysfs(root)`` stands in for ``/sys``: tests and offline what-ifs point it at a fixture tree laid out as
the kernel lays out ``/sys`` (``class/infiniband/<dev>/ports/<p>/{state,phys_state,rate,link_layer}``,
``class/infiniband/<dev>/device -> PCI device``, ``class/net/<if>/{operstate,speed,statistics/*}``,
``bus/pci/devices/<addr>``). Nothing else in railbench opens a path under ``/sys`` itself: every read goes
through ``Sysfs`` (``bench.fabric.sysfs_io``), which refuses what is not a regular file or a directory, reads
at most a page, never blocks and never loops, and keeps what it refused as problems that name the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.bounded import parse_float, parse_int

# Re-exported: callers import the helper from here.
from bench.fabric.sysfs_io import Sysfs as Sysfs
from bench.fabric.sysfs_io import SysfsProblem as SysfsProblem
from bench.fabric.sysfs_io import natural_key as natural_key

MAX_RATE_GBPS = 1e6
"""Above any link a kernel reports (XDR is 800 Gb/s per port): a larger rate is a damaged tree."""
MAX_SPEED_MBPS = 10**9
"""``class/net/<if>/speed`` is in Mb/s; a petabit is past any interface."""
U64_MAX = (1 << 64) - 1
"""Byte and data counters are 64-bit at most."""

PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_HOST_BRIDGE = re.compile(r"^pci[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}$")
_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*Gb/sec(?:\s*\((.*)\))?")
_STATE = re.compile(r"^\s*([0-9]+)\s*:\s*(\S+)")


def pci_chain(resolved: Path | None) -> tuple[str, ...]:
    """PCI addresses from the root port down to the device, from a resolved ``/sys/devices/...`` path.

    The first element is the host bridge (``pci0000:00``) when present, then each bridge and the device.
    """
    if resolved is None:
        return ()
    return tuple(part for part in resolved.parts if PCI_ADDRESS.match(part) or _HOST_BRIDGE.match(part))


# ---------------------------------------------------------------------------------------------------------
# InfiniBand devices


@dataclass(frozen=True)
class IbPort:
    """One port of an RDMA device."""

    device: str
    port: int
    state: str
    """``ACTIVE``, ``DOWN``, ``INIT``, ``ARMED``; ``UNKNOWN`` when unreadable."""
    phys_state: str
    """``LinkUp``, ``Disabled``, ``Polling``...; ``UNKNOWN`` when unreadable."""
    rate_gbps: float | None
    """Line rate in Gb/s from ``rate`` (``400 Gb/sec (4X NDR)``)."""
    rate_text: str | None
    link_layer: str
    """``InfiniBand`` or ``Ethernet`` (RoCE)."""
    netdev: str | None
    """The net device on this port (IPoIB or the RoCE Ethernet interface)."""

    @property
    def name(self) -> str:
        return f"{self.device}:{self.port}"

    @property
    def width_speed(self) -> str | None:
        """``4X NDR`` from the rate text, when the kernel says it."""
        match = _RATE.match(self.rate_text or "")
        return match.group(2) if match and match.group(2) else None


@dataclass(frozen=True)
class IbDevice:
    """An RDMA device (HCA) and its ports."""

    name: str
    ports: tuple[IbPort, ...]
    pci_address: str | None
    numa_node: int | None
    """None when unknown (the kernel says -1 on single-node machines and in many VMs)."""
    pci_path: tuple[str, ...]
    fw_ver: str | None
    board_id: str | None
    hca_type: str | None
    netdevs: tuple[str, ...]


def _state(text: str | None) -> str:
    if not text:
        return "UNKNOWN"
    match = _STATE.match(text)
    return match.group(2) if match else text.split()[-1]


def _rate(sysfs: Sysfs, parts: tuple[str, ...], text: str | None) -> float | None:
    match = _RATE.match(text or "")
    if not match:
        return None
    return sysfs.parse(parts, match.group(1), lambda t, w: parse_float(t, w, maximum=MAX_RATE_GBPS))


def _numa(sysfs: Sysfs, *parts: str) -> int | None:
    value = sysfs.read_int(*parts, "numa_node", sign="any")
    return value if value is not None and value >= 0 else None


def _port_netdev(sysfs: Sysfs, device: str, port: int, netdevs: tuple[str, ...]) -> str | None:
    # RoCE ports name their net device in the GID table; IPoIB and the rest follow dev_port (0-based).
    ndev = sysfs.read("class", "infiniband", device, "ports", str(port), "gid_attrs", "ndevs", "0")
    if ndev:
        return ndev
    for name in netdevs:
        dev_port = sysfs.read_int("class", "infiniband", device, "device", "net", name, "dev_port")
        if dev_port is None or dev_port == port - 1:
            return name
    return None


def ib_devices(sysfs: Sysfs) -> list[IbDevice]:
    """Every RDMA device under ``class/infiniband``, in natural name order."""
    devices = []
    for name in sysfs.listdir("class", "infiniband"):
        base = ("class", "infiniband", name)
        if not sysfs.is_dir(*base):  # a loop or a stray file: not a device (is_dir keeps the problem)
            continue
        resolved = sysfs.resolve(*base, "device")
        netdevs = tuple(sysfs.listdir(*base, "device", "net"))
        ports = []
        for port_name in sysfs.listdir(*base, "ports"):
            pbase = (*base, "ports", port_name)
            if not (port_name.isascii() and port_name.isdigit()) or not sysfs.is_dir(*pbase):
                continue
            port = sysfs.parse(pbase, port_name, lambda t, w: parse_int(t, w, sign="positive", maximum=255))
            if port is None:
                continue
            rate_text = sysfs.read(*pbase, "rate")
            ports.append(
                IbPort(
                    device=name,
                    port=port,
                    state=_state(sysfs.read(*pbase, "state")),
                    phys_state=_state(sysfs.read(*pbase, "phys_state")),
                    rate_gbps=_rate(sysfs, (*pbase, "rate"), rate_text),
                    rate_text=rate_text,
                    link_layer=sysfs.read(*pbase, "link_layer") or "UNKNOWN",
                    netdev=_port_netdev(sysfs, name, port, netdevs),
                )
            )
        devices.append(
            IbDevice(
                name=name,
                ports=tuple(ports),
                pci_address=resolved.name if resolved and PCI_ADDRESS.match(resolved.name) else None,
                numa_node=_numa(sysfs, *base, "device"),
                pci_path=pci_chain(resolved),
                fw_ver=sysfs.read(*base, "fw_ver"),
                board_id=sysfs.read(*base, "board_id"),
                hca_type=sysfs.read(*base, "hca_type"),
                netdevs=netdevs,
            )
        )
    return devices


def ib_ports(sysfs: Sysfs) -> list[IbPort]:
    """Every port of every RDMA device, in device then port order."""
    return [port for device in ib_devices(sysfs) for port in device.ports]


# ---------------------------------------------------------------------------------------------------------
# Net devices


@dataclass(frozen=True)
class NetDevice:
    """A network interface under ``class/net``."""

    name: str
    operstate: str
    """``up``, ``down``, ``unknown`` (loopback says unknown), ``lowerlayerdown``..."""
    speed_mbps: int | None
    """None when the kernel does not know (down links, virtual devices say -1 or refuse)."""
    tx_bytes: int | None
    rx_bytes: int | None
    pci_address: str | None
    numa_node: int | None
    kind: str
    """``loopback``, ``infiniband`` (IPoIB), ``ether``, ``bond``, ``virtual``."""
    bond_slaves: tuple[str, ...]
    bond_master: str | None

    @property
    def speed_gbps(self) -> float | None:
        return self.speed_mbps / 1000 if self.speed_mbps else None


_ARPHRD = {772: "loopback", 32: "infiniband", 1: "ether"}


def net_devices(sysfs: Sysfs) -> list[NetDevice]:
    """Every interface under ``class/net``, in natural name order."""
    out = []
    for name in sysfs.listdir("class", "net"):
        base = ("class", "net", name)
        if not sysfs.is_dir(*base):  # class/net/bonding_masters is a file, not an interface
            continue
        resolved = sysfs.resolve(*base, "device")
        speed = sysfs.read_int(*base, "speed", sign="any", maximum=MAX_SPEED_MBPS)
        slaves = tuple((sysfs.read(*base, "bonding", "slaves") or "").split())
        master = sysfs.resolve(*base, "master")
        kind = _ARPHRD.get(sysfs.read_int(*base, "type", maximum=0xFFFF) or 0, "other")
        if sysfs.is_dir(*base, "bonding"):
            kind = "bond"
        elif kind == "ether" and resolved is None:
            kind = "virtual"
        out.append(
            NetDevice(
                name=name,
                operstate=sysfs.read(*base, "operstate") or "unknown",
                speed_mbps=speed if speed is not None and speed > 0 else None,
                tx_bytes=sysfs.read_int(*base, "statistics", "tx_bytes", maximum=U64_MAX),
                rx_bytes=sysfs.read_int(*base, "statistics", "rx_bytes", maximum=U64_MAX),
                pci_address=resolved.name if resolved and PCI_ADDRESS.match(resolved.name) else None,
                numa_node=_numa(sysfs, *base, "device") if resolved else None,
                kind=kind,
                bond_slaves=slaves,
                bond_master=master.name if master else None,
            )
        )
    return out


def ip_interface(devices: list[NetDevice]) -> str | None:
    """A best guess at the node's IP interface (for NCCL_SOCKET_IFNAME): the first interface that is up,
    is physical or a bond, is not a bond slave, and is not IPoIB, docker, a veth or loopback."""
    for dev in devices:
        if dev.operstate != "up" or dev.bond_master or dev.kind in ("loopback", "infiniband", "virtual", "other"):
            continue
        if dev.name.startswith(("docker", "veth", "virbr", "cali", "flannel", "cni")):
            continue
        return dev.name
    return None


# ---------------------------------------------------------------------------------------------------------
# PCI devices (GPUs without torch, and the versions of kernel modules)

NVIDIA_VENDOR = 0x10DE
_DISPLAY_CLASSES = (0x0300, 0x0302)  # VGA controller, 3D controller (every datacenter GPU)


@dataclass(frozen=True)
class PciDevice:
    address: str
    vendor: int
    device: int
    pci_class: int
    numa_node: int | None
    pci_path: tuple[str, ...]


def nvidia_gpus(sysfs: Sysfs) -> list[PciDevice]:
    """NVIDIA display/3D controllers on the PCI bus, in bus order: the GPUs a node has, whether or not CUDA works."""
    out = []
    # PCI bus order, as CUDA numbers GPUs under CUDA_DEVICE_ORDER=PCI_BUS_ID and as nvidia-smi lists them: the
    # address is fixed-width hex (dddd:bb:dd.f), so its text order is the bus order. The natural order of
    # listdir splits hex into digit runs and puts 0000:2a:00.0 before 0000:18:00.0.
    for address in sorted(sysfs.listdir("bus", "pci", "devices"), key=str.lower):
        base = ("bus", "pci", "devices", address)
        vendor = sysfs.read_int(*base, "vendor")
        pci_class = sysfs.read_int(*base, "class")
        if vendor != NVIDIA_VENDOR or pci_class is None or (pci_class >> 8) not in _DISPLAY_CLASSES:
            continue
        out.append(
            PciDevice(
                address=address,
                vendor=vendor,
                device=sysfs.read_int(*base, "device") or 0,
                pci_class=pci_class,
                numa_node=_numa(sysfs, *base),
                pci_path=pci_chain(sysfs.resolve(*base)),
            )
        )
    return out


def pci_device_path(sysfs: Sysfs, address: str) -> tuple[tuple[str, ...], int | None]:
    """The PCI chain and NUMA node of the device at ``address`` (e.g. from torch's pci_bus_id)."""
    base = ("bus", "pci", "devices", address.lower())
    return pci_chain(sysfs.resolve(*base)), _numa(sysfs, *base)


def nvidia_driver_version(sysfs: Sysfs) -> str | None:
    """The loaded NVIDIA kernel driver's version (``/sys/module/nvidia/version``)."""
    return sysfs.read("module", "nvidia", "version")
