"""NCCL's own ``NCCL_DEBUG=INFO`` log as evidence of what it used, per host.

Lines look like ``gpu34:34088:34116 [0] NCCL INFO NET/IB : Using [0]mlx5_2:1/IB/SHARP ... [RO]; OOB ib0:...``.
The ``host:pid:tid [dev]`` prefix may be preceded by anything (srun's ``0:``, a ``[date time]`` stamp, paste
damage) and lines from many hosts and ranks interleave with other output, so every line is matched on its
own and keyed by host (and pid, because channel lines name a NIC by its index in *that process's* ``Using``
list: ``via NET/IB/3/GDRDMA`` is entry ``[3]``, ``NET/IBext_v8/5(2)/GDRDMA`` is entry 5 through proxy rank 2).
Lines without a prefix (``NCCL version 2.18.3+cuda12.2`` printed bare, or snippets pasted without it) are
kept under host ``""``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

_PREFIX = re.compile(
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<pid>\d+):(?P<tid>\d+) \[(?P<dev>\d+)\] "
    r"(?:(?P<src>\S+:\d+) )?NCCL (?P<level>INFO|WARN|TRACE|ABORT)\b ?(?P<msg>.*)$"
)
_BARE = re.compile(r"(?:^|[\s:\]])NCCL (?P<level>INFO|WARN)\b ?(?P<msg>.*)$")
_BARE_VERSION = re.compile(r"^(?:\s*\d+:)?\s*NCCL version (?P<version>\S+)")

_VERSION = re.compile(r"^NCCL version (\S+)")
_IB_HCA = re.compile(r"^NCCL_IB_HCA set to (.*)$")
_NET_USING = re.compile(r"^NET/(?P<net>[\w-]+) ?: Using (?P<rest>.*)$")
_NO_DEVICE = re.compile(r"^NET/IB ?: No device found")
_IB_DISCOVERED = re.compile(r"^NET/IB ?: \[(\d+)\] ([^\s:]+):uverbs\d+:(\d+)/(IB|RoCE)")
_USING_NETWORK = re.compile(r"^Using network (\S+)")
_IB_ITEM = re.compile(r"\[(\d+)\]([^\s\[\]/]+?):(\d+)(?::-?\d+)*/(IB|RoCE)((?:/[A-Za-z]+)*)")
_SOCKET_ITEM = re.compile(r"\[(\d+)\]([^\s:\[\]]+):(\S+?)<\d+>")
_OOB = re.compile(r"OOB ([^\s:]+):(\S+?)<\d+>")
_CHANNEL = re.compile(r"^Channel (\d+)/(\d+) : (\d+)\[(\d+)\] -> (\d+)\[(\d+)\](?: \[(send|receive)\])? via (\S+)")
_COLLNET = re.compile(r"^CollNet (\d+)/(\d+) : (\d+) \[(send|receive)\] via (\S+)")
_NET_PATH = re.compile(r"^NET/(?P<net>[^/]+)/(?P<index>\d+)(?:\((?P<proxy>\d+)\))?(?P<flags>(?:/\w+)*)")
_RANK = re.compile(r"\bcomm 0x[0-9a-fA-F]+ rank (\d+) n[Rr]anks (\d+)")
_DRIVER = re.compile(r"^cudaDriverVersion (\d+)")
_PLUGIN_LOADED = re.compile(
    r"^(?:NET/Plugin ?: Loaded net plugin (?P<a>.+?)(?: \(v\d+\))?$|Successfully loaded external plugin (?P<b>\S+)"
    r"|Plugin Path : (?P<c>\S+)|P2P plugin (?:v\d+ )?(?P<d>\S+))"
)
_PLUGIN_MISSING = re.compile(r"^NET/Plugin ?: (?:No plugin found|Plugin load .* returned|Could not find: libnccl-net)")
_PLUGIN_FAILED = re.compile(r"^plugin/net\.cc:\d+ -> \d+")
_NET_INITIALIZED = re.compile(r"^(?:Initialized NET plugin|Assigned NET plugin) (.+?)(?: to comm)?$")
_ERROR_HCA = re.compile(r"\bhca (\S+)")
_ROCE_GID = re.compile(r"\blocalGid ::ffff:")

SOCKET_NETS = ("Socket", "FastSocket")


@dataclass(frozen=True)
class NetDevice:
    """One entry of a ``NET/<net> : Using`` list."""

    index: int
    name: str
    """``mlx5_1:1`` for IB devices, the interface name (``ens3``) for sockets."""
    link_layer: str | None
    """``IB`` or ``RoCE`` for NET/IB; None for sockets."""
    sharp: bool = False
    address: str | None = None


@dataclass(frozen=True)
class NetUsing:
    """A ``NET/<net> : Using ...`` line."""

    host: str
    pid: int | None
    net: str
    devices: tuple[NetDevice, ...]
    relaxed_ordering: bool
    oob: str | None
    """``if:addr`` of the out-of-band (bootstrap) interface."""
    line: int


@dataclass(frozen=True)
class Channel:
    """A ``Channel``/``CollNet`` connection line and the transport it goes through."""

    host: str
    pid: int | None
    path: str
    """As logged: ``NET/IB/3/GDRDMA``, ``NET/IBext_v8/5(2)/GDRDMA``, ``P2P/CUMEM/read``, ``COLLNET/SHARP/0``."""
    net: str | None
    nic_index: int | None
    proxy_rank: int | None
    gdrdma: bool
    device: str | None
    """The NIC, resolved through the process's ``Using`` list; None when that list is not in the log."""
    line: int


