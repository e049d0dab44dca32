"""NCCL's own ``NCCL_DEBUG=INFO`` log as evidence of what it used, per host.

Lines look like ``gpu34:34088:34116 [0] NCCL INFO NET/IB : Using [0]mlx5_2:1/IB/SHARP ... [RO]; OOB ib0:...``.
The ``host:pid:tid [dev]`` prefix may be preceded by anything (srun's ``0:``, a ``[date time]`` stamp, paste
damage) and lines from many hosts and ranks interleave with other output, so every line is matched on its
own and keyed by host (and pid, because channel lines name a NIC by its index in *that process's* ``Using``
list: ``via NET/IB/3/GDRDMA`` is entry ``[3]``, ``NET/IBext_v8/5(2)/GDRDMA`` is entry 5 through proxy rank 2).
Lines without a prefix (``NCCL version 2.18.3+cuda12.2`` printed bare, or snippets pasted without it) are
kept under host ``""``; a bare version line is not given to any host (which host printed it is unknown).

Each host also keeps ``facts``: what NCCL said (version, network, plugin, devices listed and used, socket
fallback) with the file and line that said it, so every answer can be traced to a line of the log. Lines are
read one at a time through ``bench.textlines`` (lines over its limit are skipped with a note), the prefix and
the device lists by linear scans (``bench.nccllogs.nccl_lines``), and every number through ``bench.bounded``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from bench.bounded import Where, ascii_digits, parse_int
from bench.nccllogs import ib_completion, nccl_lines
from bench.nccllogs.ib_completion import AsyncEvent, Completion
from bench.nccllogs.nccl_hostnet import SOCKET_NETS, HostNet, NcclLog
from bench.nccllogs.nccl_init import InitWatch
from bench.nccllogs.nccl_lines import Channel, Fact, NcclNetDevice, NetUsing
from bench.textlines import MAX_LINE_CHARS, numbered_lines, open_text, text_lines

_VERSION = re.compile(r"^NCCL version (\S+)")
_IB_HCA = re.compile(r"^NCCL_IB_HCA set to (.*)$")
_NET_USING = re.compile(r"^NET/(?P<net>[\w-]+) ?: Using (?P<rest>.*)$")
_NO_DEVICE = re.compile(r"^NET/IB ?: No device found")
_IB_DISCOVERED = re.compile(r"^NET/IB ?: \[(\d+)\] ([^\s:]+):uverbs\d+:(\d+)/(IB|RoCE)")
_USING_NETWORK = "Using network "
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
_DMABUF = re.compile(r"^DMA-BUF is available on GPU device (\d{1,4})\b")

MAX_FACTS = 512
"""Facts kept per host: more than every device and channel transport of a node, so repeats cannot grow it."""
MAX_LOG_BYTES = 256 << 20
"""The most one NCCL_DEBUG=INFO log may hold: a rank's log is a few MB even with every subsystem on; past
this (a /proc file that streams, a wrong path) it is refused, not read without end."""


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
    error_peers: list[str] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    async_events: list[AsyncEvent] = field(default_factory=list)
    dmabuf_gpus: list[int] = field(default_factory=list)
    oob_addresses: list[str] = field(default_factory=list)
    roce_gid: bool = False
    driver: str | None = None
    gdr_off: Fact | None = None
    facts: dict[tuple[str, str, str | None], Fact] = field(default_factory=dict)
    socket_lines: list[Fact] = field(default_factory=list)
    """Lines that can show a socket fallback, first of each kind (``Using network Socket``, ``No device
    found``, ``NET/Socket : Using``)."""

    def fact(self, fact: Fact) -> None:
        key = (fact.kind, fact.value, fact.net)
        if key not in self.facts and len(self.facts) < MAX_FACTS:
            self.facts[key] = fact

    def socket_line(self, fact: Fact) -> None:
        if len(self.socket_lines) < 8 and all(f.value != fact.value for f in self.socket_lines):
            self.socket_lines.append(fact)


def _using(host: _Host, using: NetUsing) -> None:
    if using.oob:
        _add(host.oob_addresses, using.oob.partition(":")[2][:64])
    if using.net == "IB":
        _add(host.devices, *(d.name for d in using.devices))
        _add(host.layers, *(d.link_layer for d in using.devices if d.link_layer))
        host.sharp |= any(d.sharp for d in using.devices)
    elif using.net == "Socket":
        _add(host.sockets, *(d.name for d in using.devices))
    else:
        _add(host.others, *(f"{using.net}:{d.name}" for d in using.devices))


def _parse_using(host: str, pid: int | None, net: str, rest: str, where: tuple[str, int]) -> NetUsing:
    source, line = where
    if net == "IB":
        items = nccl_lines.ib_items(rest, source, line)
        devices = [NcclNetDevice(i, name, layer, sharp, net=net) for net, i, name, layer, sharp in items]
    else:
        devices = [
            NcclNetDevice(i, name, None, address=a) for i, name, a in nccl_lines.socket_items(rest, source, line)
        ]
    return NetUsing(host, pid, net, tuple(devices), "[RO]" in rest, nccl_lines.oob(rest), line)


def _channel(host: str, pid: int | None, path: str, where: tuple[str, int]) -> Channel:
    net_path = _NET_PATH.match(path)
    source, line = where
    if net_path:
        flags = net_path["flags"].split("/")
        proxy = net_path["proxy"]
        return Channel(
            host,
            pid,
            path,
            net_path["net"],
            nccl_lines.index(net_path["index"], source, line, "channel NIC index"),
            nccl_lines.index(proxy, source, line, "channel proxy rank") if proxy else None,
            "GDRDMA" in flags,
            None,
            line,
        )
    return Channel(host, pid, path, None, None, None, "GDRDMA" in path.split("/"), None, line)


def _message(host: _Host, msg: str, found: list[NetUsing], where: tuple[str, int], pid: int | None) -> Channel | None:
    """Take in one INFO message; a ``NET/x : Using`` line goes to ``found``, a channel line is returned.

    The kinds of line are tried in one order, the first that matches taking the line: what NCCL set up, then
    the channels, then the plugins and the rest."""
    if _setup_message(host, msg, found, where, pid):
        return None
    if m := _CHANNEL.match(msg):
        return _channel(host.host, pid, m.group(8), where)
    if m := _COLLNET.match(msg):
        return _channel(host.host, pid, m.group(5), where)
    if path := nccl_lines.channel_path(msg):
        return _channel(host.host, pid, path, where)
    _plugin_message(host, msg, where)
    return None


def _setup_message(host: _Host, msg: str, found: list[NetUsing], where: tuple[str, int], pid: int | None) -> bool:
    """A line of what NCCL set up (its version, devices and networks) taken in; False for any other line."""
    source, number = where
    if m := _VERSION.match(msg):
        host.version = host.version or m.group(1)
        host.fact(Fact("nccl_version", m.group(1), source, number))
    elif m := _IB_HCA.match(msg):
        _add(host.ib_hca, m.group(1)[:200])
    elif _NO_DEVICE.match(msg):
        host.no_device = True
        host.socket_line(Fact("socket_fallback", msg[:200], source, number))
    elif m := _IB_DISCOVERED.match(msg):
        _add(host.devices, f"{m.group(2)}:{m.group(3)}")
        _add(host.layers, m.group(4))
        host.fact(Fact("listed_device", f"{m.group(2)}:{m.group(3)}", source, number, "IB", m.group(4)))
    elif m := _NET_USING.match(msg):
        using = _parse_using(host.host, pid, m["net"], m["rest"], where)
        found.append(using)
        _net_using(host, using, msg, where)
    elif msg.startswith(_USING_NETWORK):
        network = msg[len(_USING_NETWORK) :].strip()[:80]  # "AWS Libfabric": a name may hold a space
        _add(host.networks, network)
        host.fact(Fact("network", network, source, number))
        if network in SOCKET_NETS:
            host.socket_line(Fact("socket_fallback", msg[:200], source, number, network))
    else:
        return False
    return True


def _net_using(host: _Host, using: NetUsing, msg: str, where: tuple[str, int]) -> None:
    """A ``NET/x : Using`` line's devices taken in; on a socket network, the line that says NCCL fell back."""
    source, number = where
    _using(host, using)
    for d in using.devices:
        host.fact(Fact("listed_device", d.name, source, number, using.net, d.link_layer))
    if using.net in SOCKET_NETS and using.devices:
        host.socket_line(Fact("socket_fallback", msg[:200], source, number, using.net))


