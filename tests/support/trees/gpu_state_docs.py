"""nvidia-smi outputs and kernel logs of a fixture node, written in the tools' own formats.

* ``smi_xml(gpus)``: ``nvidia-smi -q -x`` as the R550 driver writes it (``<!DOCTYPE nvidia_smi_log SYSTEM
  "nvsmi_device_v12.dtd">``, one ``<gpu id="00000000:13:00.0">`` per GPU, tab-indented, the sections in the
  DTD's order; the fields a GPU of this kind does not have read ``N/A``), from one :class:`SmiGpuSpec` per GPU;
  ``old_names=True`` writes the pre-R535 names (``clocks_throttle_reasons``, ``pending_blacklist``,
  ``double_bit/total``);
* ``nvlink_status(gpus)``: ``nvidia-smi nvlink -s``, 18 links per H100;
* ``kernel_log(...)``: syslog lines with ``NVRM: Xid`` events, as NVIDIA's Xid catalogue shows them.

The GPUs sit at the fixture trees' addresses (``tests.support.trees.fabric_trees``: GPU k behind switch k at bus 0x13 +
0x20 k), so a document and a tree describe the same node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

GPU_BUSES = tuple(0x13 + 0x20 * k for k in range(8))
EVENT_NAMES = (
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "display_clocks_setting",
)


@dataclass(frozen=True)
class SmiGpuSpec:
    bus: int
    name: str = "NVIDIA H100 80GB HBM3"
    ecc: str = "Enabled"
    dram_uncorrectable: int = 0
    aggregate_uncorrectable: int = 0
    remap_pending: str = "No"
    remap_failure: str = "No"
    remapped_unc: int = 0
    active_events: tuple[str, ...] = ("gpu_idle",)
    fabric_state: str = "Completed"
    fabric_status: str = "Success"
    fabric_bandwidth: str = "Full"
    mig: str = "Disabled"
    mig_pending: str = "Disabled"
    links_inactive: tuple[int, ...] = ()
    """NVLinks down (``nvidia-smi nvlink -s``)."""
    domain: int = 0
    """The GPU's PCI domain: 0 but on a GB200 tray, whose GPUs sit each in a domain of its own (0008, 0009, ...)."""

    @property
    def pci(self) -> str:
        return f"{self.domain:08X}:{self.bus:02X}:00.0"


def healthy(count: int = 8) -> list[SmiGpuSpec]:
    return [SmiGpuSpec(bus) for bus in GPU_BUSES[:count]]


def changed(k: int, **fields: object) -> list[SmiGpuSpec]:
    """A healthy node with GPU k changed."""
    gpus = healthy()
    gpus[k] = replace(gpus[k], **fields)  # type: ignore[arg-type]
    return gpus


