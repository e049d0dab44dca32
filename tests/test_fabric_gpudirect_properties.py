"""Property tests (hypothesis) for the readers of the GPUDirect path on hostile input: configuration space of
any length and content (truncated, mutated, looping), nvidia-smi XML that is odd or hostile, nvlink -s and
ibv_devinfo text of any shape, Xid lines in huge logs.

Each returns a result whose invariants hold, or refuses with the project's own error in one line, never
another exception, and in time linear in its input (a generous bound on this noisy shared machine)."""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.fabric import devinfo, link_flaps, pci_config, pcie
from bench.gpu import nvlink, safe_xml, smi, xid
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees.gpudirect_trees import GEN4, GEN5, config_space

SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
FIXED_S = 1.0
PER_KIB_S = 0.05


def _within(started: float, nbytes: int) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < FIXED_S + PER_KIB_S * max(1.0, nbytes / 1024), f"{elapsed:.2f} s for {nbytes} bytes"


SPACES = [
    config_space(6, speed=GEN4, width=8, max_speed=GEN5, max_width=16, max_read_request=4096, acs_control=0x1D),
    config_space(0, speed=GEN5, width=16, max_speed=GEN5, max_width=16, max_read_request=512),
]


def _invariants(found: pci_config.ConfigSpace, length: int) -> None:
    assert 0 <= found.readable <= min(length, pci_config.EXTENDED_BYTES)
    if found.pcie is not None:
        assert 0 <= found.pcie.port_type <= 15
        assert found.pcie.max_read_request in (None, 128, 256, 512, 1024, 2048, 4096)
        assert found.pcie.link_width is None or 0 <= found.pcie.link_width <= 63
    if found.acs is not None:
        assert found.extended and set(found.acs.redirects) <= set(pci_config.REDIRECTING)
    assert found.problem is None or "\n" not in found.problem


@SETTINGS
@given(data=st.binary(max_size=5000))
@example(data=b"\xff" * 4096)
@example(data=b"\x00\x00\x00\x00\x00\x00\x10\x00" + b"\x00" * 0x2C + b"\x40" + b"\x00" * 11 + b"\x05\x40")  # loops
def test_any_configuration_space_parses(data: bytes) -> None:
    started = time.monotonic()
    _invariants(pci_config.parse(data), len(data))
    _within(started, len(data))


@SETTINGS
@given(which=st.sampled_from(range(len(SPACES))), cut=st.integers(0, 4096))
def test_a_configuration_space_cut_anywhere_parses(which: int, cut: int) -> None:
    """What a reader gets depends on who asks and when the device answers: any prefix must do."""
    found = pci_config.parse(SPACES[which][:cut])
    _invariants(found, cut)
    if cut < 0x40 + 0x14:
        assert found.pcie is None or found.pcie.link_width is None or cut >= 0x54


@SETTINGS
@given(
    which=st.sampled_from(range(len(SPACES))),
    flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=24),
)
def test_a_mutated_configuration_space_parses(which: int, flips: list[tuple[int, int]]) -> None:
    space = bytearray(SPACES[which])
    for offset, value in flips:
        space[offset] = value
    _invariants(pci_config.parse(bytes(space)), len(space))


@SETTINGS
@given(text=st.text(max_size=200))
@example(text="1e999 GT/s PCIe")
@example(text="nan GT/s")
@example(text="9" * 5000 + " GT/s")
def test_any_link_speed_text(text: str) -> None:
    speed = pcie.parse_speed(text)
    assert speed is None or (math.isfinite(speed) and 0 < speed <= 1024)


# ---------------------------------------------------------------------------------------------------------
# nvidia-smi XML

GOOD_XML = docs.smi_xml(docs.healthy(2))
XML_PIECES = [
    "<nvidia_smi_log>",
    "</nvidia_smi_log>",
    '<gpu id="00000000:13:00.0">',
    "</gpu>",
    "<remapped_rows><remapped_row_pending>Yes</remapped_row_pending></remapped_rows>",
    "<ecc_errors><volatile><dram_uncorrectable>99999999999999999999999</dram_uncorrectable></volatile></ecc_errors>",
    "<fabric><state>In Progress</state></fabric>",
    "<clocks_event_reasons><clocks_event_reason_hw_slowdown>Active</clocks_event_reason_hw_slowdown></clocks_event_reasons>",
    '<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">',
    '<!DOCTYPE x [<!ENTITY a "b">]>',
    "&a;",
    "&amp;",
    "&#x41;",
    "<![CDATA[x]]>",
    "<!-- c -->",
    '<gpu id="zz">',
    "N/A",
    "\x00",
]


def _refused_or_read(data: bytes) -> None:
    try:
        report = smi.parse_report(data, "q.xml")
    except smi.SmiRefused as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for gpu in report.gpus:
        assert len(gpu.pci) == 12 and gpu.pci[4] == gpu.pci[7] == ":" and gpu.pci[10] == ".", gpu.pci
        for count in (gpu.volatile_uncorrectable, gpu.aggregate_uncorrectable, gpu.remapped_uncorrectable):
            assert count is None or 0 <= count <= smi.MAX_COUNT * 8