def _plugin_message(host: _Host, msg: str, where: tuple[str, int]) -> None:
    """A line of the net plugins, the driver or GPUDirect RDMA taken in; any other line is ignored."""
    source, number = where
    if m := _PLUGIN_LOADED.match(msg):
        plugin = next(g for g in m.groups() if g)[:200]
        _add(host.plugins, plugin)
        host.fact(Fact("plugin", plugin, source, number))
    elif _PLUGIN_MISSING.match(msg):
        host.plugin_missing = True
    elif _PLUGIN_FAILED.match(msg):
        host.plugin_failed = True
    elif m := _NET_INITIALIZED.match(msg):
        name = m.group(1)[:200]
        _add(host.networks if name in ("IB", "Socket") else host.plugins, name)
        host.fact(Fact("network" if name in ("IB", "Socket") else "plugin", name, source, number))
    elif m := _DRIVER.match(msg):
        host.driver = m.group(1)[:20]
    elif (m := _DMABUF.match(msg)) and int(m.group(1)) not in host.dmabuf_gpus:
        host.dmabuf_gpus.append(int(m.group(1)))
    elif host.gdr_off is None and _gdr_off(msg):
        host.gdr_off = Fact("gdr_off", msg[:200], source, number)


def _gdr_off(msg: str) -> bool:
    """Whether NCCL says GPUDirect RDMA is off (see ``HostNet.gdr_off``)."""
    if msg.startswith("Connected all rings"):
        return msg.rstrip().endswith(" GDR 0")
    return "GPU Direct RDMA Disabled" in msg


