"""Which InfiniBand tool printed a file, told by its content: a user hands one tool's output in for another's
(``ibstat`` for ``ibv_devinfo``, ``iblinkinfo`` for ``ibnetdiscover``), and the refusal names what was given.

Each mark is a line start no other of these tools prints (``ibstat``'s ``CA 'mlx5_0'``, ``ibstatus``'s
``Infiniband device 'mlx5_0' port 1 status:``, ``ibv_devinfo``'s ``hca_id:``, ``ibswitches``/``ibhosts``'
``Switch : 0x...``/``Ca : 0x...``, ibnetdiscover's ``# Topology file:``, ``ibv_devices``' ``node GUID`` header,
nvidia-smi's XML root); ``iblinkinfo`` and ``ibdev2netdev`` are told by their arrows anywhere in a line.
"""

from __future__ import annotations

from collections.abc import Iterable

STARTS = (
    ("CA '", "ibstat"),
    ("Infiniband device '", "ibstatus"),
    ("hca_id:", "ibv_devinfo"),
    ("Switch\t: 0x", "ibswitches (or ibnetdiscover -l/-S)"),
    ("Switch  : 0x", "ibswitches (or ibnetdiscover -l/-S)"),
    ("Ca\t: 0x", "ibhosts (or ibnetdiscover -l/-H)"),
    ("Ca      : 0x", "ibhosts (or ibnetdiscover -l/-H)"),
    ("# Topology file:", "ibnetdiscover"),
    ("device", "ibv_devices"),
    ("<nvidia_smi_log>", "nvidia-smi -q -x"),
)
HOLDS = (("==(", "iblinkinfo"), (" ==> ", "ibdev2netdev"))


def which(lines: Iterable[str | None], but: str) -> str | None:
    """The tool (other than ``but``) whose output ``lines`` are, or None."""
    for line in lines:
        text = (line or "").lstrip()
        for mark, tool in STARTS:
            if tool != but and text.startswith(mark) and (tool != "ibv_devices" or "node GUID" in text):
                return tool
        for mark, tool in HOLDS:
            if tool != but and mark in text:
                return tool
    return None