@dataclass(frozen=True)
class HostNet:
    """What one host's NCCL said about its network."""

    host: str
    nccl_version: str | None = None
    nccl_ib_hca: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    """``Using network X`` values (``IB``, ``IBext_v8``, ``Socket``)."""
    devices: tuple[str, ...] = ()
    """IB ports NCCL opened (``NET/IB : Using`` lists and per-device discovery lines)."""
    link_layers: tuple[str, ...] = ()
    socket_devices: tuple[str, ...] = ()
    other_devices: tuple[str, ...] = ()
    """Devices of other nets (``NET/FastSocket : Using``), as ``net:name``."""
    ib_no_device: bool = False
    channel_devices: tuple[str, ...] = ()
    """IB ports that channels go through (resolved ``via NET/...`` indexes)."""
    channel_nics: tuple[str, ...] = ()
    """``net/index`` of NET channels whose ``Using`` list is not in the log."""
    gdrdma: bool | None = None
    """Whether NET channels use GPUDirect RDMA; None when the log has no NET channel."""
    intra_node: tuple[str, ...] = ()
    """Intra-node transports seen (``P2P/CUMEM/read``, ``P2P/IPC``, ``SHM``)."""
    sharp: bool = False
    plugins: tuple[str, ...] = ()
    """External net plugins that loaded."""
    plugin_missing: bool = False
    plugin_failed: bool = False
    ranks: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()
    """NCCL WARN messages."""
    error_hcas: tuple[str, ...] = ()
    """HCAs named in completion errors (``... hca mlx5_1``)."""
    roce_gid: bool = False
    cuda_driver: str | None = None

    @property
    def transport(self) -> str | None:
        """``IB``, ``RoCE``, ``IB+RoCE``, ``Socket``, another net's name, or None when the log does not say."""
        nets = set(self.networks)
        if nets and nets <= set(SOCKET_NETS):
            return "Socket"
        layers = set(self.link_layers)
        if layers == {"IB", "RoCE"}:
            return "IB+RoCE"
        if layers:
            return layers.pop()
        if self.roce_gid:
            return "RoCE"
        if self.socket_devices or self.ib_no_device:
            return "Socket"  # NCCL falls back to sockets when IB finds no device
        if nets and not any(n.startswith("IB") for n in nets):
            return sorted(nets)[0]
        return None

    @property
    def plugin_fallback(self) -> bool:
        """An external net plugin loaded but NCCL ended up on its internal transport."""
        return bool(self.plugins) and self.plugin_failed

    @property
    def has_network_evidence(self) -> bool:
        return bool(
            self.devices
            or self.socket_devices
            or self.other_devices
            or self.networks
            or self.ib_no_device
            or self.channel_devices
            or self.channel_nics
            or self.error_hcas
        )


@dataclass(frozen=True)
class NcclLog:
    """A parsed NCCL_DEBUG=INFO log."""

    source: str | None
    hosts: Mapping[str, HostNet]
    usings: tuple[NetUsing, ...]
    channels: tuple[Channel, ...]
    nccl_lines: int
    """How many lines were NCCL lines (with or without a prefix)."""

    @property
    def versions(self) -> tuple[str, ...]:
        """Every NCCL version the log names (``2.23.4+cuda12.4``)."""
        return tuple(dict.fromkeys(h.nccl_version for h in self.hosts.values() if h.nccl_version))


