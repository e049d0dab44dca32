"""GPU and NVSwitch events in the kernel log: Xid lines, NVSwitch SXid lines, and a GPU lost from the bus.

The NVIDIA driver writes one line per Xid (NVIDIA's Xid catalogue, ``bench.gpu.xid_catalogue``)::

    NVRM: Xid (PCI:0000:1b:00): 79, pid=1234, name=python, GPU has fallen off the bus.
    NVRM: Xid (PCI:0019:01:00): 149, NETIR Fatal XC0 i0 Link -1 (0x000fe406 ...)
    NVRM: Xid (0000:01:00): 31, Ch 0000000b, engmask 00000120, intr 10000000        (older drivers: no ``PCI:``)

the NVSwitch driver one or more lines per SXid, the first with its severity, the others its details::

    nvidia-nvswitch1: SXid (PCI:0000:02:00.0): 22013, Non-fatal, Link 00 Minion Link DLREQ interrupt
    nvidia-nvswitch1: SXid (PCI:0000:02:00.0): 22013, Severity 0 Engine instance 00 Sub-engine instance 00

and a GPU that stops answering on PCIe may be reported without any Xid line, in one of three forms::

    NVRM: GPU at 0000:01:00.0 has fallen off the bus.                     (old drivers)
    NVRM: GPU 0000:01:00.0: GPU has fallen off the bus.                   (newer drivers, beside Xid 79)
    NVRM: The NVIDIA GPU 0000:b3:00.0                                     (at probe: three lines)
    NVRM: (PCI ID: 10de:26b5) installed in this system has
    NVRM: fallen off the bus and is not responding to commands.

each after whatever prefix the log adds (``[ 1234.5678]`` from dmesg, a syslog or ISO time and host). Lines are
split with string methods, never a backtracking regex, and each is looked at only when it holds one of the
markers. A line that says ``Fatal`` (not ``Non-fatal``/``Nonfatal``) is fatal whatever its code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bench.bounded import ascii_digits
from bench.gpu import xid_catalogue

Kind = Literal["Xid", "SXid", "bus"]
BOOT_MARKER = "Linux version "
"""The kernel's first message at every boot: a log file's lines after the last one are this boot's."""
_XID = "Xid ("
_SXID = "SXid ("
_LOST = "fallen off the bus"
_THE_GPU = "The NVIDIA GPU "
_HEX = frozenset("0123456789abcdefABCDEF")
_WORD_END = frozenset(" ,.;:()")


@dataclass(frozen=True)
class Xid:
    """One event: an Xid, an SXid (``switch`` names the NVSwitch) or a GPU lost from the bus without an Xid."""

    code: int
    bus: str
    """``0000:1b:00``: the device's domain, bus and device (the function is 0 for a GPU and an NVSwitch)."""
    line: str
    kind: Kind = "Xid"
    switch: str | None = None
    """``nvidia-nvswitch1``: the NVSwitch of an SXid."""
    severity: Literal["fatal", "nonfatal"] | None = None
    """What the line itself says, where it says it."""

    @property
    def meaning(self) -> str:
        if self.kind == "SXid":
            return "NVSwitch error"
        return xid_catalogue.entry(self.code).meaning

    def matches(self, pci_address: str) -> bool:
        """Whether the event is about the device at ``pci_address`` (``0000:1b:00.0``)."""
        return pci_address.lower().startswith(self.bus + ".")

    @property
    def recovery(self) -> str | None:
        """Xid 154's new recovery action (``GPU Reset Required``), None on any other line."""
        if self.kind != "Xid" or self.code != 154:
            return None
        at = self.line.rfind(" to 0x")
        if at < 0:
            return None
        words = self.line[at:].partition("(")[2].partition(")")[0].strip()
        return words or None


def _bus(text: str) -> str | None:
    """``PCI:0000:1b:00``, ``0000:1b:00`` or ``0000:1b:00.0`` (a 32-bit domain too) -> ``0000:1b:00``."""
    parts = text.removeprefix("PCI:").split(":")
    if len(parts) != 3:
        return None
    device = parts[2]
    if "." in device:
        device, _, function = device.partition(".")
        if len(function) != 1 or not ascii_digits(function):
            return None
    domain, bus = parts[0], parts[1]
    if not all(p and len(p) <= 8 and set(p) <= _HEX for p in (domain, bus, device)):
        return None
    if len(bus) > 2 or len(device) > 2:
        return None
    return f"{int(domain, 16):04x}:{int(bus, 16):02x}:{int(device, 16):02x}"


def severity_of(line: str) -> Literal["fatal", "nonfatal"] | None:
    """``fatal`` when ``line`` says Fatal as a word, ``nonfatal`` when it says only Non-fatal or Nonfatal."""
    lower = line.lower()
    said: Literal["fatal", "nonfatal"] | None = None
    at = lower.find("fatal")
    while at >= 0:
        after = lower[at + 5 : at + 6]
        if not after or after in _WORD_END:
            before = lower[max(0, at - 4) : at]
            if before.endswith(("non-", "non")):
                said = said or "nonfatal"
            elif at == 0 or lower[at - 1] in _WORD_END or lower[at - 1] in "=-":
                return "fatal"
        at = lower.find("fatal", at + 5)
    return said


def _coded(line: str, marker: str) -> tuple[str, int, str] | None:
    """(address text, code, the text after the code) of ``<marker>ADDRESS): CODE, ...`` on ``line``."""
    at = line.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    close = line.find(")", start, start + 32)
    if close < 0:
        return None
    rest = line[close + 1 :].lstrip()
    if not rest.startswith(":"):
        return None
    digits = rest[1:].lstrip()
    code = ""
    for char in digits[:6]:
        if not ascii_digits(char):
            break
        code += char
    if not code or len(code) > 5:
        return None
    return line[start:close].strip(), int(code), digits[len(code) :]


