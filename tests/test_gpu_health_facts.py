"""Issue 42: the GPU count is a fact, and a GPU's memory is judged as NVIDIA judges it.

* ``gpu-count`` counts the GPUs that answer on the PCI bus (``bench.preflight.gpu_count``): a GPU that fell
  off the bus stays listed in sysfs with the vendor, device and class the kernel read at enumeration
  (``vendor_show`` and friends in drivers/pci/pci-sysfs.c print the cached ``pci_dev`` fields), while its
  ``config`` file is read from the device and comes back all ones (PCI Local Bus 3.0 section 6.2.1; what
  ``lspci`` shows as ``rev ff`` / ``ffff:ffff``). ``railbench health`` fails such a node, exit 1, naming the
  count and NHC's action; a healthy node passes, exit 0.
* ``gpu-ecc`` (``bench.gpu.ecc``): rows remapped in the past with nothing pending and no failure pass; a
  pending remap fails with a reset, a failed remap with a replacement; odd and hostile documents read.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.fabric import pci_config
from bench.fabric.sysfs import Sysfs
from bench.fabric.topology import gpus, silent_functions
from bench.gpu.ecc import ecc_findings
from bench.gpu.smi import SmiRefused, parse_report
from bench.preflight import checks
from bench.profile.cluster import load_profile
from tests.support import railbench_inline
from tests.support.trees import fabric_trees, gpudirect_trees
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees.counters import zero_errors

GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}
ALL_ONES = b"\xff" * 4096
"""What a root read of ``config`` returns for a function that no longer answers: every byte 0xff."""


def _healthy(root: Path) -> Path:
    tree = fabric_trees.build(root, fabric_trees.healthy_1cc())
    zero_errors(tree, [f"mlx5_{k}" for k in range(9)], [f"ibp{k}s0" for k in range(1, 9)])
    return tree


def _gpu_dirs(tree: Path) -> list[Path]:
    addresses = [g.pci_address for g in gpus(Sysfs(tree), use_torch=False) if g.pci_address]
    return [(tree / "bus" / "pci" / "devices" / address).resolve() for address in addresses]


def _off_the_bus(tree: Path, ks: range | list[int]) -> list[str]:
    """GPUs ``ks`` fell off the bus: their ``config`` reads all ones, the cached attributes stay."""
    dirs = _gpu_dirs(tree)
    for k in ks:
        (dirs[k] / "config").write_bytes(ALL_ONES)
    return [dirs[k].name for k in ks]


def _health(tree: Path) -> tuple[int, list[str]]:
    done = railbench_inline(["health", "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--node", "gpu-node07"])
    return done.returncode, done.stdout.splitlines()


def test_health_fails_a_node_whose_eight_gpus_all_read_all_ones(tmp_path: Path) -> None:
    tree = _healthy(tmp_path / "gone")
    _off_the_bus(tree, range(8))
    rc, lines = _health(tree)
    assert rc == 1, lines
    (count,) = [line for line in lines if "FAIL gpu-count" in line]
    assert "gpu-count: 0 of 8 GPUs answer on the PCI bus" in count
    assert "not answering: 0000:13:00.0, 0000:33:00.0, " in count
    assert "0000:f3:00.0 (config space reads 0xffff): fell off the bus" in count
    assert "action: drain gpu-node07, check the power, seating and driver of its GPUs" in count
    assert "reboot it; replace (RMA) a GPU still missing" in count
    assert lines[-1].startswith("railbench health gpu-node07: FAIL (1 fail, ")


def test_health_passes_the_same_node_while_its_gpus_answer(tmp_path: Path) -> None:
    tree = _healthy(tmp_path / "ok")
    for directory in _gpu_dirs(tree):  # a root read of a live GPU: its own vendor and device ids first
        (directory / "config").write_bytes(
            gpudirect_trees.config_space(0, speed=32.0, width=16, max_speed=32.0, max_width=16)
        )
    rc, lines = _health(tree)
    assert rc == 0, lines
    assert lines[-1].startswith("railbench health gpu-node07: PASS (")


def test_one_gpu_off_the_bus_among_good_ones_fails_and_is_named(tmp_path: Path) -> None:
    tree = _healthy(tmp_path / "one")
    (address,) = _off_the_bus(tree, [3])
    results = [r for r in checks.run_checks(load_profile("lambda-1cc"), tree, (), GOOD_ENV) if r.check == "gpu-count"]
    assert [(r.status, r.device, r.gpus) for r in results] == [("fail", "GPU3", (3,))]
    assert results[0].reason.startswith(f"7 of 8 GPUs answer on the PCI bus; not answering: {address}")
    assert "replace (RMA)" in (results[0].action or "")


def test_a_function_whose_vendor_reads_ffff_counts_as_missing_and_is_named(tmp_path: Path) -> None:
    # A tree whose vendor attribute itself reads 0xffff (as lspci, which reads the config space, shows a GPU
    # off the bus: ffff:ffff): it is no NVIDIA GPU any more, and no GPU of the profile's count either.
    tree = _healthy(tmp_path / "vendor")
    directory = _gpu_dirs(tree)[5]
    for attribute, value in (("vendor", "0xffff"), ("device", "0xffff"), ("class", "0xffffff")):
        (directory / attribute).write_text(f"{value}\n")
    assert [(f.address, f.gpu, f.said) for f in silent_functions(Sysfs(tree), [])] == [
        (directory.name, False, "vendor 0xffff")
    ]
    (result,) = [r for r in checks.run_checks(load_profile("lambda-1cc"), tree, (), GOOD_ENV) if r.check == "gpu-count"]
    assert result.status == "fail"
    assert result.reason == (
        f"7 of 8 GPUs answer on the PCI bus; not answering: {directory.name} (vendor 0xffff): fell off the bus or "
        "lost power"
    )


def test_zero_gpus_where_the_profile_expects_eight_fails_and_an_empty_tree_counts_nothing(tmp_path: Path) -> None:
    tree = fabric_trees.build(tmp_path / "nogpu", replace(fabric_trees.healthy_1cc(), gpus=()))
    (result,) = [r for r in checks.run_checks(load_profile("lambda-1cc"), tree, (), GOOD_ENV) if r.check == "gpu-count"]
    assert (result.status, result.reason) == (
        "fail",
        "0 of 8 GPUs answer on the PCI bus: missing from the bus (unseated, unpowered or disabled)",
    )
    assert result.action and "replace (RMA)" in result.action
    (empty,) = [
        r
        for r in checks.run_checks(load_profile("lambda-1cc"), tmp_path / "empty", (), GOOD_ENV)
        if r.check == "gpu-count"
    ]
    assert empty.status == "skip" and "lists no PCI function" in empty.reason


def test_answers_reads_the_vendor_id_and_nothing_else() -> None:
    assert pci_config.answers(ALL_ONES) is False
    assert pci_config.answers(ALL_ONES[:64]) is False  # an unprivileged read: the header alone
    assert pci_config.answers(b"\xde\x10\x30\x23" + ALL_ONES[4:]) is True  # NVIDIA 0x2330: it answers
    assert pci_config.answers(b"\xff") is None and pci_config.answers(b"") is None


# -- memory, as NVIDIA judges it --------------------------------------------------------------------------


def _one(**fields: object) -> docs.SmiGpuSpec:
    return replace(docs.healthy(1)[0], **fields)  # type: ignore[arg-type]


def _finding(spec: docs.SmiGpuSpec) -> tuple[list[str], list[str], str]:
    (gpu,) = parse_report(docs.smi_xml([spec]).encode(), "smi.xml").gpus
    finding = ecc_findings(gpu)
    assert finding is not None
    return finding.fails, finding.warns, finding.history


def test_rows_remapped_in_the_past_with_nothing_pending_are_healthy() -> None:
    assert _finding(_one(aggregate_uncorrectable=6, remapped_unc=6)) == ([], [], "6 rows remapped")


def test_a_pending_remap_fails_for_a_reset_and_a_failed_one_for_a_replacement() -> None:
    # the fixture's driver says gpu_recovery_action None: the error itself was recovered, the remap waits
    fails, warns, _ = _finding(_one(remap_pending="Yes", remapped_unc=1, dram_uncorrectable=1))
    assert fails == ["a row remap is pending until the GPU is reset"]
    assert warns == [
        "1 uncorrectable ECC errors since the driver loaded, recovered (recovery action None: usable again, NVIDIA "
        "says)"
    ]
    fails, _, _ = _finding(_one(remap_failure="Yes", aggregate_uncorrectable=40, remapped_unc=40))
    assert fails == ["a row remap failed: the GPU is out of spare rows (NVIDIA: replace it)"]


@pytest.mark.parametrize(("action", "fails"), [("None", False), ("Reset", True), ("Drain and Reset", True)])
def test_the_drivers_recovery_action_decides_errors_since_the_driver_loaded(action: str, fails: bool) -> None:
    text = docs.smi_xml([_one(dram_uncorrectable=2)])
    recovery = "<gpu_recovery_action>None</gpu_recovery_action>"
    assert recovery in text
    (gpu,) = parse_report(
        text.replace(recovery, f"<gpu_recovery_action>{action}</gpu_recovery_action>").encode(), "r"
    ).gpus
    finding = ecc_findings(gpu)
    assert finding is not None and bool(finding.fails) is fails
    # without the flag (drivers before R550) the errors fail, as DCGM's volatile DBE check does
    (old,) = parse_report(text.replace(recovery, "").encode(), "old").gpus
    older = ecc_findings(old)
    assert older is not None and older.fails == ["2 uncorrectable ECC errors since the driver loaded"]


def test_lifetime_errors_nothing_accounts_for_still_warn() -> None:
    # remapped_rows N/A as a whole (as under MIG: the A100 of the corpus) and no retired-page counts: nothing
    # says the lifetime DRAM errors were handled
    text = docs.smi_xml([_one(aggregate_uncorrectable=3)])
    block = text[text.index("<remapped_rows>") : text.index("</remapped_rows>") + len("</remapped_rows>")]
    (gpu,) = parse_report(text.replace(block, "<remapped_rows>N/A</remapped_rows>").encode(), "mig.xml").gpus
    finding = ecc_findings(gpu)
    assert finding is not None and finding.fails == []
    assert finding.warns == [
        "3 uncorrectable DRAM errors over its life, and no row remap or page retirement record to say they were handled"
    ]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("<remapped_row_pending>No</remapped_row_pending>", "<remapped_row_pending>[N/A]</remapped_row_pending>"),
        ("<dram_uncorrectable>0</dram_uncorrectable>", "<dram_uncorrectable>Not Supported</dram_uncorrectable>"),
        ("<ecc_errors>", "<ecc_errors>\n\t\t\t<channel_repair_pending>Yes</channel_repair_pending>"),
        ("<ecc_errors>", "<ecc_errors><unrepairable_memory>Yes</unrepairable_memory><future_field>x</future_field>"),
        (
            "<sram_threshold_exceeded>No</sram_threshold_exceeded>",
            "<sram_threshold_exceeded>Yes</sram_threshold_exceeded>",
        ),
    ],
)
def test_odd_values_and_new_fields_read_without_a_crash(old: str, new: str) -> None:
    text = docs.smi_xml(docs.healthy(1))
    assert old in text
    (gpu,) = parse_report(text.replace(old, new, 1).encode(), "odd.xml").gpus
    finding = ecc_findings(gpu)
    assert finding is not None
    if "Yes" in new:
        assert finding.fails, new
    else:
        assert not finding.fails and not finding.warns


def test_a_gpu_element_stripped_to_its_id_reads_as_unknown_and_a_foreign_root_is_refused() -> None:
    report = parse_report(b'<nvidia_smi_log><gpu id="00000000:1B:00.0"/><gpu id="junk"/></nvidia_smi_log>', "bare")
    (gpu,) = report.gpus
    assert gpu.pci == "0000:1b:00.0" and ecc_findings(gpu) is None and not gpu.clock_events_known
    with pytest.raises(SmiRefused):
        parse_report(b"<nvidia_smi><gpu/></nvidia_smi>", "other")


def test_a_dead_function_that_is_no_gpu_does_not_fail_a_full_gpu_count(tmp_path: Path) -> None:
    # all 8 GPUs answer; a function elsewhere whose vendor reads 0xffff is not a GPU the count misses
    tree = _healthy(tmp_path / "nic")
    nic = (tree / "class" / "infiniband" / "mlx5_0" / "device").resolve()
    (nic / "vendor").write_text("0xffff\n")
    (result,) = [r for r in checks.run_checks(load_profile("lambda-1cc"), tree, (), GOOD_ENV) if r.check == "gpu-count"]
    assert result.status == "pass" and result.reason.startswith("8 GPUs: 8 x NVIDIA H100 80GB HBM3")


def test_more_gpus_than_the_profile_expects_fail_with_the_count(tmp_path: Path) -> None:
    spec = fabric_trees.healthy_1cc()
    tree = fabric_trees.build(
        tmp_path / "nine", replace(spec, gpus=(*spec.gpus, fabric_trees.GpuSpec(switch=0, bus=0x15)))
    )
    (result,) = [r for r in checks.run_checks(load_profile("lambda-1cc"), tree, (), GOOD_ENV) if r.check == "gpu-count"]
    assert (result.status, result.reason) == ("fail", "9 GPUs answer on the PCI bus, expected 8")


def test_text_a_capture_put_around_the_document_is_skipped() -> None:
    text = docs.smi_xml(docs.healthy(2))
    wrapped = f"$ nvidia-smi -q -x 2>&1 | tee q.xml\nWARNING: something on stderr\n{text}\n$ \n".encode()
    assert [g.pci for g in parse_report(wrapped, "captured").gpus] == ["0000:13:00.0", "0000:33:00.0"]
    with pytest.raises(SmiRefused):  # a document cut short is still refused, not half read
        parse_report(text[: len(text) // 2].encode(), "cut")


def test_check_reads_a_capture_with_a_line_before_the_document(tmp_path: Path) -> None:
    tree = gpudirect_trees.build(tmp_path / "node", *gpudirect_trees.healthy())
    capture = tmp_path / "q.xml"
    capture.write_text("root@node07:~# nvidia-smi -q -x\n" + docs.smi_xml(docs.changed(3, remap_pending="Yes")))
    results = checks.run_checks(load_profile("lambda-1cc"), tree, (), GOOD_ENV, nvidia_smi=[capture])
    (ecc,) = [r for r in results if r.check == "gpu-ecc"]
    assert (ecc.status, ecc.device) == ("fail", "GPU3") and "row remap is pending" in ecc.reason
