"""The readers of the GPUDirect path, on fixtures written in the formats and on real tool output in the corpus:
configuration space, PCIe links, IOMMU groups, peer memory, nvidia-smi -q -x and nvlink -s, Xid lines,
ibv_devinfo, NCCL's own "GDR 0"."""

from __future__ import annotations

import struct
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.bounded import InputError
from bench.fabric import devinfo, iommu, pci_config, pcie, peer_memory
from bench.fabric.sysfs import Sysfs, pci_chain
from bench.gpu import nvlink, safe_xml, smi, state, xid
from bench.nccllogs import nccl_evidence, nccl_log
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees import gpudirect_trees
from tests.support.trees.fabric_trees import healthy_1cc
from tests.support.trees.gpudirect_trees import GEN4, GEN5, PathSpec, config_space

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


# ---------------------------------------------------------------------------------------------------------
# configuration space


def test_config_space_fields_read_back_as_written() -> None:
    space = config_space(6, speed=GEN4, width=8, max_speed=GEN5, max_width=16, max_read_request=4096, acs_control=0x1D)
    found = pci_config.parse(space)
    assert found.extended and found.problem is None
    assert found.pcie is not None and found.pcie.port_name == "switch downstream port" and found.pcie.faces_down
    assert (found.pcie.link_speed_code, found.pcie.link_width, found.pcie.max_speed_code, found.pcie.max_width) == (
        4,
        8,
        5,
        16,
    )
    assert found.pcie.max_read_request == 4096 and found.pcie.max_payload == 256 and found.pcie.relaxed_ordering
    assert found.acs is not None and found.acs.redirects == ("ReqRedir", "CmpltRedir")
    assert found.acs.describe().startswith("ACSCtl: SrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+")


def test_what_an_unprivileged_reader_gets_is_the_header_alone() -> None:
    space = config_space(0, speed=GEN5, width=16, max_speed=GEN5, max_width=16)
    assert pci_config.parse(space[:64]) == pci_config.ConfigSpace(64, None, None)
    conventional = pci_config.parse(space[:256])
    assert conventional.pcie is not None and conventional.acs is None and not conventional.extended


def test_capability_lists_that_loop_stop_and_say_so() -> None:
    space = bytearray(config_space(0, speed=GEN5, width=16, max_speed=GEN5, max_width=16))
    space[0x40] = 0x05  # not the PCIe capability: MSI, pointing back at itself
    space[0x41] = 0x40
    assert pci_config.parse(bytes(space)).problem == "the capability list loops at 0x40"
    extended = bytearray(config_space(6, speed=GEN5, width=16, max_speed=GEN5, max_width=16, acs_control=0))
    struct.pack_into("<I", extended, 0x100, 0x0001 | 0x100 << 20)  # AER whose next is itself
    found = pci_config.parse(bytes(extended))
    assert found.acs is None and found.problem == "the extended capability list loops at 0x100"


def test_a_device_that_is_gone_reads_all_ones() -> None:
    """A function that fell off the bus answers every read with 0xffff: no capability, no crash."""
    assert pci_config.parse(b"\xff" * 4096) == pci_config.ConfigSpace(4096, None, None)


# ---------------------------------------------------------------------------------------------------------
# PCIe links in sysfs


@pytest.mark.parametrize(
    ("text", "gts"),
    [
        ("32.0 GT/s PCIe", 32.0),
        ("16 GT/s", 16.0),
        ("2.5 GT/s PCIe", 2.5),
        ("Unknown", None),
        ("", None),
        ("8 GB/s", None),
    ],
)
def test_link_speeds_in_the_kernels_words(text: str, gts: float | None) -> None:
    assert pcie.parse_speed(text) == gts


def test_link_bandwidth_is_lanes_times_the_coded_lane_rate() -> None:
    assert pcie.link_gbps(32.0, 16) == pytest.approx(504.1, abs=0.1)  # Gen5 x16, 128b/130b
    assert pcie.link_gbps(32.0, 8) == pcie.link_gbps(16.0, 16) == pytest.approx(252.06, abs=0.01)
    assert pcie.link_gbps(2.5, 1) == 2.0 and pcie.link_gbps(None, 16) is None and pcie.link_gbps(32.0, 0) is None


