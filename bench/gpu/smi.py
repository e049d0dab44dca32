"""GPU state from ``nvidia-smi -q -x``: memory errors, clock events, fabric state, MIG mode, PCIe link.

The document is ``<nvidia_smi_log>`` with one ``<gpu id="00000000:18:00.0">`` per GPU (the DTD ships with the
driver as ``nvsmi_device_v*.dtd``; nvidia-smi(1) explains each field). The fields read, by their XML path
below ``<gpu>``, and how the names moved between drivers:

=====================================  ======================================================================
``ecc_mode/current_ecc``               ``Enabled``, ``Disabled``, ``N/A``
``ecc_errors/volatile/...``            uncorrectable errors since the driver loaded: ``dram_uncorrectable``,
                                       ``sram_uncorrectable`` (or its ``_parity`` and ``_secded`` halves,
                                       R550+); before R510 ``double_bit/device_memory`` (DRAM) and
                                       ``double_bit/total`` (DRAM and the on-chip SRAMs)
``ecc_errors/aggregate/...``           the same, over the GPU's life; ``sram_threshold_exceeded`` (R550+):
                                       the SRAM errors passed NVIDIA's replacement threshold
``ecc_errors/channel_repair_pending``  a memory channel or TPC repair waits for a GPU reset (v13 DTD, R575+)
``ecc_errors/tpc_repair_pending``
``ecc_errors/unrepairable_memory``     the memory has faults no repair can cover (v13 DTD)
``gpu_recovery_action``                what the driver asks after an uncorrectable error (R550+): ``None``,
                                       ``Reset``, ``Reboot``, ``Drain P2P``, ``Drain and Reset``
``retired_pages/...``                  pages retired for errors (``retired_count`` per cause; before A100) and
                                       one waiting for a reboot (``pending_retirement``; ``pending_blacklist``
                                       before R460)
``remapped_rows/remapped_row_unc``     rows remapped for uncorrectable errors over the GPU's life (A100+)
``remapped_rows/remapped_row_pending`` a row remap waits for a GPU reset (A100 and later)
``remapped_rows/remapped_row_failure`` a remap failed: the GPU has run out of spare rows
``remapped_rows``                      ``N/A`` as a whole on a GPU with MIG instances (NVML does not report
                                       remapped rows there) and on GPUs without HBM
``clocks_event_reasons/*``             ``Active`` reasons the clocks are held below their maximum
                                       (``clocks_throttle_reasons/clocks_throttle_reason_*`` before R535)
``fabric/state``, ``fabric/status``    the NVSwitch fabric's registration of the GPU (Hopper and later):
                                       ``Not Started``, ``In Progress``, ``Completed``; status ``Success``
``fabric/health/bandwidth``            ``Full`` or ``Degraded`` NVLink bandwidth (R550+)
``mig_mode/current_mig``               ``Enabled``, ``Disabled``, ``N/A``
``pci/pci_gpu_link_info/...``          PCIe generation and width, current and maximum
=====================================  ======================================================================

A field the GPU does not have reads ``N/A`` (or ``[N/A]``, or ``Requested functionality has been
deprecated``); every such value is None here, never a zero or a "No".
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.bounded import InputError, Where, ascii_digits, parse_int
from bench.gpu.safe_xml import Element, XmlRefused, parse

MAX_COUNT = 1 << 48
"""Above any error count a GPU reports."""
EVENT_PREFIXES = ("clocks_event_reason_", "clocks_throttle_reason_")


class SmiRefused(ValueError):
    """The document is not nvidia-smi -q -x output railbench can read."""


@dataclass(frozen=True)
class SmiGpu:
    """One GPU as nvidia-smi -q -x shows it."""

    pci: str
    """Its PCI address as sysfs writes it, ``0000:18:00.0``."""
    name: str | None
    ecc_mode: str | None
    volatile_uncorrectable: int | None
    """Uncorrectable ECC errors since the driver loaded (DRAM and SRAM); None when not reported."""
    aggregate_uncorrectable: int | None
    """The same over the GPU's life (DRAM and SRAM)."""
    aggregate_dram_uncorrectable: int | None
    aggregate_sram_uncorrectable: int | None
    sram_threshold_exceeded: bool | None
    retirement_pending: bool | None
    retired_pages: int | None
    remap_pending: bool | None
    remap_failure: bool | None
    remapped_uncorrectable: int | None
    repair_pending: tuple[str, ...]
    """Repairs waiting for a GPU reset (``channel``, ``tpc``: the v13 DTD's ``*_repair_pending``)."""
    unrepairable_memory: bool | None
    recovery_action: str | None
    """``gpu_recovery_action``: ``None`` (the word: nothing to do), ``Reset``, ``Reboot``, ``Drain P2P``..."""
    clock_events: tuple[str, ...]
    """The ``Active`` clock event reasons, named without their prefix (``hw_thermal_slowdown``)."""
    clock_events_known: bool
    """Whether the document had a clock event section at all."""
    fabric_state: str | None
    fabric_status: str | None
    fabric_bandwidth: str | None
    mig_current: str | None
    mig_pending: str | None
    pcie_gen: int | None
    pcie_max_gen: int | None
    pcie_width: int | None
    pcie_max_width: int | None
    sm_clock_MHz: float | None = None
    """The SM clock now (``clocks/sm_clock``, ``1410 MHz``); None when the GPU does not say it."""
    temperature_C: float | None = None
    """The GPU's core temperature now (``temperature/gpu_temp``, ``66 C``)."""