def _add(items: list[str], *new: str) -> None:
    for item in new:
        if item not in items:
            items.append(item)


@dataclass
class _Host:
    """Mutable accumulator for one host while reading."""

    host: str
    version: str | None = None
    ib_hca: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    no_device: bool = False
    intra: list[str] = field(default_factory=list)
    sharp: bool = False
    plugins: list[str] = field(default_factory=list)
    plugin_missing: bool = False
    plugin_failed: bool = False
    ranks: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error_hcas: list[str] = field(default_factory=list)
    roce_gid: bool = False
    driver: str | None = None


def _split_line(raw: str) -> tuple[str, int | None, str, str] | None:
    """(host, pid, level, message) of an NCCL line, or None for any other line."""
    match = _PREFIX.search(raw)
    if match:
        return match["host"], int(match["pid"]), match["level"], match["msg"].rstrip()
    version = _BARE_VERSION.match(raw)
    if version:
        return "", None, "INFO", f"NCCL version {version['version']}"
    bare = _BARE.search(raw)
    if bare:
        return "", None, bare["level"], bare["msg"].rstrip()
    return None


def _using(host: _Host, using: NetUsing) -> None:
    if using.net == "IB":
        _add(host.devices, *(d.name for d in using.devices))
        _add(host.layers, *(d.link_layer for d in using.devices if d.link_layer))
        host.sharp |= any(d.sharp for d in using.devices)
    elif using.net == "Socket":
        _add(host.sockets, *(d.name for d in using.devices))
    else:
        _add(host.others, *(f"{using.net}:{d.name}" for d in using.devices))


def _parse_using(host: str, pid: int | None, net: str, rest: str, line: int) -> NetUsing:
    devices: list[NetDevice] = []
    if net == "IB":
        for m in _IB_ITEM.finditer(rest):
            flags = m.group(5).split("/")
            devices.append(NetDevice(int(m.group(1)), f"{m.group(2)}:{m.group(3)}", m.group(4), "SHARP" in flags))
    else:
        for m in _SOCKET_ITEM.finditer(rest):
            devices.append(NetDevice(int(m.group(1)), m.group(2), None, address=m.group(3)))
    oob = _OOB.search(rest)
    return NetUsing(
        host,
        pid,
        net,
        tuple(devices),
        "[RO]" in rest,
        f"{oob.group(1)}:{oob.group(2)}" if oob else None,
        line,
    )


def _channel(host: str, pid: int | None, path: str, line: int) -> Channel:
    net_path = _NET_PATH.match(path)
    if net_path:
        flags = net_path["flags"].split("/")
        return Channel(
            host,
            pid,
            path,
            net_path["net"],
            int(net_path["index"]),
            int(net_path["proxy"]) if net_path["proxy"] else None,
            "GDRDMA" in flags,
            None,
            line,
        )
    return Channel(host, pid, path, None, None, None, "GDRDMA" in path.split("/"), None, line)


def parse_lines(lines: Iterable[str], source: str | None = None) -> NcclLog:
    """Parse NCCL_DEBUG=INFO output given as lines (any other lines are ignored)."""
    hosts: dict[str, _Host] = {}
    usings: list[NetUsing] = []
    channels: list[Channel] = []
    nccl_lines = 0
    for number, raw in enumerate(lines, start=1):
        split = _split_line(raw.rstrip("\r\n"))
        if split is None:
            continue
        nccl_lines += 1
        name, pid, level, msg = split
        host = hosts.setdefault(name, _Host(name))
        if level == "WARN":
            _add(host.warnings, msg)
            _add(host.error_hcas, *(m.group(1) for m in _ERROR_HCA.finditer(msg)))
            host.roce_gid |= bool(_ROCE_GID.search(msg))
            continue
        if m := _VERSION.match(msg):
            host.version = host.version or m.group(1)
        elif m := _IB_HCA.match(msg):
            _add(host.ib_hca, m.group(1))
        elif _NO_DEVICE.match(msg):
            host.no_device = True
        elif m := _IB_DISCOVERED.match(msg):
            _add(host.devices, f"{m.group(2)}:{m.group(3)}")
            _add(host.layers, m.group(4))
        elif m := _NET_USING.match(msg):
            using = _parse_using(name, pid, m["net"], m["rest"], number)
            usings.append(using)
            _using(host, using)
        elif m := _USING_NETWORK.match(msg):
            _add(host.networks, m.group(1))
        elif m := _CHANNEL.match(msg):
            channels.append(_channel(name, pid, m.group(8), number))
        elif m := _COLLNET.match(msg):
            channels.append(_channel(name, pid, m.group(5), number))
        elif m := _PLUGIN_LOADED.match(msg):
            plugin = next(g for g in m.groups() if g)
            _add(host.plugins, plugin)
        elif _PLUGIN_MISSING.match(msg):
            host.plugin_missing = True
        elif _PLUGIN_FAILED.match(msg):
            host.plugin_failed = True
        elif m := _NET_INITIALIZED.match(msg):
            _add(host.networks if m.group(1) in ("IB", "Socket") else host.plugins, m.group(1))
        elif m := _DRIVER.match(msg):
            host.driver = m.group(1)
        if m := _RANK.search(msg):
            rank = int(m.group(1))
            if rank not in host.ranks:
                host.ranks.append(rank)
    resolved = _resolve_channels(channels, usings)
    return NcclLog(source, _freeze(hosts, resolved), tuple(usings), tuple(resolved), nccl_lines)