def _gpu_path(root: Path, k: int) -> tuple[Sysfs, tuple[str, ...]]:
    sysfs = Sysfs(root)
    address = f"0000:{0x13 + 0x20 * k:02x}:00.0"
    return sysfs, pci_chain(sysfs.resolve("bus", "pci", "devices", address))


def test_the_links_between_a_gpu_and_its_nic_are_the_two_below_their_switch(tmp_path: Path) -> None:
    root = gpudirect_trees.build(tmp_path, healthy_1cc(), PathSpec(gpu_width={3: 8}))
    sysfs, gpu = _gpu_path(root, 3)
    nic = pci_chain(sysfs.resolve("bus", "pci", "devices", "0000:74:00.0"))
    links = pcie.path_links(sysfs, gpu, nic)
    assert sorted((link.above.address if link.above else None, link.below.address) for link in links) == [
        ("0000:72:00.0", "0000:73:00.0"),
        ("0000:72:01.0", "0000:74:00.0"),
    ]
    slow = [link for link in links if link.degraded]
    assert [(link.below.address, link.width, link.capable_width, link.narrow, link.slow) for link in slow] == [
        ("0000:73:00.0", 8, 16, True, False)
    ]
    assert slow[0].describe() == "x8 at 32 GT/s (Gen5), capable of x16 at 32 GT/s (Gen5): 252 of 504 Gb/s each way"
    # Alone, a GPU's links run from its root port down: the switch's uplink and its own.
    assert [link.below.address for link in pcie.path_links(sysfs, gpu)] == ["0000:71:00.0", "0000:73:00.0"]
    assert pcie.bridges_on_path(gpu, nic) == ["0000:71:00.0", "0000:72:00.0", "0000:72:01.0"]


def test_a_link_trains_to_the_lesser_end(tmp_path: Path) -> None:
    """A Gen4 device in a Gen5 slot runs Gen4 at full health: the link is at what both ends support."""
    root = gpudirect_trees.build(tmp_path, healthy_1cc(), PathSpec(nic_speed={"mlx5_2": GEN4}))
    (root / "bus" / "pci" / "devices" / "0000:34:00.0" / "max_link_speed").write_text("16.0 GT/s PCIe\n")
    sysfs = Sysfs(root)
    link = pcie.path_links(sysfs, pci_chain(sysfs.resolve("bus", "pci", "devices", "0000:34:00.0")))[-1]
    assert (link.speed_gts, link.capable_speed_gts, link.degraded) == (16.0, 16.0, False)


def test_without_configuration_space_the_trees_shape_says_which_ports_face_down(tmp_path: Path) -> None:
    root = gpudirect_trees.build(tmp_path, healthy_1cc(), PathSpec(config_bytes=64, gpu_width={0: 4}))
    sysfs, gpu = _gpu_path(root, 0)
    assert [
        (link.above.address if link.above else None, link.below.address, link.width)
        for link in pcie.path_links(sysfs, gpu)
    ] == [
        ("0000:10:01.0", "0000:11:00.0", 16),
        ("0000:12:00.0", "0000:13:00.0", 4),
    ]


# ---------------------------------------------------------------------------------------------------------
# IOMMU and peer memory


def test_iommu_groups_and_their_domain_type(tmp_path: Path) -> None:
    off = Sysfs(gpudirect_trees.build(tmp_path / "off", healthy_1cc(), PathSpec()))
    assert iommu.units(off) == [] and iommu.domain(off, "0000:13:00.0") == iommu.IommuDomain("0000:13:00.0", None, None)
    on = Sysfs(gpudirect_trees.build(tmp_path / "on", healthy_1cc(), PathSpec(iommu="DMA-FQ")))
    found = iommu.domain(on, "0000:13:00.0")
    assert iommu.units(on) == ["dmar0"] and found.type == "DMA-FQ" and found.translating and found.group is not None
    assert iommu.iommu_parameters("BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt quiet") == (
        "intel_iommu=on",
        "iommu=pt",
    )
    assert iommu.kernel_cmdline(live=False) is None


