"""The profile's ``[gpudirect]`` table: the thresholds of the checks of the GPUDirect path.

=====================  ============================================================================  =========
key                    what                                                                          default
=====================  ============================================================================  =========
``max_read_request``   a rail NIC's PCIe MaxReadReq must be at least this many bytes (``nic-pcie``):  4096
                       NVIDIA's ConnectX performance tuning asks for 4096 on 200 Gb/s and faster
                       ports, where smaller reads leave the link idle between requests
``mtu``                a rail port's active MTU must be at least this many bytes (``port-mtu``)      4096
``fail_xids``          Xid codes in the kernel log that fail a node (``gpu-xid``); any other Xid     see below
                       warns
=====================  ============================================================================  =========

The default ``fail_xids`` are the Xids whose Immediate Action in NVIDIA's Xid catalogue takes the GPU out of
service (``bench.gpu.xid_catalogue``: a GPU reset, a node reboot, the ECC or NVLink workflow, the board's power):
46, 48 (double-bit ECC), 54, 62, 64 (remapping failed), 74 (NVLink), 79 (fallen off the bus), 95 (uncontained
ECC), 109, 110, 119 and 120 (GSP), 136, 140, 143, 155, 156, 158. The catalogue's ``RESTART_APP`` and ``IGNORE``
Xids only warn: 13, 31, 43 and 45 (a program's faults), 63 (a row remap recorded: ``gpu-ecc`` judges a pending
one), 92, 94 (contained to one application). Whatever the list, a line that says ``Fatal``, Xid 154's recovery
action, a GPU lost from the bus and a fatal NVSwitch SXid fail (``bench.gpu.xid.judge``).

A bad key, a value of the wrong type or out of range is refused when the profile loads (exit 2, with the file
and line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench import codec

DEFAULT_FAIL_XIDS: tuple[int, ...] = (46, 48, 54, 62, 64, 74, 79, 95, 109, 110, 119, 120, 136, 140, 143, 155, 156, 158)
"""``bench.gpu.xid_catalogue.default_fail_xids()`` (this module sits below ``bench.gpu``: tests hold them equal)."""
ReadRequest = Literal[128, 256, 512, 1024, 2048, 4096]
"""The PCIe MaxReadReq sizes (PCIe Base Specification: 128 to 4096 bytes)."""
Mtu = Literal[256, 512, 1024, 2048, 4096]
"""The MTUs an InfiniBand port can run (IBA: ``IBV_MTU_256`` ... ``IBV_MTU_4096``)."""
MAX_XID = 1 << 16


@dataclass(frozen=True)
class GpuDirectLimits:
    """The ``[gpudirect]`` table (see the module docstring), read by the codec: the sizes one of those the
    hardware runs (their types say which), every Xid a number from 1 to 65535."""

    max_read_request: ReadRequest = 4096
    mtu: Mtu = 4096
    fail_xids: tuple[int, ...] = DEFAULT_FAIL_XIDS

    def __post_init__(self) -> None:
        for i, xid in enumerate(self.fail_xids):
            if not 0 < xid < MAX_XID:
                raise codec.Invalid(("fail_xids", i), f"= {xid} is not an Xid number: write e.g. [48, 79]")
