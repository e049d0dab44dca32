"""The pieces of one ``NCCL_DEBUG=INFO`` line, found by string scans that are linear in the line's length.

An NCCL line is ``host:pid:tid [dev] [file.cc:NN ]NCCL LEVEL message``, after whatever a launcher or a paste
put in front (srun's ``0:``, mpirun's ``[1,0]<stdout>:``, a ``[date time]`` stamp). A regex searched for
that prefix anywhere in the line retries at every position (quadratic on a long line without ``:``); here
the line is cut at `` NCCL `` and the prefix is read backwards word by word. The items of ``NET/IB :
Using`` and ``NET/Socket : Using`` lists are read the same way, one whitespace-separated word at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bench.bounded import Where, ascii_digits, parse_int
from bench.textlines import strip_launcher_label

LEVELS = ("INFO", "WARN", "TRACE", "ABORT")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_BARE = re.compile(r"(?:^|[\s:\]])NCCL (?P<level>INFO|WARN)\b ?(?P<msg>.*)$")
_MAX_PID = 1 << 40
MAX_INDEX = 4096
"""More NICs than any node has; a larger ``[index]`` is damage."""


@dataclass(frozen=True)
class NcclLine:
    """One NCCL line: host ("" when the line has no prefix), pid, level and message."""

    host: str
    pid: int | None
    level: str
    message: str
    device: int | None = None
    """The CUDA device of the ``[dev]`` field (None when the line has no prefix)."""


def _prefix(head: str, source: str, line: int) -> tuple[str, int, int | None] | None:
    """(host, pid, dev) from the text before `` NCCL ``: ``... host:pid:tid [dev]`` or ``... [dev] file.cc:NN``."""
    words = head.rsplit(None, 3)
    if len(words) >= 2 and not words[-1].startswith("[") and ":" in words[-1]:
        src, _, src_line = words[-1].rpartition(":")
        if not src or not ascii_digits(src_line):
            return None
        words = words[:-1]  # the source location NCCL adds to WARN lines
    if len(words) < 2:
        return None
    dev = words[-1]
    if not (dev.startswith("[") and dev.endswith("]") and ascii_digits(dev[1:-1])):
        return None
    host_part, sep, tid = words[-2].rpartition(":")
    host_part, sep2, pid = host_part.rpartition(":")
    if not (sep and sep2 and ascii_digits(pid) and ascii_digits(tid)):
        return None
    if not host_part and len(words) >= 3:
        host_part = words[-3]  # ``NAME :70918:70918 [0]``: a host name redacted by hand kept its space
    start = len(host_part)
    while start > 0 and host_part[start - 1] in _HOST_CHARS:
        start -= 1
    host = host_part[start:].lstrip("._-")
    if not host:
        return None
    # The device only tells ranks of one process apart: one past any GPU count is kept as unknown, not refused.
    device = int(dev[1:-1]) if len(dev) <= 6 and int(dev[1:-1]) <= MAX_INDEX else None
    return host, parse_int(pid, Where(source, "pid", line), maximum=_MAX_PID), device


def split_line(raw: str, source: str = "log", line: int = 0) -> NcclLine | None:
    """The NCCL line in ``raw``, or None for any other line. InputError for a pid no process can have."""
    text = strip_launcher_label(raw)
    start = 0
    for _ in range(4):  # the prefix's " NCCL " comes first; a message may hold more
        at = text.find(" NCCL ", start)
        if at < 0:
            break
        level, _, message = text[at + 6 :].partition(" ")
        if level in LEVELS:
            found = _prefix(text[:at], source, line)
            if found is not None:
                return NcclLine(found[0], found[1], level, message.rstrip(), found[2])
        start = at + 1
    stripped = text.lstrip()
    if stripped.startswith("NCCL version "):
        return NcclLine("", None, "INFO", stripped.rstrip())
    bare = _BARE.search(text)
    if bare:
        return NcclLine("", None, bare["level"], bare["msg"].rstrip())
    return None


def index(text: str, source: str, line: int, field: str) -> int:
    """A NIC or list index (``[3]``, ``NET/IB/3``), bounded."""
    return parse_int(text, Where(source, field, line), maximum=MAX_INDEX)


def _ib_word(word: str) -> tuple[str, str, bool] | None:
    """(``name:port``, link layer, SHARP) of ``mlx5_1:1/IB/SHARP`` (a fused list's ``,`` or ``}`` after it)."""
    parts = word.rstrip(",}").split("/")
    if len(parts) < 2 or parts[1] not in ("IB", "RoCE"):
        return None
    name, _, port = parts[0].partition(":")
    port = port.partition(":")[0]
    if not name or not ascii_digits(port):
        return None
    return f"{name}:{port}", parts[1], "SHARP" in parts[2:]


def ib_items(rest: str, source: str, line: int) -> list[tuple[int, int, str, str, bool]]:
    """(net device, index, ``name:port``, link layer, SHARP) of each device of a NET/IB list.

    A plain entry is one word, ``[0]mlx5_1:1/IB/SHARP``. NCCL 2.20 - 2.23 fuse the ports of one NIC into one net
    device and print it as ``[0]={[0] mlx5_0:1/IB, [1] mlx5_1:1/IB}`` (``src/transport/net_ib.cc``
    ``ncclIbInit``, 2.20.3 commit b6475625 to 2.24.3 commit 6aae3792): each port is a device of the host, all of
    them behind the one net device a channel's ``via NET/IB/<n>`` names, which is the entry's position in the
    list (the ``[n]`` before a plain entry is the port's own index, which differs once a NIC is fused)."""
    out: list[tuple[int, int, str, str, bool]] = []
    net, port, fused = 0, None, False
    for word in rest.split():
        close = word.find("]")
        if word.startswith("[") and close >= 2 and ascii_digits(word[1:close]):
            number = index(word[1:close], source, line, "NET/IB Using index")
            tail = word[close + 1 :]
            if tail.startswith("={"):  # a fused net device opens: ``[0]={[0]``, its first port's index next
                fused, inner = True, tail[2:]
                port = _fused_index(inner, source, line)
                continue
            if fused and not tail:  # ``[1]`` alone, before a fused port's name
                port = number
                continue
            found = _ib_word(tail)
            if found is not None and not fused:
                out.append((net, number, *found))
                net += 1
            continue
        found = _ib_word(word) if fused else None
        if found is not None and port is not None:
            out.append((net, port, *found))
        if fused and word.endswith("}"):
            fused, port = False, None
            net += 1
    return out


def _fused_index(inner: str, source: str, line: int) -> int | None:
    """The port index of a fused device's opening word's ``[0]``."""
    close = inner.find("]")
    if inner.startswith("[") and close >= 2 and ascii_digits(inner[1:close]):
        return index(inner[1:close], source, line, "NET/IB Using index")
    return None


def socket_items(rest: str, source: str, line: int) -> list[tuple[int, str, str]]:
    """(index, interface, address) of each ``[0]ens3:172.31.0.110<0>`` word of a socket list."""
    out = []
    for word in rest.split():
        close = word.find("]")
        if not word.startswith("[") or close < 2 or not ascii_digits(word[1:close]):
            continue
        name, sep, address = word[close + 1 :].partition(":")
        angle = address.rfind("<")
        if not name or not sep or angle <= 0 or not word.endswith(">"):
            continue
        out.append((index(word[1:close], source, line, "NET/Socket Using index"), name, address[:angle]))
    return out


def oob(rest: str) -> str | None:
    """``if:addr`` of the ``OOB ens7:172.27.32.104<0>`` word."""
    at = rest.find("OOB ")
    if at < 0:
        return None
    word = rest[at + 4 :].split(None, 1)
    if not word:
        return None
    name, sep, address = word[0].partition(":")
    angle = address.rfind("<")
    return f"{name}:{address[:angle]}" if name and sep and angle > 0 else None


def channel_path(message: str) -> str | None:
    """The transport of an old ``Ring 00 : 3 -> 4 [send] via NET/IB/0/GDRDMA`` (or ``Tree``) line."""
    if not message.startswith(("Ring ", "Tree ")):
        return None
    _, via, after = message.rpartition(" via ")
    return after.split(None, 1)[0] if via and after.strip() else None


@dataclass(frozen=True)
class Fact:
    """One thing a host's NCCL said, and where: the file and line it came from."""

    kind: str
    """``nccl_version``, ``network``, ``plugin``, ``listed_device``, ``channel_device``, ``socket_fallback``."""
    value: str
    source: str | None
    line: int
    net: str | None = None
    """The net a device was listed by (``IB``, ``Socket``); for version facts, the host that printed it."""
    link_layer: str | None = None
    """``IB`` or ``RoCE`` for an IB device NCCL listed."""
    gdrdma: bool | None = None
    """For a NIC channels went through: whether any of them used GPUDirect RDMA."""


@dataclass(frozen=True)
class NcclNetDevice:
    """One entry of a ``NET/<net> : Using`` list."""

    index: int
    name: str
    """``mlx5_1:1`` for IB devices, the interface name (``ens3``) for sockets."""
    link_layer: str | None
    """``IB`` or ``RoCE`` for NET/IB; None for sockets."""
    sharp: bool = False
    address: str | None = None
    net: int | None = None
    """The net device it is behind, what a channel's ``via NET/<net>/<n>`` names (None: its position in the list;
    several ports of a fused NIC share one, ``ib_items``)."""


@dataclass(frozen=True)
class NetUsing:
    """A ``NET/<net> : Using ...`` line."""

    host: str
    pid: int | None
    net: str
    devices: tuple[NcclNetDevice, ...]
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


def _using_list(net: str) -> str:
    """Which ``NET/<x> : Using`` list a channel's net indexes: IB plugins (``IBext_v8``) print ``NET/IB``."""
    return "IB" if net.startswith("IB") else net


def resolve_channels(channels: list[Channel], usings: list[NetUsing]) -> list[Channel]:
    """Each NET channel with the device its ``via NET/<net>/<index>`` names: net device ``index`` of the ``Using``
    list of the same process (else of the same host), one channel per port of a fused device; None where that
    list is not in the log."""
    by_pid: dict[tuple[str, int | None, str], NetUsing] = {}
    by_host: dict[tuple[str, str], NetUsing] = {}
    for using in usings:
        by_pid.setdefault((using.host, using.pid, using.net), using)
        by_host.setdefault((using.host, using.net), using)
    out: list[Channel] = []
    for ch in channels:
        behind: list[str | None] = []
        if ch.nic_index is not None and ch.net is not None and ch.path.startswith("NET/"):
            net = _using_list(ch.net)
            found = by_pid.get((ch.host, ch.pid, net)) or by_host.get((ch.host, net))
            if found:
                behind = [
                    d.name for at, d in enumerate(found.devices) if (at if d.net is None else d.net) == ch.nic_index
                ]
        # A fused net device carries the channel over each of its ports: one resolved channel per port.
        out.extend(Channel(**{**ch.__dict__, "device": device}) for device in (behind or [None]))
    return out


def channel_facts(net_channels: list[Channel], source: str, most: int) -> list[Fact]:
    """One fact per NIC the channels went through (its first line), GDRDMA if any channel used it; at most
    ``most``."""
    first: dict[str, Fact] = {}
    for c in net_channels:
        name = c.device or f"NET/{c.net}/{c.nic_index}"
        seen = first.get(name)
        if seen is None:
            first[name] = Fact("channel_device", name, source, c.line, c.net, None, c.gdrdma)
        elif c.gdrdma and not seen.gdrdma:
            first[name] = replace(seen, gdrdma=True)
    return list(first.values())[:most]
