"""Issue 42: GPU and NVSwitch events in the kernel log as real nodes print them, judged as NVIDIA's Xid catalogue
says (docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html), and ``railbench check --kernel-log`` naming
the GPU or NVSwitch, the code, its meaning and the action.

Every line here is verbatim from the public source cited beside it (the same files as the kernel-log corpus in
``tests/data/wild/kernel-log``, whose manifest gives each cut).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.fabric import link_flaps
from bench.gpu import xid, xid_catalogue, xid_report
from bench.preflight import checks
from bench.profile.cluster import load_profile
from bench.profile.gpudirect import DEFAULT_FAIL_XIDS
from tests.support import railbench_inline
from tests.support.trees import fabric_trees, gpudirect_trees

WILD = Path(__file__).resolve().parent / "data" / "wild" / "kernel-log"
FAILS = xid_catalogue.default_fail_xids()
GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}

# https://github.com/leptonai/gpud/pull/1174 (a Blackwell node's kmsg)
XID_149_FATAL = (
    "NVRM: Xid (PCI:0019:01:00): 149, NETIR Fatal XC0 i0 Link -1 (0x000fe406 0x00000000 0x00000000 0x00000000 "
    "0x00000000 0x00000000)"
)
XID_145_NONFATAL = (
    "NVRM: Xid (PCI:0018:01:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 "
    "0x00000000 0x00100000 0x00000004)"
)
# https://forums.developer.nvidia.com/t/bug-xid-62-gsp-watchdog-timeout-on-rtx-5080-during-high-context-llm-inference/371272
XID_154 = "NVRM: Xid (PCI:0000:01:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 (GPU Reset Required)"
# https://github.com/NVIDIA/open-gpu-kernel-modules/issues/1150
XID_45_AFTER_149 = (
    "kernel: NVRM: Xid (PCI:0000:dc:00): 45, pid=1818990, name=python3, Ch 00000001 caused by previous Xid 149"
)
# https://pastebin.com/NGng33SB (an old driver: no ``PCI:``)
XID_31_OLD = (
    "Nov 22 18:29:55 hostname kernel: [ 966.503025] NVRM: Xid (0000:01:00): 31, Ch 0000000b, engmask 00000120, "
    "intr 10000000"
)
# https://github.com/NVIDIA/nvtrust/issues/124 (an H100 HGX's NVSwitch)
SXID_HEAD = (
    "[   25.948274] nvidia-nvswitch1: SXid (PCI:0000:02:00.0): 22013, Non-fatal, Link 00 Minion Link DLREQ interrupt"
)
SXID_DETAIL = (
    "[   25.950244] nvidia-nvswitch1: SXid (PCI:0000:02:00.0): 22013, Severity 0 Engine instance 00 Sub-engine "
    "instance 00"
)
# https://github.com/NVIDIA/NVSentinel/issues/155 (the driver's probe: three lines, no Xid)
LOST_AT_PROBE = (
    "[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0",
    "               NVRM: (PCI ID: 10de:26b5) installed in this system has",
    "               NVRM: fallen off the bus and is not responding to commands.",
)
# https://github.com/Bumblebee-Project/Bumblebee/issues/554 (an old driver, no Xid)
LOST_OLD = "[   49.261458] NVRM: GPU at 0000:01:00.0 has fallen off the bus."
# https://github.com/ikwzm/udmabuf/issues/25 (a boot banner)
BANNER = (
    "[ 0.000000] Linux version 4.14.0-xlnx-v2018.2-zynqmp-fpga (ichiro@sphinx-vm-ubuntu) (gcc version 5.4.0 "
    "20160609 (Ubuntu/Linaro 5.4.0-6ubuntu1~16.04.9)) #1 SMP Fri Aug 10 11:05:02 JST 2018"
)


def _one(*lines: str) -> xid.Xid:
    found = xid.events(lines)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("lines", "kind", "code", "bus", "status", "why"),
    [
        ((XID_149_FATAL,), "Xid", 149, "0019:01:00", "fail", "the line says Fatal"),
        ((XID_145_NONFATAL,), "Xid", 145, "0018:01:00", "warn", "the line says Nonfatal"),
        ((XID_154,), "Xid", 154, "0000:01:00", "fail", "recovery action: GPU Reset Required"),
        ((XID_45_AFTER_149,), "Xid", 45, "0000:dc:00", "warn", "catalogue: WORKFLOW_XID_45"),
        ((XID_31_OLD,), "Xid", 31, "0000:01:00", "warn", "catalogue: RESTART_APP"),
        ((SXID_HEAD, SXID_DETAIL), "SXid", 22013, "0000:02:00", "warn", "the line says Non-fatal"),
        ((SXID_DETAIL,), "SXid", 22013, "0000:02:00", "warn", "no severity line in the log"),
        (LOST_AT_PROBE, "bus", 79, "0000:b3:00", "fail", "the GPU stopped answering on PCIe (no Xid line)"),
        ((LOST_OLD,), "bus", 79, "0000:01:00", "fail", "the GPU stopped answering on PCIe (no Xid line)"),
    ],
)
def test_real_lines_are_read_and_judged(
    lines: tuple[str, ...], kind: str, code: int, bus: str, status: str, why: str
) -> None:
    event = _one(*lines)
    assert (event.kind, event.code, event.bus) == (kind, code, bus)
    verdict = xid.judge(event, FAILS)
    assert (verdict.status, verdict.why) == (status, why)
    assert verdict.action


def test_a_fatal_sxid_fails_and_names_its_switch() -> None:
    # The Fabric Manager user guide's SXid format ("<switch>: SXid (PCI:<address>): <code>, Fatal, <text>"): no
    # public node's fatal SXid was found (tests/data/wild/kernel-log/README.md), so the real non-fatal line of
    # nvtrust#124 stands in with its severity word as the guide prints a fatal one.
    event = _one(SXID_HEAD.replace("Non-fatal", "Fatal"))
    assert (event.switch, event.severity) == ("nvidia-nvswitch1", "fatal")
    verdict = xid.judge(event, ())
    assert verdict.status == "fail" and "reset the NVSwitches and GPUs" in verdict.action


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("SAW_MVB Nonfatal XC0", "nonfatal"),
        ("22013, Non-fatal, Link 00", "nonfatal"),
        ("NETIR_LINK_EVT Fatal XC0", "fatal"),
        ("PCIe Bus Error: severity=Fatal", "fatal"),
        ("GPU has encountered a fatal error", "fatal"),
        ("a fatality", None),
        ("Ch 00000001 caused by previous Xid 149", None),
    ],
)
def test_the_word_fatal_decides_whatever_the_code(text: str, said: str | None) -> None:
    assert xid.severity_of(text) == said


def test_a_fatal_line_fails_a_code_the_profile_does_not_list() -> None:
    assert xid.judge(_one(XID_149_FATAL), fail_xids=()).status == "fail"


def test_the_profiles_fail_xids_are_the_catalogues() -> None:
    """``fail_xids`` follow the catalogue's Immediate Action buckets: the default and the lambda-1cc profile's."""
    assert DEFAULT_FAIL_XIDS == FAILS
    assert load_profile("lambda-1cc").gpudirect.fail_xids == FAILS
    for code in (13, 31, 43, 45, 63, 92, 94):  # RESTART_APP / IGNORE in the catalogue: a warning
        assert code not in FAILS
    for code in (48, 64, 74, 79, 95, 119, 120):
        assert code in FAILS


def test_only_the_last_recovery_action_counts_and_a_bus_loss_beside_xid_79_is_that_xid() -> None:
    recovered = XID_154.replace(
        "from 0x0 (None) to 0x1 (GPU Reset Required)", "from 0x1 (GPU Reset Required) to 0x0 (None)"
    )
    kept = xid_report.current(xid.events([XID_154, recovered]))
    assert [e.recovery for e in kept] == ["None"]
    assert xid_report.say(kept, FAILS).status == "warn"


def test_the_boot_banner_names_the_kernel() -> None:
    assert link_flaps.booted_kernel([BANNER, "[ 0.000000] Booting Linux on physical CPU 0x0"]) == (
        "4.14.0-xlnx-v2018.2-zynqmp-fpga"
    )
    assert link_flaps.booted_kernel([XID_149_FATAL]) is None


# ---------------------------------------------------------------------------------------------------------
# railbench check --kernel-log <corpus file>


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy 1CC node whose GPU 5 sits at 0000:b3:00.0, the bus of the L40 that fell off the bus in
    NVSentinel#155 (the other GPUs at an HGX H100's buses: ``fabric_trees.HGX_H100_GPU_BUSES``)."""
    buses = list(fabric_trees.HGX_H100_GPU_BUSES)
    buses[5] = 0xB3
    base = fabric_trees.healthy_1cc()
    node = replace(base, gpus=tuple(replace(g, bus=b) for g, b in zip(base.gpus, buses, strict=True)))
    return gpudirect_trees.build(tmp_path_factory.mktemp("xid") / "node", node)