@dataclass(frozen=True)
class SmiReport:
    """The whole document: the driver version and every GPU, in nvidia-smi's order (PCI bus order)."""

    source: str
    driver: str | None
    gpus: tuple[SmiGpu, ...]

    def by_pci(self) -> dict[str, SmiGpu]:
        return {g.pci: g for g in self.gpus}


def _known(text: str | None) -> str | None:
    """``text`` unless it is one of nvidia-smi's ways of saying nothing (``N/A``, ``[N/A]``, empty,
    ``Requested functionality has been deprecated``); ``Not Active`` and ``Not Started`` are values."""
    if text is None:
        return None
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("", "n/a", "[n/a]") or lowered.startswith("requested functionality"):
        return None
    return stripped


def _count(text: str | None, where: str) -> int | None:
    """A count (``12``, ``0``); None for N/A or anything that is no count."""
    value = _known(text)
    if value is None:
        return None
    number = value.split()[0]
    if not ascii_digits(number):
        return None
    try:
        return parse_int(number, Where(where, "count"), maximum=MAX_COUNT)
    except InputError:
        return None


def _reading(text: str | None, unit: str) -> float | None:
    """A reading in ``unit`` (``1410 MHz``, ``66 C``); None for N/A, another unit, or anything that is no number:
    a reading the document does not give is not read, never guessed."""
    value = _known(text)
    if value is None:
        return None
    number, _, said = value.partition(" ")
    if said.strip() != unit or not number.replace(".", "", 1).isdigit() or not number.isascii():
        return None
    return float(number)


def _yes(text: str | None) -> bool | None:
    value = _known(text)
    if value is None:
        return None
    lowered = value.lower()
    return True if lowered == "yes" else False if lowered == "no" else None


def _sum(*counts: int | None) -> int | None:
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


SRAM_NAMES = ("sram_uncorrectable", "sram_uncorrectable_parity", "sram_uncorrectable_secded")
OLD_SRAM_NAMES = ("register_file", "l1_cache", "l2_cache", "texture_memory", "texture_shm", "cbu")
"""Before R510 the double-bit counts came per memory: ``device_memory`` is the DRAM, the rest on-chip SRAM."""


def _dram_sram(section: Element | None, where: str) -> tuple[int | None, int | None]:
    """(DRAM, SRAM) uncorrectable errors in a ``volatile`` or ``aggregate`` section; None where not reported."""
    if section is None:
        return None, None
    dram = _count(section.value("dram_uncorrectable"), where)
    sram = _sum(*(_count(section.value(n), where) for n in SRAM_NAMES))
    old = section.child("double_bit")
    if dram is None and sram is None and old is not None:  # before R510: <double_bit><device_memory>...
        dram = _count(old.value("device_memory"), where)
        sram = _sum(*(_count(old.value(n), where) for n in OLD_SRAM_NAMES))
        total = _count(old.value("total"), where)
        if total is not None and dram is None and sram is None:
            return total, None  # only the total: counted as DRAM, where most double-bit errors are
    return dram, sram


def _uncorrectable(section: Element | None, where: str) -> int | None:
    return _sum(*_dram_sram(section, where))


def _repairs(ecc: Element | None) -> tuple[str, ...]:
    """The repairs the v13 DTD says wait for a reset (``channel_repair_pending``, ``tpc_repair_pending``)."""
    if ecc is None:
        return ()
    return tuple(
        c.tag.removesuffix("_repair_pending")
        for c in ecc.children
        if c.tag.endswith("_repair_pending") and _yes(c.text)
    )


def pci_address(gpu_id: str) -> str | None:
    """nvidia-smi's ``00000000:18:00.0`` (a 32-bit domain) as sysfs writes it, ``0000:18:00.0``."""
    domain, _, rest = gpu_id.strip().lower().partition(":")
    if not rest or len(domain) > 8 or len(rest) != 7 or rest[2] != ":" or rest[5] != ".":
        return None
    hexdigits = set("0123456789abcdef")
    if not set(domain) <= hexdigits or not set(rest.replace(":", "").replace(".", "")) <= hexdigits:
        return None
    number = int(domain, 16)
    return f"{number:04x}:{rest}" if number <= 0xFFFF else None  # Linux PCI domains are 16-bit


