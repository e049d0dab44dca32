"""NCCL's own log as the model of NCCL writes it (``tests/support/models/async_backend.py``, behaviour 8): the level
``NCCL_DEBUG`` asks for, net_ib's completion WARN in the wording of one NCCL, and each host's out-of-band
address as NCCL finds it. Nothing here knows railbench's code."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import threading
from collections.abc import Mapping
from typing import Any

WORDING_VAR = "RAILBENCH_ASYNC_NCCL"
_LEVELS = {"WARN": ("WARN",), "INFO": ("WARN", "INFO"), "TRACE": ("WARN", "INFO")}
"""What each ``NCCL_DEBUG`` prints (``src/debug.cc``: a line's level at most the one asked for)."""


def write(env: Mapping[str, str], local_rank: int, text: str) -> None:
    """One line (``INFO ...`` or ``WARN ...``) in NCCL's prefix (``host:pid:tid [cudaDev]``), appended to
    ``NCCL_DEBUG_FILE`` where ``NCCL_DEBUG`` asks for its level."""
    path = env.get("NCCL_DEBUG_FILE")
    if not path or not text.startswith(_LEVELS.get(env.get("NCCL_DEBUG", "").upper(), ())):
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{socket.gethostname()}:{os.getpid()}:{threading.get_native_id()} [{local_rank}] NCCL {text}\n")


def completion_warn(peer: str, me: str, them: str, hca: str) -> str:
    """net_ib's completion WARN for a retry-exceeded receive, in the wording of ``RAILBENCH_ASYNC_NCCL``
    (behaviour 8): NCCL's own format string of that version, filled as ``ncclIbTest`` fills it."""
    wording = os.environ.get(WORDING_VAR) or "2.22"
    gids = f"localGid ::ffff:{me} remoteGids::ffff:{them}"
    if wording == "2.18":  # 2.18.1 - 2.19 (src/transport/net_ib.cc, d97a32fa)
        return (
            f"WARN NET/IB : Got completion from peer {peer} with error 12, opcode 0, len 0, vendor err 129 (Recv) "
            f"localGid ::ffff:{me} remoteGid ::ffff:{them}"
        )
    if wording == "2.20":  # 2.20 - 2.21 (b6475625)
        return (
            f"WARN NET/IB : Got completion from peer {peer} with status=12 opcode=0 len=0 vendor err 129 (Recv) {gids}"
        )
    if wording == "2.28":  # 2.28.7 (ae7aed19)
        return (
            f"WARN NET/IB: Got completion from peer {peer} with status=IBV_WC_RETRY_EXC_ERR(12) "
            f"opcode=IBV_WC_RECV_RDMA_WITH_IMM(129) reqSize=0 vendor_err=129 req_type=Recv {gids} hca {hca}"
        )
    # 2.22 - 2.28.3 (178b6b75)
    return (
        f"WARN NET/IB: Got completion from peer {peer} with status=12 opcode=0 len=0 vendor err 129 (Recv) "
        f"{gids} hca {hca}"
    )


def _ipv4(ifname: str) -> str | None:
    """The IPv4 address of ``ifname`` (``SIOCGIFADDR``), None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def oob_address(env: Mapping[str, str]) -> str | None:
    """This host's out-of-band address as NCCL finds it (behaviour 8, ``ncclFindInterfaces``)."""
    value = env.get("NCCL_SOCKET_IFNAME")
    names = [name for _, name in socket.if_nameindex()]
    tries = [value] if value else ["ib", "^docker,lo", "docker", "lo"]
    for wanted in tries:
        exclude, exact = wanted.startswith("^"), wanted.lstrip("^").startswith("=")
        items = [item.strip() for item in wanted.lstrip("^").lstrip("=").split(",") if item.strip()]
        for name in names:
            hit = any(name == item if exact else name.startswith(item) for item in items)
            if hit != exclude and (address := _ipv4(name)):
                return address
    return None


def world_addresses(members: list[dict[str, Any]]) -> dict[str, str]:
    """Each host's out-of-band address (behaviour 8): its own, or pretend ones where two hosts would share one."""
    own = {str(m["host"]): m["oob"] for m in members}
    if None not in own.values() and len(set(own.values())) == len(own):
        return {host: str(address) for host, address in own.items()}
    return {host: f"198.18.0.{i + 1}" for i, host in enumerate(sorted(own))}
