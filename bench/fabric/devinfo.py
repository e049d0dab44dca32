"""Active MTUs of RDMA ports: ``ibv_devinfo`` for InfiniBand, the interface's MTU for RoCE.

An InfiniBand port's active MTU (the path MTU the subnet manager's partition allows, 256 to 4096 bytes) is
not in sysfs; ``ibv_devinfo`` (rdma-core) prints it per port::

    hca_id: mlx5_1
            ...
                    port:   1
                            state:                  PORT_ACTIVE (4)
                            max_mtu:                4096 (5)
                            active_mtu:             4096 (5)

A RoCE port's MTU follows its Ethernet interface: the kernel takes the largest InfiniBand MTU that fits in
the interface's MTU less the RoCE headers (``include/rdma/ib_addr.h`` ``iboe_get_mtu``: GRH 40, UDP 8, BTH 12,
XRC 4, AtomicETH 28 and ICRC 4 bytes, 96 in all), so 4096 needs an interface MTU of 4192 or more.

Lines are split with string methods; ``ibv_devinfo`` runs with a timeout and its output is capped.

Captured output (``--ibv-devinfo FILE``: ``ibv_devinfo`` or ``ibv_devinfo -v``, of a node whose ``/sys`` was
copied) is read the same way, its format told by its content anywhere in the file, never its name: an
``hca_id:`` line and a ``port:`` line under it. Other tools' output is refused in one line naming the tool
(``ibstat``'s ``CA '...'``, ``ibstatus``'s ``Infiniband device '...'``, ``ibv_devices``' table). What real
output carries, and what is read (``ports``): each port's state, link layer and active MTU as printed. Some
builds print no ``link_layer:`` line (ibv_devinfo of 2009; a Soft-RoCE ``rxe0`` of 2016, an Ethernet port), so
a port without one has no link layer read (None), never a guessed one; the check takes a port's link layer
from sysfs anyway. ``-v`` adds fields between the port lines, ``Device ports:`` may head them, a prompt line may
precede the output; none of it is needed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import toolrun
from bench.bounded import ascii_digits
from bench.exits import UserError
from bench.fabric import other_tools
from bench.textlines import numbered_lines, open_text

IB_MTUS = (4096, 2048, 1024, 512, 256)
ROCE_OVERHEAD = 40 + 8 + 12 + 4 + 28 + 4
"""Bytes ``iboe_get_mtu`` takes off the interface MTU before choosing an InfiniBand MTU."""
TIMEOUT_S = 15.0
MAX_OUTPUT_BYTES = 4 << 20


def roce_mtu(interface_mtu: int) -> int | None:
    """The RoCE MTU the kernel uses over an interface of ``interface_mtu`` bytes; None below the smallest."""
    room = interface_mtu - ROCE_OVERHEAD
    return next((mtu for mtu in IB_MTUS if mtu <= room), None)


@dataclass
class DevinfoPort:
    """One port as ``ibv_devinfo`` prints it."""

    hca: str
    port: int
    state: str | None = None
    """``PORT_ACTIVE``, ``PORT_DOWN``, ...: the word before the number in parentheses."""
    link_layer: str | None = None
    active_mtu: int | None = None

    @property
    def name(self) -> str:
        return f"{self.hca}:{self.port}"


def ports(lines: Iterable[str]) -> list[DevinfoPort]:
    """Every port ``ibv_devinfo`` output lists, in order (see the module docstring for what real output holds)."""
    out: list[DevinfoPort] = []
    hca: str | None = None
    current: DevinfoPort | None = None
    for raw in lines:
        key, colon, value = raw.strip().partition(":")
        if not colon:
            continue
        value = value.strip()
        word = value.split()[0] if value else ""
        if key == "hca_id":
            hca, current = (word[:64] or None), None
        elif key == "port" and hca and ascii_digits(value) and len(value) <= 3:
            current = DevinfoPort(hca, int(value))
            out.append(current)
        elif current is not None and key == "state":
            current.state = word[:32] or None
        elif current is not None and key == "link_layer":
            current.link_layer = word[:32] or None
        elif current is not None and key == "active_mtu" and ascii_digits(word) and int(word[:6]) in IB_MTUS:
            current.active_mtu = int(word)
    return out


def active_mtus(lines: Iterable[str]) -> dict[str, int]:
    """``mlx5_1:1`` -> active MTU in bytes, for every port ``ibv_devinfo`` output lists."""
    return {p.name: p.active_mtu for p in ports(lines) if p.active_mtu is not None}


FILE_FIX = "give ibv_devinfo's output ('ibv_devinfo > devinfo.txt' or 'ibv_devinfo -v', on the node)"


def read_file(path: Path) -> list[DevinfoPort]:
    """The ports of captured ``ibv_devinfo`` output; UserError (one line) when the file is another tool's output
    or holds no port."""
    with open_text(path, MAX_OUTPUT_BYTES, FILE_FIX) as stream:
        lines = [line for _, line in numbered_lines(stream) if line is not None]
    found = ports(lines)
    if found and any(line.lstrip().startswith("hca_id:") for line in lines):
        return found
    tool = other_tools.which(lines, "ibv_devinfo")
    if tool is not None:
        raise UserError(f"--ibv-devinfo {path} is {tool}'s output, not ibv_devinfo's: {FILE_FIX}")
    raise UserError(f"--ibv-devinfo {path} lists no port under an hca_id: line: {FILE_FIX}")


def read_live() -> tuple[dict[str, int], str | None]:
    """(port -> active MTU, None) from this node's ``ibv_devinfo``, or ({}, why not)."""
    tool = shutil.which("ibv_devinfo")
    if tool is None:
        return {}, "ibv_devinfo is not on the PATH (rdma-core's utilities are not installed)"
    try:
        done = toolrun.run_tool([tool], TIMEOUT_S, MAX_OUTPUT_BYTES)
    except toolrun.ToolMissing as exc:
        return {}, f"cannot run ibv_devinfo: {exc.strerror or exc}"
    if not done.ok:
        return {}, done.why_not(TIMEOUT_S, MAX_OUTPUT_BYTES)
    text = done.stdout[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
    return active_mtus(text.splitlines()), None