def _gpu(element: Element, source: str) -> SmiGpu | None:
    address = pci_address(element.attributes.get("id", "") or element.value("pci", "pci_bus_id") or "")
    if address is None:
        return None
    where = f"{source} GPU {address}"
    ecc = element.find("ecc_errors")
    retired = element.find("retired_pages")
    remap = element.find("remapped_rows")
    events = element.find("clocks_event_reasons") or element.find("clocks_throttle_reasons")
    active: list[str] = []
    for child in events.children if events is not None else ():
        if child.text.lower() == "active":
            name = child.tag
            for prefix in EVENT_PREFIXES:
                name = name.removeprefix(prefix)
            active.append(name)
    link = element.find("pci", "pci_gpu_link_info")
    aggregate_dram, aggregate_sram = _dram_sram(ecc.child("aggregate") if ecc else None, where)
    return SmiGpu(
        pci=address,
        name=_known(element.value("product_name")),
        ecc_mode=_known(element.value("ecc_mode", "current_ecc")),
        volatile_uncorrectable=_uncorrectable(ecc.child("volatile") if ecc else None, where),
        aggregate_uncorrectable=_sum(aggregate_dram, aggregate_sram),
        aggregate_dram_uncorrectable=aggregate_dram,
        aggregate_sram_uncorrectable=aggregate_sram,
        sram_threshold_exceeded=_yes(ecc.value("aggregate", "sram_threshold_exceeded")) if ecc else None,
        retirement_pending=_yes(retired.value("pending_retirement") or retired.value("pending_blacklist"))
        if retired
        else None,
        retired_pages=_sum(
            _count(retired.value("multiple_single_bit_retirement", "retired_count"), where) if retired else None,
            _count(retired.value("double_bit_retirement", "retired_count"), where) if retired else None,
        ),
        remap_pending=_yes(remap.value("remapped_row_pending")) if remap else None,
        remap_failure=_yes(remap.value("remapped_row_failure")) if remap else None,
        remapped_uncorrectable=_count(remap.value("remapped_row_unc"), where) if remap else None,
        repair_pending=_repairs(ecc),
        unrepairable_memory=_yes(ecc.value("unrepairable_memory")) if ecc else None,
        recovery_action=_known(element.value("gpu_recovery_action")),
        clock_events=tuple(active),
        clock_events_known=events is not None,
        fabric_state=_known(element.value("fabric", "state")),
        fabric_status=_known(element.value("fabric", "status")),
        fabric_bandwidth=_known(element.value("fabric", "health", "bandwidth")),
        mig_current=_known(element.value("mig_mode", "current_mig")),
        mig_pending=_known(element.value("mig_mode", "pending_mig")),
        pcie_gen=_count(link.value("pcie_gen", "current_link_gen"), where) if link else None,
        pcie_max_gen=_count(link.value("pcie_gen", "max_link_gen"), where) if link else None,
        pcie_width=_count((link.value("link_widths", "current_link_width") or "").rstrip("x"), where) if link else None,
        pcie_max_width=_count((link.value("link_widths", "max_link_width") or "").rstrip("x"), where) if link else None,
        sm_clock_MHz=_reading(element.value("clocks", "sm_clock"), "MHz"),
        temperature_C=_reading(element.value("temperature", "gpu_temp"), "C"),
    )


DOCUMENT_STARTS = (b"<?xml", b"<!DOCTYPE nvidia_smi_log", b"<nvidia_smi_log")
DOCUMENT_END = b"</nvidia_smi_log>"
HEAD_BYTES = 64 << 10
"""How far into a file the document may start: room for lines a capture put before it, not a search of 32 MB."""


def document_span(data: bytes) -> tuple[int, int] | None:
    """Where the ``nvidia-smi -q -x`` document lies in ``data`` (start, end), found by its content: text a
    capture put around it (a shell prompt, a warning a ``2>&1`` redirect put first, a blank line after) lies
    outside; markup outside it is never skipped (the whole is read, and a hostile DTD before the root refused);
    None when no document starts in the first 64 KiB."""
    head = data[:HEAD_BYTES]
    starts = [at for at in (head.find(mark) for mark in DOCUMENT_STARTS) if at >= 0]
    if not starts:
        return None
    start = min(starts)
    end = data.rfind(DOCUMENT_END)
    end = end + len(DOCUMENT_END) if end >= start else len(data)
    if b"<" in data[:start] or b"<" in data[end:]:
        return 0, len(data)  # markup outside it (a DTD of its own, a second root): read whole, and refused whole
    return start, end


def parse_report(data: bytes, source: str) -> SmiReport:
    """The report in ``data`` (nvidia-smi -q -x output, text around it skipped: ``document_span``); SmiRefused
    when it is not one."""
    span = document_span(data)
    if span is not None:
        data = data[span[0] : span[1]]
    try:
        root = parse(data, source)
    except XmlRefused as exc:
        raise SmiRefused(str(exc)) from None
    if root.tag != "nvidia_smi_log":
        raise SmiRefused(f"{source} is XML but not nvidia-smi -q -x output (its root is <{root.tag[:40]}>)")
    gpus = [g for g in (_gpu(e, source) for e in root.all("gpu")) if g is not None]
    return SmiReport(source, _known(root.value("driver_version")), tuple(sorted(gpus, key=lambda g: g.pci)))