def _using_list(net: str) -> str:
    """Which ``NET/<x> : Using`` list a channel's net indexes: IB plugins (``IBext_v8``) print ``NET/IB``."""
    return "IB" if net.startswith("IB") else net


def _resolve_channels(channels: list[Channel], usings: list[NetUsing]) -> list[Channel]:
    by_pid: dict[tuple[str, int | None, str], NetUsing] = {}
    by_host: dict[tuple[str, str], NetUsing] = {}
    for using in usings:
        by_pid.setdefault((using.host, using.pid, using.net), using)
        by_host.setdefault((using.host, using.net), using)
    out = []
    for ch in channels:
        device = None
        if ch.nic_index is not None and ch.net is not None and ch.path.startswith("NET/"):
            net = _using_list(ch.net)
            using = by_pid.get((ch.host, ch.pid, net)) or by_host.get((ch.host, net))
            if using and ch.nic_index < len(using.devices):
                device = using.devices[ch.nic_index].name
        out.append(Channel(**{**ch.__dict__, "device": device}))
    return out


def _freeze(hosts: dict[str, _Host], channels: list[Channel]) -> Mapping[str, HostNet]:
    bare_version = hosts[""].version if "" in hosts else None
    out: dict[str, HostNet] = {}
    for name, h in hosts.items():
        mine = [c for c in channels if c.host == name]
        net_channels = [c for c in mine if c.path.startswith("NET/")]
        devices = [c.device for c in net_channels if c.device]
        unresolved = [f"{c.net}/{c.nic_index}" for c in net_channels if c.device is None]
        intra = [c.path for c in mine if c.path.startswith(("P2P", "SHM"))]
        out[name] = HostNet(
            host=name,
            nccl_version=h.version or bare_version,
            nccl_ib_hca=tuple(h.ib_hca),
            networks=tuple(h.networks),
            devices=tuple(h.devices),
            link_layers=tuple(h.layers),
            socket_devices=tuple(h.sockets),
            other_devices=tuple(h.others),
            ib_no_device=h.no_device,
            channel_devices=tuple(dict.fromkeys(devices)),
            channel_nics=tuple(dict.fromkeys(unresolved)),
            gdrdma=any(c.gdrdma for c in net_channels) if net_channels else None,
            intra_node=tuple(dict.fromkeys(intra)),
            sharp=h.sharp or any(c.path.startswith("COLLNET/SHARP") for c in mine),
            plugins=tuple(h.plugins),
            plugin_missing=h.plugin_missing,
            plugin_failed=h.plugin_failed,
            ranks=tuple(sorted(h.ranks)),
            warnings=tuple(h.warnings),
            error_hcas=tuple(h.error_hcas),
            roce_gid=h.roce_gid,
            cuda_driver=h.driver,
        )
    return MappingProxyType(out)


def parse_text(text: str, source: str | None = None) -> NcclLog:
    """Parse NCCL_DEBUG=INFO output held in a string."""
    return parse_lines(text.splitlines(), source)


def parse_file(path: Path | str) -> NcclLog:
    """Parse a log file (undecodable bytes are replaced, never fatal)."""
    path = Path(path)
    return parse_text(path.read_text(encoding="utf-8", errors="replace"), str(path))