def _gpu(spec: SmiGpuSpec, old_names: bool) -> str:
    events_tag, event_prefix = (
        ("clocks_throttle_reasons", "clocks_throttle_reason_")
        if old_names
        else ("clocks_event_reasons", "clocks_event_reason_")
    )
    states = {name: "Active" if name in spec.active_events else "Not Active" for name in EVENT_NAMES}
    events = "".join(f"\t\t\t<{event_prefix}{n}>{state}</{event_prefix}{n}>\n" for n, state in states.items())
    if old_names:
        volatile = (
            f"\t\t\t\t<single_bit><device_memory>0</device_memory><total>0</total></single_bit>\n"
            f"\t\t\t\t<double_bit><device_memory>{spec.dram_uncorrectable}</device_memory>"
            f"<total>{spec.dram_uncorrectable}</total></double_bit>\n"
        )
        aggregate = f"\t\t\t\t<double_bit><total>{spec.aggregate_uncorrectable}</total></double_bit>\n"
        pending = "\t\t\t<pending_blacklist>N/A</pending_blacklist>\n"
    else:
        volatile = (
            "\t\t\t\t<sram_correctable>0</sram_correctable>\n"
            "\t\t\t\t<sram_uncorrectable_parity>0</sram_uncorrectable_parity>\n"
            "\t\t\t\t<sram_uncorrectable_secded>0</sram_uncorrectable_secded>\n"
            "\t\t\t\t<dram_correctable>0</dram_correctable>\n"
            f"\t\t\t\t<dram_uncorrectable>{spec.dram_uncorrectable}</dram_uncorrectable>\n"
        )
        aggregate = (
            "\t\t\t\t<sram_correctable>0</sram_correctable>\n"
            "\t\t\t\t<sram_uncorrectable_parity>0</sram_uncorrectable_parity>\n"
            "\t\t\t\t<sram_uncorrectable_secded>0</sram_uncorrectable_secded>\n"
            "\t\t\t\t<dram_correctable>0</dram_correctable>\n"
            f"\t\t\t\t<dram_uncorrectable>{spec.aggregate_uncorrectable}</dram_uncorrectable>\n"
            "\t\t\t\t<sram_threshold_exceeded>No</sram_threshold_exceeded>\n"
        )
        pending = (
            "\t\t\t<pending_blacklist>N/A</pending_blacklist>\n\t\t\t<pending_retirement>N/A</pending_retirement>\n"
        )
    return (
        f'\t<gpu id="{spec.pci}">\n'
        f"\t\t<product_name>{spec.name}</product_name>\n"
        "\t\t<product_brand>NVIDIA</product_brand>\n"
        "\t\t<product_architecture>Hopper</product_architecture>\n"
        "\t\t<persistence_mode>Enabled</persistence_mode>\n"
        f"\t\t<mig_mode>\n\t\t\t<current_mig>{spec.mig}</current_mig>\n\t\t\t<pending_mig>{spec.mig_pending}</pending_mig>\n\t\t</mig_mode>\n"
        "\t\t<mig_devices>\n\t\t\tNone\n\t\t</mig_devices>\n"
        f"\t\t<minor_number>{GPU_BUSES.index(spec.bus) if spec.bus in GPU_BUSES else 0}</minor_number>\n"
        "\t\t<gpu_recovery_action>None</gpu_recovery_action>\n"
        "\t\t<pci>\n"
        f"\t\t\t<pci_bus>{spec.bus:02X}</pci_bus>\n\t\t\t<pci_device>00</pci_device>\n\t\t\t<pci_domain>{spec.domain:04X}</pci_domain>\n"
        "\t\t\t<pci_device_id>233010DE</pci_device_id>\n"
        f"\t\t\t<pci_bus_id>{spec.pci}</pci_bus_id>\n"
        "\t\t\t<pci_gpu_link_info>\n"
        "\t\t\t\t<pcie_gen>\n\t\t\t\t\t<max_link_gen>5</max_link_gen>\n\t\t\t\t\t<current_link_gen>5</current_link_gen>\n"
        "\t\t\t\t\t<device_current_link_gen>5</device_current_link_gen>\n\t\t\t\t\t<max_device_link_gen>5</max_device_link_gen>\n"
        "\t\t\t\t\t<max_host_link_gen>5</max_host_link_gen>\n\t\t\t\t</pcie_gen>\n"
        "\t\t\t\t<link_widths>\n\t\t\t\t\t<max_link_width>16x</max_link_width>\n"
        "\t\t\t\t\t<current_link_width>16x</current_link_width>\n\t\t\t\t</link_widths>\n"
        "\t\t\t</pci_gpu_link_info>\n"
        "\t\t\t<replay_counter>0</replay_counter>\n"
        "\t\t</pci>\n"
        "\t\t<performance_state>P0</performance_state>\n"
        f"\t\t<{events_tag}>\n{events}\t\t</{events_tag}>\n"
        f"\t\t<ecc_mode>\n\t\t\t<current_ecc>{spec.ecc}</current_ecc>\n\t\t\t<pending_ecc>{spec.ecc}</pending_ecc>\n\t\t</ecc_mode>\n"
        f"\t\t<ecc_errors>\n\t\t\t<volatile>\n{volatile}\t\t\t</volatile>\n"
        f"\t\t\t<aggregate>\n{aggregate}\t\t\t</aggregate>\n\t\t</ecc_errors>\n"
        "\t\t<retired_pages>\n"
        "\t\t\t<multiple_single_bit_retirement>\n\t\t\t\t<retired_count>N/A</retired_count>\n"
        "\t\t\t\t<retired_pagelist>N/A</retired_pagelist>\n\t\t\t</multiple_single_bit_retirement>\n"
        "\t\t\t<double_bit_retirement>\n\t\t\t\t<retired_count>N/A</retired_count>\n"
        "\t\t\t\t<retired_pagelist>N/A</retired_pagelist>\n\t\t\t</double_bit_retirement>\n"
        f"{pending}"
        "\t\t</retired_pages>\n"
        "\t\t<remapped_rows>\n"
        "\t\t\t<remapped_row_corr>0</remapped_row_corr>\n"
        f"\t\t\t<remapped_row_unc>{spec.remapped_unc}</remapped_row_unc>\n"
        f"\t\t\t<remapped_row_pending>{spec.remap_pending}</remapped_row_pending>\n"
        f"\t\t\t<remapped_row_failure>{spec.remap_failure}</remapped_row_failure>\n"
        "\t\t\t<row_remapper_histogram>\n"
        "\t\t\t\t<row_remapper_histogram_max>2558 bank(s)</row_remapper_histogram_max>\n"
        "\t\t\t\t<row_remapper_histogram_high>0 bank(s)</row_remapper_histogram_high>\n"
        "\t\t\t</row_remapper_histogram>\n"
        "\t\t</remapped_rows>\n"
        "\t\t<temperature>\n\t\t\t<gpu_temp>33 C</gpu_temp>\n\t\t</temperature>\n"
        "\t\t<clocks>\n\t\t\t<graphics_clock>1980 MHz</graphics_clock>\n\t\t\t<sm_clock>1980 MHz</sm_clock>\n"
        "\t\t\t<mem_clock>2619 MHz</mem_clock>\n\t\t</clocks>\n"
        "\t\t<max_clocks>\n\t\t\t<graphics_clock>1980 MHz</graphics_clock>\n\t\t\t<sm_clock>1980 MHz</sm_clock>\n"
        "\t\t\t<mem_clock>2619 MHz</mem_clock>\n\t\t</max_clocks>\n"
        "\t\t<fabric>\n"
        f"\t\t\t<state>{spec.fabric_state}</state>\n\t\t\t<status>{spec.fabric_status}</status>\n"
        "\t\t\t<cliqueId>0</cliqueId>\n\t\t\t<clusterUuid>00000000-0000-0000-0000-000000000000</clusterUuid>\n"
        f"\t\t\t<health>\n\t\t\t\t<bandwidth>{spec.fabric_bandwidth}</bandwidth>\n\t\t\t</health>\n"
        "\t\t</fabric>\n"
        "\t\t<processes>\n\t\t</processes>\n"
        "\t</gpu>\n"
    )


