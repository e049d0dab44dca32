"""A PCI function's configuration space (sysfs ``bus/pci/devices/<addr>/config``), read for the GPUDirect path.

Layout (PCI Local Bus 3.0 section 6, PCI Express Base 6.0 section 7; the kernel's ``include/uapi/linux/
pci_regs.h`` names every offset used here), all fields little-endian:

* the header: Status at 0x06 (bit 4: a capability list follows), the capability pointer at 0x34;
* the capability list: each entry is an ID byte and a next-pointer byte, at dword-aligned offsets from 0x40 to
  0xff; the PCI Express capability (ID 0x10) holds, from its start, the PCIe Capabilities register at +0x02
  (bits 7:4 the device/port type), Device Control at +0x08 (bit 4 relaxed ordering, bits 7:5 MaxPayload,
  bits 14:12 MaxReadReq, each ``128 << code`` bytes), Link Capabilities at +0x0c (bits 3:0 the maximum speed,
  9:4 the maximum width) and Link Status at +0x12 (bits 3:0 the current speed, 9:4 the negotiated width);
* the extended capabilities, from 0x100 to the end of the 4 KiB: each a 32-bit header of ID (bits 15:0) and
  next offset (bits 31:20); Access Control Services (ID 0x000d) holds its Capability register at +0x04 and its
  Control register at +0x06 (bit 0 Source Validation, 1 Translation Blocking, 2 P2P Request Redirect, 3 P2P
  Completion Redirect, 4 Upstream Forwarding, 5 P2P Egress Control, 6 Direct Translated P2P).

What the kernel hands out is bounded by who asks: the whole 4 KiB to root, the first 64 bytes (the header
alone) to anyone else, 256 bytes for a conventional PCI function. A short read is not damage: the fields
beyond it are simply unknown, and :attr:`ConfigSpace.readable` says how far it reached. Lists that loop,
point backwards or run off the end stop there, as the kernel's own walk does (``PCI_FIND_CAP_TTL`` 48 steps;
``(4096 - 256) / 8`` for the extended list), and are kept as a problem.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_BYTES = 64
"""What an unprivileged read of ``config`` returns: the header, no capability."""
CONVENTIONAL_BYTES = 256
EXTENDED_BYTES = 4096
"""A PCI Express function's whole configuration space; the extended capabilities live above 256."""

PCIE_CAPABILITY = 0x10
ACS_CAPABILITY = 0x000D
_CAP_TTL = 48
_EXT_TTL = (EXTENDED_BYTES - CONVENTIONAL_BYTES) // 8

PORT_TYPES = {
    0: "endpoint",
    1: "legacy endpoint",
    4: "root port",
    5: "switch upstream port",
    6: "switch downstream port",
    7: "PCIe-to-PCI bridge",
    8: "PCI-to-PCIe bridge",
    9: "root complex integrated endpoint",
    10: "root complex event collector",
}
DOWNSTREAM_PORTS = frozenset({4, 6, 8})
"""Port types whose link goes down the tree: the upstream end of the link to the function below them."""

ACS_BITS: tuple[tuple[int, str], ...] = (
    (0, "SrcValid"),
    (1, "TransBlk"),
    (2, "ReqRedir"),
    (3, "CmpltRedir"),
    (4, "UpstreamFwd"),
    (5, "EgressCtrl"),
    (6, "DirectTrans"),
)
"""ACS Control bits as ``lspci -vvv`` names them (``ACSCtl: SrcValid+ TransBlk- ...``)."""
REDIRECTING = ("ReqRedir", "CmpltRedir", "EgressCtrl")
"""The controls that send a peer-to-peer request or completion up to the root complex instead of across the
switch (PCIe Base 6.0 section 6.12.1.1): with any of them on, GPU-to-NIC traffic leaves the switch."""


NO_FUNCTION = 0xFFFF
"""The Vendor ID a configuration read returns when no function answers: a read the device does not complete
ends as all ones (PCI Local Bus 3.0 section 6.2.1: 0xFFFF is no valid vendor, the value host bridges return
for a non-existent function; PCIe Base 6.0 section 2.3.2: an Unsupported Request to a configuration read
completes with all ones). A GPU that "fell off the bus" (Xid 79) reads this way until it is reset."""


def answers(data: bytes) -> bool | None:
    """Whether the function answered the read of its configuration space (its Vendor ID is not all ones);
    None when fewer than two bytes were read."""
    vendor = _u16(data, 0x00)
    return None if vendor is None else vendor != NO_FUNCTION


def _u16(data: bytes, offset: int) -> int | None:
    return int.from_bytes(data[offset : offset + 2], "little") if offset + 2 <= len(data) else None


def _u32(data: bytes, offset: int) -> int | None:
    return int.from_bytes(data[offset : offset + 4], "little") if offset + 4 <= len(data) else None


@dataclass(frozen=True)
class PcieCapability:
    """The fields of the PCI Express capability this project reads."""

    port_type: int
    """Device/port type (bits 7:4 of the PCIe Capabilities register); see :data:`PORT_TYPES`."""
    max_read_request: int | None
    """Device Control's MaxReadReq in bytes (128 to 4096); None when the register lies past the read."""
    max_payload: int | None
    relaxed_ordering: bool | None
    link_speed_code: int | None
    """Link Status's current speed code (1: 2.5 GT/s ... 6: 64 GT/s)."""
    link_width: int | None
    max_speed_code: int | None
    """Link Capabilities' maximum speed code."""
    max_width: int | None

    @property
    def port_name(self) -> str:
        return PORT_TYPES.get(self.port_type, f"type {self.port_type}")

    @property
    def faces_down(self) -> bool:
        """A root or switch downstream port: its link is the one to the function below it."""
        return self.port_type in DOWNSTREAM_PORTS


