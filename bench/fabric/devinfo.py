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
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable

from bench import toolrun
from bench.bounded import ascii_digits

IB_MTUS = (4096, 2048, 1024, 512, 256)
ROCE_OVERHEAD = 40 + 8 + 12 + 4 + 28 + 4
"""Bytes ``iboe_get_mtu`` takes off the interface MTU before choosing an InfiniBand MTU."""
TIMEOUT_S = 15.0
MAX_OUTPUT_BYTES = 4 << 20


def roce_mtu(interface_mtu: int) -> int | None:
    """The RoCE MTU the kernel uses over an interface of ``interface_mtu`` bytes; None below the smallest."""
    room = interface_mtu - ROCE_OVERHEAD
    return next((mtu for mtu in IB_MTUS if mtu <= room), None)


def active_mtus(lines: Iterable[str]) -> dict[str, int]:
    """``mlx5_1:1`` -> active MTU in bytes, for every port ``ibv_devinfo`` output lists."""
    out: dict[str, int] = {}
    hca: str | None = None
    port: str | None = None
    for raw in lines:
        key, colon, value = raw.strip().partition(":")
        if not colon:
            continue
        value = value.strip()
        if key == "hca_id":
            hca, port = value.split()[0][:64] if value else None, None
        elif key == "port" and ascii_digits(value) and len(value) <= 3:
            port = value
        elif key == "active_mtu" and hca and port:
            number = value.split()[0] if value else ""
            if ascii_digits(number) and int(number[:6]) in IB_MTUS:
                out[f"{hca}:{port}"] = int(number)
    return out


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