def test_peer_memory_paths(tmp_path: Path) -> None:
    root = gpudirect_trees.build(tmp_path, healthy_1cc(), PathSpec())
    found = peer_memory.read(Sysfs(root), live=False)
    assert found == peer_memory.PeerMemory(True, "nvidia_peermem", False, None)
    (root / "module" / "nvidia_peermem" / "initstate").write_text("going\n")  # being unloaded
    (root / "module" / "nvidia" / "taint").write_text("OE\n")  # the open kernel module
    assert peer_memory.read(Sysfs(root), live=False) == peer_memory.PeerMemory(True, None, True, None)
    assert replace(found, kernel="6.8.0-45-generic").kernel_dmabuf is True
    assert replace(found, kernel="5.4.0-150-generic").kernel_dmabuf is False
    assert replace(found, kernel="weird").kernel_dmabuf is None


# ---------------------------------------------------------------------------------------------------------
# nvidia-smi


def test_nvidia_smi_xml_reads_every_gpu_in_bus_order() -> None:
    report = smi.parse_report(docs.smi_xml(docs.healthy()).encode(), "q.xml")
    assert report.driver == "550.54.15" and [g.pci for g in report.gpus] == [
        f"0000:{bus:02x}:00.0" for bus in docs.GPU_BUSES
    ]
    gpu = report.gpus[0]
    assert (gpu.ecc_mode, gpu.volatile_uncorrectable, gpu.remap_pending, gpu.remap_failure) == (
        "Enabled",
        0,
        False,
        False,
    )
    assert gpu.retirement_pending is None and gpu.retired_pages is None  # N/A on H100: never a "No"
    assert gpu.clock_events == ("gpu_idle",) and gpu.clock_events_known
    assert (gpu.fabric_state, gpu.fabric_status, gpu.fabric_bandwidth) == ("Completed", "Success", "Full")
    assert (gpu.mig_current, gpu.pcie_gen, gpu.pcie_max_gen, gpu.pcie_width, gpu.pcie_max_width) == (
        "Disabled",
        5,
        5,
        16,
        16,
    )


def test_older_drivers_names_read_the_same() -> None:
    new = smi.parse_report(
        docs.smi_xml(docs.changed(4, dram_uncorrectable=2, active_events=("sw_thermal_slowdown",))).encode(), "n"
    )
    old = smi.parse_report(
        docs.smi_xml(
            docs.changed(4, dram_uncorrectable=2, active_events=("sw_thermal_slowdown",)), old_names=True
        ).encode(),
        "o",
    )
    for a, b in zip(new.gpus, old.gpus, strict=True):
        assert (a.volatile_uncorrectable, a.clock_events) == (b.volatile_uncorrectable, b.clock_events)
    assert old.gpus[4].volatile_uncorrectable == 2 and old.gpus[4].clock_events == ("sw_thermal_slowdown",)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('<!DOCTYPE x [<!ENTITY a "aaaa">]><nvidia_smi_log>&a;</nvidia_smi_log>', "has a DTD of its own"),
        ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><nvidia_smi_log>&e;</nvidia_smi_log>', "DTDs are"),
        ("<nvidia_smi_log>&e;</nvidia_smi_log>", "undefined entity"),
        ("<nvidia_smi_log><gpu>", "not well-formed"),
        ("<other/>", "not nvidia-smi -q -x output"),
        ("<a>" * 100 + "</a>" * 100, "nests elements more than 64 deep"),
    ],
)
def test_hostile_xml_is_refused_in_one_line(text: str, why: str) -> None:
    with pytest.raises(smi.SmiRefused) as refused:
        smi.parse_report(text.encode(), "bad.xml")
    assert why in str(refused.value) and "\n" not in str(refused.value)


def test_a_billion_laughs_never_expands() -> None:
    laughs = '<!DOCTYPE l [<!ENTITY l0 "ha">' + "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};">' for i in range(1, 30))
    with pytest.raises(safe_xml.XmlRefused, match="has a DTD of its own"):
        safe_xml.parse((laughs + "]><nvidia_smi_log>&l29;</nvidia_smi_log>").encode(), "laughs.xml")


