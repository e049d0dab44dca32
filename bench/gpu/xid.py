"""Xid events in the kernel log: the NVIDIA driver's report of a GPU error, with the GPU's PCI address.

The driver writes one line per event (NVIDIA's "Xid Errors" catalogue, docs.nvidia.com/deploy/xid-errors)::

    NVRM: Xid (PCI:0000:1b:00): 79, pid=1234, name=python, GPU has fallen off the bus.
    NVRM: Xid (PCI:0000:3b:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error ...

after whatever prefix the log adds (``[ 1234.5678]`` from dmesg, a syslog or ISO time and host). The address
is domain:bus:device, without the function; older drivers leave out ``PCI:``. Lines are split with string
methods, never a backtracking regex, and each is looked at only when it holds ``Xid (``.

Which events fail a node is the profile's (``[gpudirect] fail_xids``); :data:`MEANINGS` names the ones an
operator meets on delivered clusters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.bounded import ascii_digits

MEANINGS: dict[int, str] = {
    13: "graphics engine exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "preemptive cleanup",
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recorded",
    64: "ECC page retirement or row remapping failed",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
    140: "unrecovered ECC error",
    154: "GPU recovery action changed",
}
"""Xid code -> what it means, in NVIDIA's catalogue's words."""
BOOT_MARKER = "Linux version "
"""The kernel's first message at every boot: a log file's lines after the last one are this boot's."""
_MARKER = "Xid ("
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class Xid:
    """One Xid event."""

    code: int
    bus: str
    """``0000:1b:00``: the GPU's domain, bus and device (the function is always 0 for a GPU)."""
    line: str

    @property
    def meaning(self) -> str:
        return MEANINGS.get(self.code, "see NVIDIA's Xid catalogue")

    def matches(self, pci_address: str) -> bool:
        """Whether the event is about the GPU at ``pci_address`` (``0000:1b:00.0``)."""
        return pci_address.lower().startswith(self.bus + ".")


def _bus(text: str) -> str | None:
    """``PCI:0000:1b:00`` or ``0000:1b:00`` (or a 32-bit domain) -> ``0000:1b:00``."""
    parts = text.removeprefix("PCI:").split(":")
    if len(parts) != 3 or not all(p and len(p) <= 8 and set(p) <= _HEX for p in parts):
        return None
    domain, bus, device = parts
    if len(bus) > 2 or len(device) > 2:
        return None
    return f"{int(domain, 16):04x}:{int(bus, 16):02x}:{int(device, 16):02x}"


def parse_line(line: str) -> Xid | None:
    """The Xid event on ``line``, or None."""
    at = line.find(_MARKER)
    if at < 0:
        return None
    start = at + len(_MARKER)
    close = line.find(")", start, start + 32)
    if close < 0:
        return None
    bus = _bus(line[start:close].strip())
    rest = line[close + 1 : close + 64].lstrip()
    if bus is None or not rest.startswith(":"):
        return None
    digits = rest[1:].lstrip()
    code = ""
    for char in digits[:6]:
        if not ascii_digits(char):
            break
        code += char
    if not code or len(code) > 5:
        return None
    return Xid(int(code), bus, line.strip()[:400])


def since_boot(lines: Sequence[str]) -> Sequence[str]:
    """The lines after the last boot banner (all of them when the log holds none: a rotated file, journalctl
    -k, which is this boot's already)."""
    for index in range(len(lines) - 1, -1, -1):
        if BOOT_MARKER in lines[index]:
            return lines[index + 1 :]
    return lines


def events(lines: Iterable[str]) -> list[Xid]:
    """Every Xid event in ``lines``, in order."""
    return [x for x in (parse_line(line) for line in lines) if x is not None]