def _warning(host: _Host, msg: str) -> None:
    """A WARN line: kept (the first 100), with the HCAs its errors name, its completion error
    (``bench.nccllogs.ib_completion``: the peer where the status points at it), and whether it matches
    ``_ROCE_GID``."""
    if len(host.warnings) < 100:
        _add(host.warnings, msg[:300])
    _add(host.error_hcas, *(m.group(1)[:64] for m in _ERROR_HCA.finditer(msg)))
    found = ib_completion.completion(msg)
    if found is not None:
        if found not in host.completions and len(host.completions) < 256:
            host.completions.append(found)
        if found.points_at == "peer":
            _add(host.error_peers, found.peer)
    event = ib_completion.async_event(msg)
    if event is not None and event not in host.async_events and len(host.async_events) < 256:
        host.async_events.append(event)
        _add(host.error_hcas, *([event.hca] if event.hca and event.fault else []))
    host.roce_gid |= bool(_ROCE_GID.search(msg))


def _rank_seen(host: _Host, msg: str, label: str, number: int) -> None:
    """The rank a line names, added to its host's (at most 4096 of them)."""
    if m := _RANK.search(msg):
        rank = parse_int(m.group(1), Where(label, "rank", number), maximum=1 << 24)
        if rank not in host.ranks and len(host.ranks) < 4096:
            host.ranks.append(rank)


def parse_lines(lines: Iterable[str] | Iterable[tuple[int, str | None]], source: str | None = None) -> NcclLog:
    """Parse NCCL_DEBUG=INFO output given as lines, or as ``bench.textlines`` (number, line) pairs.

    Any other lines are ignored; lines over the length limit are skipped with a note. InputError (exit 2)
    for a number no real log holds (a 5,000-digit pid or ``[index]``), naming the file and line.
    """
    hosts: dict[str, _Host] = {}
    usings: dict[tuple[str, int | None, str, tuple[NcclNetDevice, ...]], NetUsing] = {}
    channels: dict[tuple[str, int | None, str], Channel] = {}
    versions: dict[tuple[str, str], Fact] = {}
    notes: list[str] = []
    nccl_count = 0
    label = source or "log"
    watch = InitWatch(source)
    for number, raw in _numbered(lines):
        if raw is None or len(raw) > MAX_LINE_CHARS:
            if len(notes) < 50:
                notes.append(f"line {number}: longer than {MAX_LINE_CHARS} characters, skipped")
            continue
        split = nccl_lines.split_line(raw.rstrip("\r\n"), label, number)
        if split is None:
            continue
        nccl_count += 1
        host = hosts.get(split.host) or hosts.setdefault(split.host, _Host(split.host))
        msg = split.message
        watch.feed(split, number)
        if split.level == "WARN":
            _warning(host, msg)
            continue
        found: list[NetUsing] = []
        channel = _message(host, msg, found, (label, number), split.pid)
        for using in found:
            usings.setdefault((using.host, using.pid, using.net, using.devices), using)
        if channel is not None:
            channels.setdefault((channel.host, channel.pid, channel.path), channel)
        if msg.startswith("NCCL version ") and (v := _VERSION.match(msg)):
            versions.setdefault((split.host, v.group(1)), Fact("nccl_version", v.group(1), label, number, split.host))
        _rank_seen(host, msg, label, number)
    resolved = nccl_lines.resolve_channels(list(channels.values()), list(usings.values()))
    return NcclLog(
        source,
        _freeze(hosts, resolved, label, watch),
        tuple(usings.values()),
        tuple(resolved),
        nccl_count,
        tuple(notes),
        tuple(versions.values()),
    )