ENCODINGS_TRIED = (
    "UTF-7",
    "rot13",
    "idna",
    "utf-16-le",
    "utf-16",
    "utf-32",
    "shift_jis",
    "euc-jp",
    "base64",
    "hex",
    "zlib",
    "ebcdic",
    "cp500",
    "iso-8859-1",
    "cp1252",
    "koi8-r",
    "x-unknown",
    "utf-16-be",
)
"""Declared encodings the fault campaign tried: before the fix 9 of these ended in a ValueError, LookupError or
UnicodeError from Python's codecs (expat hands them an encoding it does not know), 4 were read as Latin-1."""


@pytest.mark.parametrize("encoding", ENCODINGS_TRIED)
def test_an_encoding_nvidia_smi_never_declares_is_refused_in_one_line(encoding: str) -> None:
    text = docs.smi_xml(docs.healthy(1)).replace(
        '<?xml version="1.0" ?>', f'<?xml version="1.0" encoding="{encoding}"?>'
    )
    with pytest.raises(smi.SmiRefused) as refused:
        smi.parse_report(text.encode(), "enc.xml")
    assert "encoding" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "data",
    [
        "<?xml version='1.0' ?><nvidia_smi_log/>".encode("utf-16"),  # its byte-order mark: expat would follow it
        b"\xff\xfe<\x00n\x00/\x00>\x00",
        b"\xfe\xff\x00<\x00n\x00/\x00>",
    ],
)
def test_a_byte_order_mark_of_utf16_is_refused(data: bytes) -> None:
    with pytest.raises(safe_xml.XmlRefused, match="byte-order mark"):
        safe_xml.parse(data, "bom.xml")


@pytest.mark.parametrize("declaration", ['<?xml version="1.0" ?>', '<?xml version="1.0" encoding="UTF-8"?>', ""])
def test_what_nvidia_smi_declares_is_read(declaration: str) -> None:
    """R550 writes no encoding, R535 writes UTF-8 (both with the DOCTYPE line naming the DTD file, never fetched)."""
    text = docs.smi_xml(docs.healthy(2)).replace('<?xml version="1.0" ?>', declaration)
    assert '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">' in text
    assert len(smi.parse_report(text.encode(), "ok.xml").gpus) == 2
    assert len(smi.parse_report(text.encode("ascii"), "ok.xml").gpus) == 2


def test_attribute_defaults_never_amplify() -> None:
    """An <!ATTLIST> default is copied into every element that lacks the attribute: 0.3 MB of document made
    expat build gigabytes of attributes for over 30 s (here 70 KB that would build 40 MB). Any DTD of the
    document's own is refused before that."""
    default = "a" * 1000
    data = (
        f"<!DOCTYPE nvidia_smi_log [<!ATTLIST gpu {' '.join(f'x{i} CDATA {default!r}' for i in range(4))}>]>"
        "<nvidia_smi_log>" + "<gpu/>" * 10_000 + "</nvidia_smi_log>"
    ).encode()
    started = time.monotonic()
    with pytest.raises(smi.SmiRefused, match="has a DTD of its own"):
        smi.parse_report(data, "attlist.xml")
    assert time.monotonic() - started < 1.0


def test_nvlink_status_lines() -> None:
    gpus = nvlink.parse_status(docs.nvlink_status(docs.changed(6, links_inactive=(4, 5))).splitlines())
    assert len(gpus) == 8 and all(len(g.links) == 18 for g in gpus)
    assert gpus[6].inactive == (4, 5) and gpus[0].inactive == () and gpus[0].links[0].gbytes_per_s == 26.562
    assert nvlink.output_kind(["GPU 0: NVIDIA H100 (UUID: GPU-1)"]) == nvlink.STATUS
    assert nvlink.output_kind(["<xml/>"]) is None


def test_files_given_with_nvidia_smi_are_told_apart_by_content(tmp_path: Path) -> None:
    q, s, other = tmp_path / "q.xml", tmp_path / "s.txt", tmp_path / "other.txt"
    q.write_text(docs.smi_xml(docs.healthy()))
    s.write_text(docs.nvlink_status(docs.healthy()))
    other.write_text("hello\n")
    both = state.from_files([q, s])
    assert both.report is not None and both.links is not None and both.report_missing is None
    only = state.from_files([q])
    assert only.links is None and only.links_missing is not None and "nvlink -s" in only.links_missing
    with pytest.raises(InputError, match="neither nvidia-smi -q -x XML nor nvidia-smi nvlink -s"):
        state.from_files([other])