def parse_line(line: str) -> Xid | None:
    """The Xid or SXid event on ``line``, or None (a line that only details an SXid is an event without a
    severity; :func:`events` folds it into the SXid it details)."""
    if _SXID in line:
        found = _coded(line, _SXID)
        if found is None:
            return None
        address, code, rest = found
        bus = _bus(address)
        name = line[: line.find(_SXID)].rstrip().rstrip(":").rsplit(" ", 1)[-1]
        if bus is None:
            return None
        head = rest.lstrip(", ")[:12].lower()
        severity: Literal["fatal", "nonfatal"] | None = None
        if head.startswith("fatal"):
            severity = "fatal"
        elif head.startswith("non-fatal"):
            severity = "nonfatal"
        return Xid(code, bus, line.strip()[:400], "SXid", name or None, severity)
    found = _coded(line, _XID)
    if found is None:
        return None
    address, code, _ = found
    bus = _bus(address)
    if bus is None:
        return None
    return Xid(code, bus, line.strip()[:400], severity=severity_of(line))


def _lost_address(line: str) -> str | None:
    """The GPU address on a line that names one: ``GPU at 0000:01:00.0 has``, ``GPU 0000:01:00.0:``, ``The
    NVIDIA GPU 0000:b3:00.0``."""
    for word in line.split():
        text = word.rstrip(":,.").removeprefix("PCI:")
        # a domain of 4+ digits: never a time of day (``18:29:55``)
        if text.count(":") == 2 and len(text.split(":", 1)[0]) >= 4:
            bus = _bus(text)
            if bus is not None:
                return bus
    return None


def _lost(lines: Sequence[str], index: int) -> Xid | None:
    """A GPU lost from the bus on line ``index`` without an Xid line: its address on the line, or on the
    ``The NVIDIA GPU`` line at most two lines before it (the probe's three-line message)."""
    line = lines[index]
    if _LOST not in line or _XID in line or "NVRM" not in line:
        return None
    bus = _lost_address(line)
    if bus is None:
        for back in range(index - 1, max(-1, index - 3), -1):
            if _THE_GPU in lines[back]:
                bus = _lost_address(lines[back][lines[back].find(_THE_GPU) :])
                break
    if bus is None:
        return None
    return Xid(79, bus, line.strip()[:400], "bus", severity=severity_of(line))


def events(lines: Iterable[str]) -> list[Xid]:
    """Every event in ``lines``, in order: Xids, SXids (each event once: its detail lines fold into the line
    that gives its severity; detail lines alone, without one, stand for their event once), GPUs lost from the
    bus without an Xid."""
    kept = list(lines)
    out: list[Xid] = []
    details: dict[tuple[str, int], Xid] = {}
    headed: set[tuple[str, int]] = set()
    for index, line in enumerate(kept):
        event = parse_line(line) or _lost(kept, index)
        if event is None:
            continue
        if event.kind == "SXid":
            key = (event.bus, event.code)
            if event.severity is None:
                details.setdefault(key, event)
                continue
            headed.add(key)
        out.append(event)
    out += [event for key, event in details.items() if key not in headed]
    return out


def since_boot(lines: Sequence[str]) -> Sequence[str]:
    """The lines after the last boot banner (all of them when the log holds none: a rotated file, journalctl
    -k, which is this boot's already)."""
    for index in range(len(lines) - 1, -1, -1):
        if BOOT_MARKER in lines[index]:
            return lines[index + 1 :]
    return lines


@dataclass(frozen=True)
class XidVerdict:
    status: Literal["fail", "warn"]
    why: str
    """The words that decide it (the line's severity, the catalogue's bucket, Xid 154's recovery action)."""
    action: str
    """What NVIDIA says to do."""


def judge(event: Xid, fail_xids: Iterable[int]) -> XidVerdict:
    """Fail or warn one event: what the line says first (Fatal; Non-fatal; Xid 154's recovery action), then the
    catalogue's bucket through the profile's ``fail_xids``."""
    cat = xid_catalogue
    if event.kind == "SXid":
        if event.severity == "fatal":
            return XidVerdict("fail", "the line says Fatal", cat.SXID_FATAL_ACTION)
        said = "the line says Non-fatal" if event.severity == "nonfatal" else "no severity line in the log"
        return XidVerdict("warn", said, cat.SXID_NONFATAL_ACTION)
    bucket = cat.entry(event.code).bucket
    if event.kind == "bus":
        return XidVerdict("fail", "the GPU stopped answering on PCIe (no Xid line)", cat.BUCKET_WORDS["RESTART_BM"])
    if event.severity == "fatal":
        return XidVerdict("fail", "the line says Fatal", cat.BUCKET_WORDS.get(bucket, "reset the GPU"))
    recovery = event.recovery
    if recovery is not None:
        if recovery in cat.FAILING_RECOVERY:
            return XidVerdict("fail", f"recovery action: {recovery}", cat.FAILING_RECOVERY[recovery])
        return XidVerdict("warn", f"recovery action: {recovery}", "no action")
    if event.severity == "nonfatal":
        return XidVerdict("warn", "the line says Nonfatal", cat.BUCKET_WORDS["IGNORE"])
    if event.code in set(fail_xids):
        return XidVerdict("fail", f"catalogue: {bucket}", cat.BUCKET_WORDS.get(bucket, "reset the GPU"))
    return XidVerdict("warn", f"catalogue: {bucket}", cat.BUCKET_WORDS.get(bucket, "contact NVIDIA support"))