def _numbered(lines: Iterable[str] | Iterable[tuple[int, str | None]]) -> Iterator[tuple[int, str | None]]:
    for number, item in enumerate(lines, start=1):
        yield item if isinstance(item, tuple) else (number, item)


def _before_2_5(version: str | None) -> bool:
    """NCCL 2.4 and older print ``NET/Socket : Using`` for the bootstrap interface on every rank."""
    major, _, rest = (version or "").partition(".")
    minor = rest.partition(".")[0]
    return major == "2" and ascii_digits(minor) and len(minor) <= 3 and int(minor) < 5


def _socket_reason(h: _Host, ib_anywhere: bool, old_nccl: bool, socket_channels: bool) -> Fact | None:
    """The line that shows this host fell back to sockets, or None.

    ``Using network Socket`` and ``NET/IB : No device found`` say so. ``NET/Socket : Using`` alone says so
    only where NCCL prints it for the data network: not on NCCL before 2.5 (the bootstrap interface) and
    not when the log shows IB carrying data.
    """
    for fact in h.socket_lines:
        if fact.net is None or (fact.net in SOCKET_NETS and fact.value.startswith(_USING_NETWORK)):
            return fact  # No device found, or Using network Socket
    listed = [f for f in h.socket_lines if f.net in SOCKET_NETS]
    if listed and (socket_channels or not (old_nccl or ib_anywhere or h.layers)):
        return listed[0]
    return None


def _freeze(hosts: dict[str, _Host], channels: list[Channel], source: str, watch: InitWatch) -> Mapping[str, HostNet]:
    ib_anywhere = any(h.layers for h in hosts.values()) or any(
        c.net is not None and c.net.startswith("IB") for c in channels
    )
    old_nccl = any(_before_2_5(h.version) for h in hosts.values())
    out: dict[str, HostNet] = {}
    for name, h in hosts.items():
        mine = [c for c in channels if c.host == name]
        net_channels = [c for c in mine if c.path.startswith("NET/")]
        devices = [c.device for c in net_channels if c.device]
        unresolved = [f"{c.net}/{c.nic_index}" for c in net_channels if c.device is None]
        intra = [c.path for c in mine if c.path.startswith(("P2P", "SHM"))]
        socket_channels = any(c.net in SOCKET_NETS for c in net_channels)
        out[name] = HostNet(
            host=name,
            nccl_version=h.version,
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
            error_peers=tuple(h.error_peers),
            completions=tuple(h.completions),
            async_events=tuple(h.async_events),
            dmabuf_gpus=tuple(sorted(h.dmabuf_gpus)),
            oob_addresses=tuple(h.oob_addresses),
            roce_gid=h.roce_gid,
            cuda_driver=h.driver,
            gdr_off=h.gdr_off,
            socket_reason=_socket_reason(h, ib_anywhere, old_nccl, socket_channels),
            facts=(*h.facts.values(), *nccl_lines.channel_facts(net_channels, source, MAX_FACTS)),
            init_failures=watch.failures(name),
            nccl_ranks=watch.ranks(name),
        )
    return MappingProxyType(out)


def parse_text(text: str, source: str | None = None) -> NcclLog:
    """Parse NCCL_DEBUG=INFO output held in a string."""
    return parse_lines(text_lines(text), source)


def parse_file(path: Path | str) -> NcclLog:
    """Parse a log file line by line (undecodable bytes are replaced, never fatal); UserError when it cannot
    be read."""
    path = Path(path)
    with open_text(path, MAX_LOG_BYTES) as handle:
        return parse_lines(numbered_lines(handle), str(path))