# ---------------------------------------------------------------------------------------------------------
# Xid lines, ibv_devinfo, NCCL's GDR


@pytest.mark.parametrize(
    ("line", "code", "bus"),
    [
        (
            "Jun  3 10:02:00 n7 kernel: [1120.1] NVRM: Xid (PCI:0000:73:00): 79, pid=1, GPU has fallen off the bus.",
            79,
            "0000:73:00",
        ),
        ("[  9.5] NVRM: Xid (0000:3B:00): 48, An uncorrectable double bit error", 48, "0000:3b:00"),
        (
            "2025-06-03T10:02:00+00:00 n7 kernel: NVRM: Xid (PCI:00000001:ca:00): 119, pid=2, Timeout after 6s",
            119,
            "0001:ca:00",
        ),
    ],
)
def test_xid_lines(line: str, code: int, bus: str) -> None:
    found = xid.parse_line(line)
    assert found is not None and (found.code, found.bus) == (code, bus)
    assert found.matches(f"{bus}.0") and not found.matches(f"{bus}1.0")


@pytest.mark.parametrize(
    "line", ["NVRM: Xid (PCI:0000:73:00) 79", "NVRM: Xid (PCI:zz:73:00): 79", "NVRM: Xid (PCI:0000:73:00): x", "Xid ("]
)
def test_lines_that_are_not_xid_events(line: str) -> None:
    assert xid.parse_line(line) is None


def test_only_this_boots_events_count() -> None:
    text = docs.kernel_log(
        docs.KernelLog(events=(docs.XidLine(0x73, 79, "gone"),), before_boot=(docs.XidLine(0x33, 48, "old"),))
    )
    lines = text.splitlines()
    assert [e.code for e in xid.events(lines)] == [48, 79]
    assert [e.code for e in xid.events(xid.since_boot(lines))] == [79]


def test_active_mtus_of_real_ibv_devinfo_outputs() -> None:
    path = CORPUS / "ibv_devinfo_h200_10xCX7_roce_plus_bond_deepep355.txt"
    if not path.is_file():
        pytest.skip("the corpus is not beside the checkout")
    found = devinfo.active_mtus(path.read_text().splitlines())
    assert found["mlx5_0:1"] == 4096 and len(found) >= 10 and set(found.values()) <= {1024, 4096}
    assert devinfo.roce_mtu(9000) == 4096 and devinfo.roce_mtu(4200) == 4096 and devinfo.roce_mtu(4000) == 2048
    assert devinfo.roce_mtu(1500) == 1024 and devinfo.roce_mtu(300) is None


def test_ncclS_own_gdr_0_is_kept_with_its_line() -> None:
    log = nccl_log.parse_text(
        "node07:1:1 [0] NCCL INFO NET/IB : GPU Direct RDMA Disabled for HCA 0 'mlx5_1' (no module)\n"
        "node07:1:1 [0] NCCL INFO Connected all rings, use ring PXN 0 GDR 0\n"
        "node08:2:2 [0] NCCL INFO Connected all rings, use ring PXN 0 GDR 1\n",
        "rank.log",
    )
    hosts = nccl_evidence.hosts([log])
    off = hosts["node07"].gdr_off
    assert off is not None and (off.source, off.line) == ("rank.log", 1) and "(no module)" in off.value
    assert hosts["node08"].gdr_off is None


def test_the_corpus_logs_never_read_as_gdr_off() -> None:
    """Healthy published logs (GDRDMA channels, ``GDR 1``) must not convict peer memory."""
    if not CORPUS.is_dir():
        pytest.skip("the corpus is not beside the checkout")
    for path in sorted(CORPUS.glob("nccl_log_*.txt")):
        hosts = nccl_evidence.hosts([nccl_log.parse_file(path)])
        assert all(h.gdr_off is None for h in hosts.values()), path.name