def smi_xml(gpus: Sequence[SmiGpuSpec], *, old_names: bool = False, driver: str = "550.54.15") -> str:
    """``nvidia-smi -q -x`` of a node with ``gpus``."""
    body = "".join(_gpu(g, old_names) for g in gpus)
    return (
        '<?xml version="1.0" ?>\n'
        '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">\n'
        "<nvidia_smi_log>\n"
        "\t<timestamp>Tue Jun  3 10:12:44 2025</timestamp>\n"
        f"\t<driver_version>{driver}</driver_version>\n"
        "\t<cuda_version>12.4</cuda_version>\n"
        f"\t<attached_gpus>{len(gpus)}</attached_gpus>\n"
        f"{body}"
        "</nvidia_smi_log>\n"
    )


def nvlink_status(gpus: Sequence[SmiGpuSpec], links: int = 18, speed: str = "26.562 GB/s") -> str:
    """``nvidia-smi nvlink -s`` of a node with ``gpus``."""
    lines = []
    for index, gpu in enumerate(gpus):
        lines.append(f"GPU {index}: {gpu.name} (UUID: GPU-0000000{index}-0000-0000-0000-000000000000)")
        for link in range(links):
            lines.append(f"\t Link {link}: {'<inactive>' if link in gpu.links_inactive else speed}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class XidLine:
    bus: int
    code: int
    message: str


XID_MESSAGES = {
    79: "GPU has fallen off the bus.",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, "
    "subpartition 0.",
    13: "Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address",
    94: "Contained: SM (0x1). RST: No, D-RST: No",
    74: "NVLink: fatal error detected on link 4(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)",
    119: "Timeout after 6s of waiting for RPC response from GPU3 GSP! Expected function 76 (GSP_RM_CONTROL).",
}


@dataclass(frozen=True)
class KernelLog:
    """A syslog-style kernel log: a boot, some lines, Xid events; optionally an earlier boot's events."""

    host: str = "node07"
    events: tuple[XidLine, ...] = ()
    before_boot: tuple[XidLine, ...] = ()
    """Events logged before the latest boot: not this boot's, never counted."""
    noise: int = 40
    filler: list[str] = field(default_factory=list)


def _xid(host: str, second: int, event: XidLine) -> str:
    return (
        f"Jun  3 10:{second // 60:02d}:{second % 60:02d} {host} kernel: [{1000 + second}.123456] NVRM: Xid "
        f"(PCI:0000:{event.bus:02x}:00): {event.code}, pid=41872, name=python3, {event.message}"
    )


def kernel_log(spec: KernelLog) -> str:
    host = spec.host
    lines = [_xid(host, i, e) for i, e in enumerate(spec.before_boot)]
    lines.append(
        f"Jun  3 09:58:01 {host} kernel: [    0.000000] Linux version 5.15.0-122-generic (buildd@lcy02-amd64-034) "
        "(gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0) #132-Ubuntu SMP"
    )
    lines.append(f"Jun  3 09:58:01 {host} kernel: [    0.000000] Command line: BOOT_IMAGE=/vmlinuz ro quiet")
    for i in range(spec.noise):
        lines.append(
            f"Jun  3 09:58:{i % 60:02d} {host} kernel: [   {i}.500000] mlx5_core 0000:14:00.0: "
            "firmware version 28.39.1002"
        )
    lines.extend(_xid(host, 120 + i, e) for i, e in enumerate(spec.events))
    lines.extend(spec.filler)
    return "\n".join(lines) + "\n"