def _check(tree: Path, log: str) -> list[checks.CheckResult]:
    results = checks.run_checks(
        load_profile("lambda-1cc"), tree, env=GOOD_ENV, kernel_log=WILD / log, node="node07", only=["gpu-xid"]
    )
    return [r for r in results if r.check == "gpu-xid"]


def test_a_gpu_lost_without_an_xid_fails_naming_gpu_and_action(tree: Path) -> None:
    done = railbench_inline(
        [
            "check",
            "--profile",
            "lambda-1cc",
            "--sysfs-root",
            str(tree),
            "--kernel-log",
            str(WILD / "l40-fallen-off-bus-no-xid-probe.txt"),
        ],
        env=GOOD_ENV,
    )
    assert done.returncode == 1, done.stdout
    failed = [line for line in done.stdout.splitlines() if "gpu-xid" in line and "FAIL" in line]
    assert failed, done.stdout
    text = "\n".join(done.stdout.splitlines())
    assert "GPU 5 (0000:b3:00.0): fallen off the bus" in text
    assert "(the GPU stopped answering on PCIe (no Xid line): reboot the node" in text
    assert "and check GPU 5 (0000:b3:00.0) against NVIDIA's Xid catalogue" in text  # the action line


def test_a_non_fatal_sxid_warns_naming_the_nvswitch(tree: Path) -> None:
    found = _check(tree, "h100-nvswitch-sxid-nonfatal-probe.txt")
    assert [(r.status, r.device, r.gpus) for r in found] == [("warn", "nvidia-nvswitch1", ())]
    assert found[0].reason.startswith("NVSwitch nvidia-nvswitch1 (0000:02:00.0): SXid 22013 (the line says Non-fatal")
    assert "NVSwitch nvidia-nvswitch1 (0000:02:00.0)" in (found[0].action or "")


def test_blackwell_nvlink_xids_of_no_gpu_here_warn_as_strays(tree: Path) -> None:
    found = _check(tree, "blackwell-nvlink5-xid-149-fatal-145-nonfatal.txt")
    assert [r.status for r in found] == ["warn"] and "no GPU of this node" in found[0].reason


def test_a_gsp_halt_and_its_recovery_action_are_said_with_meaning_and_action() -> None:
    lines = (WILD / "rtx5080-xid-62-154-gpu-reset-required.txt").read_text(encoding="utf-8").splitlines()
    said = xid_report.say(xid_report.current(xid.events(lines)), FAILS)
    assert said.status == "fail"
    assert said.words == (
        "Xid 62 internal micro-controller halt (catalogue: RESET_GPU: reset the GPU); "
        "Xid 154 GPU recovery action changed (recovery action: GPU Reset Required: reset the GPU)"
    )
    assert said.latest == XID_154