@SETTINGS
@given(pieces=st.lists(st.one_of(st.sampled_from(XML_PIECES), st.text(max_size=30)), max_size=40))
def test_odd_xml_is_read_or_refused_in_one_line(pieces: list[str]) -> None:
    data = "".join(pieces).encode("utf-8", "surrogatepass")
    started = time.monotonic()
    _refused_or_read(data)
    _within(started, len(data))


@SETTINGS
@given(cut=st.integers(0, len(GOOD_XML)), insert=st.sampled_from(XML_PIECES))
def test_a_cut_or_spliced_report_is_read_or_refused(cut: int, insert: str) -> None:
    _refused_or_read(GOOD_XML[:cut].encode())
    _refused_or_read((GOOD_XML[:cut] + insert + GOOD_XML[cut:]).encode())


@pytest.mark.slow  # its point is the size: 5 MB of text, 400,000 elements and 10,000 levels, each read in bounds
def test_deep_wide_and_long_xml_is_bounded() -> None:
    for data in (
        b"<a>" * 10_000 + b"</a>" * 10_000,
        b"<nvidia_smi_log>" + b"<x/>" * 400_000 + b"</nvidia_smi_log>",
        b"<nvidia_smi_log><driver_version>" + b"9" * 5_000_000 + b"</driver_version></nvidia_smi_log>",
    ):
        started = time.monotonic()
        _refused_or_read(data)
        _within(started, len(data))
    with pytest.raises(safe_xml.XmlRefused, match="over the 32 MiB limit"):
        safe_xml.parse(b" " * (safe_xml.MAX_XML_BYTES + 1), "huge.xml")


# ---------------------------------------------------------------------------------------------------------
# text outputs and logs


@SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "GPU 0: H100 (UUID: x)",
                    "\t Link 3: 26.5 GB/s",
                    "\t Link 4: <inactive>",
                    "Link 99999: 1 GB/s",
                    "GPU 99999999: x",
                    "\t Link 1: 1e999 GB/s",
                ]
            ),
            st.text(max_size=40),
        ),
        max_size=60,
    )
)
def test_any_nvlink_status_text(lines: list[str]) -> None:
    for gpu in nvlink.parse_status(lines):
        assert len(gpu.links) <= nvlink.MAX_LINKS
        assert all(link.gbytes_per_s is None or math.isfinite(link.gbytes_per_s) for link in gpu.links)


@SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "hca_id:\tmlx5_1",
                    "\tport:\t1",
                    "\t\tactive_mtu:\t\t4096 (5)",
                    "active_mtu: 99999999999999999999",
                    "port: 0001",
                ]
            ),
            st.text(max_size=40),
        ),
        max_size=60,
    )
)
def test_any_ibv_devinfo_text(lines: list[str]) -> None:
    assert set(devinfo.active_mtus(lines).values()) <= set(devinfo.IB_MTUS)


@SETTINGS
@given(
    line=st.one_of(
        st.text(max_size=300),
        st.sampled_from(
            [
                "NVRM: Xid (PCI:0000:73:00): 79, x",
                "Xid (PCI:" + "f" * 9000 + "): 1",
                "Xid (): ",
                "Xid (PCI:0:0:0): 99999999",
            ]
        ),
    )
)
def test_any_line_is_an_xid_event_or_not(line: str) -> None:
    found = xid.parse_line(line)
    if found is not None:
        assert 0 <= found.code < 100_000 and len(found.bus) == 10 and len(found.line) <= 400


@pytest.mark.slow
def test_a_huge_kernel_log_is_read_from_its_tail_in_bounded_time(tmp_path: Path) -> None:
    """A 64 MiB kern.log of long lines and noise, its Xid at the end: only the last 8 MiB are read, lines over
    the length limit are dropped unheld, and the event is found."""
    log = tmp_path / "kern.log"
    noise = b"Jun  3 09:58:01 node07 kernel: " + b"x" * 200 + b"\n"
    blob = b"y" * (1 << 20)  # a megabyte without a newline
    with log.open("wb") as handle:
        for _ in range(28):
            handle.write(noise * 4000)
            handle.write(blob)
        handle.write(
            docs.kernel_log(docs.KernelLog(events=(docs.XidLine(0x73, 79, "GPU has fallen off the bus."),))).encode()
        )
    started = time.monotonic()
    read = link_flaps.read_kernel_log(log, datetime(1970, 1, 1))
    events = xid.events(xid.since_boot(read.lines))
    assert read.skipped is None and [(e.code, e.bus) for e in events] == [(79, "0000:73:00")]
    assert sum(len(line) for line in read.lines) <= link_flaps.MAX_TAIL_BYTES
    assert time.monotonic() - started < 20.0