@dataclass(frozen=True)
class AcsControl:
    """Access Control Services of a port: which controls it has and which are on."""

    capability: int
    control: int

    def enabled(self) -> tuple[str, ...]:
        return tuple(name for bit, name in ACS_BITS if self.control >> bit & 1)

    @property
    def redirects(self) -> tuple[str, ...]:
        """The enabled controls that divert peer-to-peer traffic to the root complex."""
        return tuple(name for name in self.enabled() if name in REDIRECTING)

    def describe(self) -> str:
        """``ACSCtl: SrcValid+ TransBlk- ReqRedir+ ...`` as ``lspci -vvv`` prints it."""
        return "ACSCtl: " + " ".join(f"{name}{'+' if self.control >> bit & 1 else '-'}" for bit, name in ACS_BITS)


@dataclass(frozen=True)
class ConfigSpace:
    """What the configuration space says, and how much of it could be read."""

    readable: int
    """Bytes the kernel gave (64 unprivileged, 256 conventional PCI, 4096 for PCI Express as root)."""
    pcie: PcieCapability | None
    acs: AcsControl | None
    problem: str | None = None
    """A capability list that loops or runs off the space (the walk stopped there)."""

    @property
    def extended(self) -> bool:
        """Whether the extended capabilities (ACS among them) were within reach."""
        return self.readable >= EXTENDED_BYTES


def parse(data: bytes) -> ConfigSpace:
    """The configuration space in ``data`` (any length: short, truncated and hostile input included)."""
    problems: list[str] = []
    pcie_at = _find_capability(data, PCIE_CAPABILITY, problems)
    pcie = _pcie(data, pcie_at) if pcie_at is not None else None
    acs = None
    if len(data) >= EXTENDED_BYTES:
        acs_at = _find_extended(data, ACS_CAPABILITY, problems)
        if acs_at is not None:
            capability, control = _u16(data, acs_at + 4), _u16(data, acs_at + 6)
            if capability is not None and control is not None:
                acs = AcsControl(capability, control)
    return ConfigSpace(min(len(data), EXTENDED_BYTES), pcie, acs, problems[0] if problems else None)


def _find_capability(data: bytes, wanted: int, problems: list[str]) -> int | None:
    status = _u16(data, 0x06)
    if status is None or status == 0xFFFF or not status & 0x10 or len(data) <= 0x34:
        return None
    pointer = data[0x34] & 0xFC
    seen: set[int] = set()
    for _ in range(_CAP_TTL):
        if pointer < 0x40:
            return None  # 0 ends the list; anything else below 0x40 points into the header
        if pointer in seen:
            problems.append(f"the capability list loops at 0x{pointer:02x}")
            return None
        if pointer + 2 > len(data):
            return None  # past what could be read (an unprivileged read stops at 64 bytes)
        seen.add(pointer)
        if data[pointer] == wanted:
            return pointer
        pointer = data[pointer + 1] & 0xFC
    problems.append(f"the capability list is longer than {_CAP_TTL} entries")
    return None


def _find_extended(data: bytes, wanted: int, problems: list[str]) -> int | None:
    offset = CONVENTIONAL_BYTES
    seen: set[int] = set()
    for _ in range(_EXT_TTL):
        header = _u32(data, offset)
        if header is None or header in (0, 0xFFFFFFFF):
            return None
        if header & 0xFFFF == wanted:
            return offset
        seen.add(offset)
        offset = header >> 20 & 0xFFC
        if offset < CONVENTIONAL_BYTES:
            return None  # 0 ends the list
        if offset in seen:
            problems.append(f"the extended capability list loops at 0x{offset:03x}")
            return None
    problems.append(f"the extended capability list is longer than {_EXT_TTL} entries")
    return None


def _field(value: int | None, shift: int, mask: int) -> int | None:
    return None if value is None else value >> shift & mask


def _pcie(data: bytes, at: int) -> PcieCapability | None:
    flags = _u16(data, at + 0x02)
    if flags is None:
        return None
    control = _u16(data, at + 0x08)
    link_cap = _u32(data, at + 0x0C)
    status = _u16(data, at + 0x12)
    read_code = _field(control, 12, 0x7)
    payload_code = _field(control, 5, 0x7)
    ordering = _field(control, 4, 0x1)
    return PcieCapability(
        port_type=flags >> 4 & 0xF,
        # Codes 6 and 7 are reserved: a device that shows one has a damaged or nonsensical register.
        max_read_request=128 << read_code if read_code is not None and read_code <= 5 else None,
        max_payload=128 << payload_code if payload_code is not None and payload_code <= 5 else None,
        relaxed_ordering=None if ordering is None else bool(ordering),
        link_speed_code=_field(status, 0, 0xF),
        link_width=_field(status, 4, 0x3F),
        max_speed_code=_field(link_cap, 0, 0xF),
        max_width=_field(link_cap, 4, 0x3F),
    )
