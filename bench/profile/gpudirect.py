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

from collections.abc import Callable
from dataclasses import dataclass

from bench.exits import UserError
from bench.jsondoc import Parsed

DEFAULT_FAIL_XIDS: tuple[int, ...] = (46, 48, 54, 62, 64, 74, 79, 95, 109, 110, 119, 120, 136, 140, 143, 155, 156, 158)
"""``bench.gpu.xid_catalogue.default_fail_xids()`` (this module sits below ``bench.gpu``: tests hold them equal)."""
_READ_REQUESTS = (128, 256, 512, 1024, 2048, 4096)
_MTUS = (256, 512, 1024, 2048, 4096)
"""The MTUs an InfiniBand port can run (IBA: ``IBV_MTU_256`` ... ``IBV_MTU_4096``)."""
MAX_XID = 1 << 16


@dataclass(frozen=True)
class GpuDirectLimits:
    """The ``[gpudirect]`` table (see the module docstring)."""

    max_read_request: int = 4096
    mtu: int = 4096
    fail_xids: tuple[int, ...] = DEFAULT_FAIL_XIDS

    def __post_init__(self) -> None:
        if self.max_read_request not in _READ_REQUESTS:
            raise UserError(f"[gpudirect] max_read_request {self.max_read_request} must be one of {_READ_REQUESTS}")
        if self.mtu not in _MTUS:
            raise UserError(f"[gpudirect] mtu {self.mtu} must be one of {_MTUS}")

    @classmethod
    def from_table(cls, table: Parsed, where: str, line_of: Callable[[str, str], int]) -> GpuDirectLimits:
        """The limits in a parsed ``[gpudirect]`` table; UserError naming ``where`` and the line when bad."""
        defaults = cls()
        known = {"max_read_request": _READ_REQUESTS, "mtu": _MTUS}
        values: dict[str, int] = {}
        for key, value in table.items():
            at = f"{where}:{line_of(key, 'gpudirect')}"
            if key == "fail_xids":
                continue
            if key not in known:
                raise UserError(f"{at}: unknown [gpudirect] key {key!r}; known keys: fail_xids, max_read_request, mtu")
            if isinstance(value, bool) or not isinstance(value, int) or value not in known[key]:
                allowed = ", ".join(str(v) for v in known[key])
                raise UserError(f"{at}: [gpudirect] {key} = {value!r} must be one of {allowed} (bytes)")
            values[key] = value
        xids = defaults.fail_xids
        if "fail_xids" in table:
            listed = table["fail_xids"]
            at = f"{where}:{line_of('fail_xids', 'gpudirect')}"
            if not isinstance(listed, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and 0 < x < MAX_XID for x in listed
            ):
                raise UserError(f"{at}: [gpudirect] fail_xids must be a list of Xid numbers, e.g. [48, 79]")
            xids = tuple(int(x) for x in listed if isinstance(x, int))
        return cls(
            max_read_request=values.get("max_read_request", defaults.max_read_request),
            mtu=values.get("mtu", defaults.mtu),
            fail_xids=xids,
        )
