"""The checks of the GPUDirect path on fixture nodes: each injected fault named with its device and its action,
the healthy node passed, and what could not be read skipped with the reason, never passed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.preflight import checks
from bench.preflight.checks import CheckResult
from bench.profile.cluster import load_profile
from tests.support import REPO, railbench, railbench_inline
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees import gpudirect_trees
from tests.support.trees.gpudirect_trees import FAULTS, Fault

GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}
PATH_CHECKS = ("pcie-link", "pcie-acs", "iommu", "gpu-peer-memory", "nic-pcie", "port-mtu")
GPU_CHECKS = ("gpu-xid", "gpu-ecc", "gpu-clocks", "nvlink", "fabric-manager")


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("gpudirect")
    nodes = {f.name: f.node for f in FAULTS}
    nodes |= {
        "healthy": gpudirect_trees.healthy(),
        "passthrough": gpudirect_trees.iommu_passthrough(),
        "unprivileged": gpudirect_trees.unprivileged(),
    }
    return {name: gpudirect_trees.build(base / name, *node) for name, node in nodes.items()}


def _run(root: Path, *files: Path, kernel_log: Path | None = None) -> list[CheckResult]:
    return checks.run_checks(
        load_profile("lambda-1cc"), root, env=GOOD_ENV, nvidia_smi=files, kernel_log=kernel_log, node="node07"
    )


def _of(results: list[CheckResult], names: tuple[str, ...]) -> dict[str, list[CheckResult]]:
    return {name: [r for r in results if r.check == name] for name in names}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_fault_is_named_with_its_device_and_action_and_nothing_else(trees: dict[str, Path], fault: Fault) -> None:
    results = _of(_run(trees[fault.name]), PATH_CHECKS)
    failed = [r for name in PATH_CHECKS for r in results[name] if r.status == "fail"]
    assert failed and {r.check for r in failed} == {fault.check}, failed
    named = failed[0]
    if fault.device is not None:
        assert fault.device in {r.device for r in failed}
    for word in fault.words:
        assert any(word in r.reason for r in failed), (word, failed)
    assert all(r.action and fault.action in r.action and "node07" in r.action for r in failed)
    assert named.gpus, "a cause names the GPUs whose path it is on"


@pytest.mark.parametrize("name", ["healthy", "passthrough"])
def test_a_healthy_node_passes_every_path_check_it_could_read(trees: dict[str, Path], name: str) -> None:
    results = _of(_run(trees[name]), PATH_CHECKS)
    for check in ("pcie-link", "pcie-acs", "iommu", "gpu-peer-memory", "nic-pcie"):
        assert [r.status for r in results[check]] == ["pass"], results[check]
    # An IB port's active MTU is not in sysfs, and a copied tree has no ibv_devinfo to ask: not judged.
    assert [r.status for r in results["port-mtu"]] == ["skip"]
    assert "not in sysfs" in results["port-mtu"][0].reason


def test_an_unprivileged_reader_is_told_to_run_as_root(trees: dict[str, Path]) -> None:
    results = _of(_run(trees["unprivileged"]), PATH_CHECKS)
    for check in ("pcie-acs", "nic-pcie"):
        assert [r.status for r in results[check]] == ["skip"] and "run check as root" in results[check][0].reason
    assert [r.status for r in results["pcie-link"]] == ["pass"]  # widths and speeds are readable by anyone


def test_a_gpu_slower_at_idle_is_a_warning_not_a_reseat(tmp_path: Path) -> None:
    """nvidia-smi(1): a GPU's current link generation "may be reduced when the GPU is not in use"."""
    node, spec = gpudirect_trees.healthy()
    root = gpudirect_trees.build(tmp_path, node, replace(spec, gpu_speed={5: 2.5}))
    found = [r for r in _run(root) if r.check == "pcie-link" and r.status != "pass"]
    assert [(r.status, r.device) for r in found] == [("warn", "GPU5")]
    assert "under load" in found[0].reason


def test_a_socket_profile_judges_the_gpus_own_links(tmp_path: Path) -> None:
    node, _ = gpudirect_trees.healthy()
    root = gpudirect_trees.build(tmp_path, node, gpudirect_trees.PathSpec(gpu_width={2: 8}))
    results = checks.run_checks(load_profile("runpod-instant"), root, env={}, node="n")
    found = _of(results, PATH_CHECKS)
    assert [(r.status, r.device, r.gpus) for r in found["pcie-link"]] == [("fail", "GPU2", (2,))]
    assert found["gpu-peer-memory"][0].status == "skip"


# ---------------------------------------------------------------------------------------------------------
# GPU state from nvidia-smi and the kernel log


@pytest.fixture(scope="module")
def smi_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("smi")
    waiting = [replace(g, fabric_state="In Progress", fabric_status="N/A") for g in docs.healthy()]
    written = {
        "healthy.xml": docs.smi_xml(docs.healthy()),
        "old.xml": docs.smi_xml(docs.healthy(), old_names=True),
        "ecc.xml": docs.smi_xml(docs.changed(2, remap_pending="Yes", dram_uncorrectable=3, remapped_unc=1)),
        "remap-failed.xml": docs.smi_xml(docs.changed(4, remap_failure="Yes")),
        "throttled.xml": docs.smi_xml(docs.changed(5, active_events=("hw_thermal_slowdown", "sw_power_cap"))),
        "power-capped.xml": docs.smi_xml(docs.changed(5, active_events=("sw_power_cap",))),
        "fm.xml": docs.smi_xml(waiting),
        "mig.xml": docs.smi_xml(docs.changed(1, mig="Enabled")),
        "degraded.xml": docs.smi_xml(docs.changed(7, fabric_bandwidth="Degraded")),
        "nvlink.txt": docs.nvlink_status(docs.healthy()),
        "nvlink-down.txt": docs.nvlink_status(docs.changed(6, links_inactive=(4, 5))),
        "all-down.txt": docs.nvlink_status([replace(g, links_inactive=tuple(range(18))) for g in docs.healthy()]),
        "clean.log": docs.kernel_log(docs.KernelLog(before_boot=(docs.XidLine(0x33, 48, docs.XID_MESSAGES[48]),))),
        "xid.log": docs.kernel_log(
            docs.KernelLog(
                events=(
                    docs.XidLine(0x73, 79, docs.XID_MESSAGES[79]),
                    docs.XidLine(0x13, 13, docs.XID_MESSAGES[13]),
                    docs.XidLine(0x73, 79, docs.XID_MESSAGES[79]),
                )
            )
        ),
    }
    for name, text in written.items():
        (base / name).write_text(text)
    return {name: base / name for name in written}


def _gpu(
    trees: dict[str, Path], smi_files: dict[str, Path], xml: str, status: str = "nvlink.txt", log: str = "clean.log"
) -> dict[str, list[CheckResult]]:
    results = _run(trees["healthy"], smi_files[xml], smi_files[status], kernel_log=smi_files[log])
    return _of(results, GPU_CHECKS)


def _failed(found: dict[str, list[CheckResult]]) -> list[tuple[str, str | None, tuple[int, ...]]]:
    return [(r.check, r.device, r.gpus) for rs in found.values() for r in rs if r.status == "fail"]


@pytest.mark.parametrize("xml", ["healthy.xml", "old.xml"])
def test_healthy_gpus_pass_every_gpu_check(trees: dict[str, Path], smi_files: dict[str, Path], xml: str) -> None:
    found = _gpu(trees, smi_files, xml)
    assert {name: [r.status for r in rs] for name, rs in found.items()} == {name: ["pass"] for name in GPU_CHECKS}
    assert "no Xid event since boot" in found["gpu-xid"][0].reason  # the earlier boot's Xid 48 is not this one's


@pytest.mark.parametrize(
    ("xml", "status", "expected", "words"),
    [
        ("ecc.xml", "nvlink.txt", [("gpu-ecc", "GPU2", (2,))], ("row remap is pending", "3 uncorrectable")),
        ("remap-failed.xml", "nvlink.txt", [("gpu-ecc", "GPU4", (4,))], ("out of spare rows",)),
        ("throttled.xml", "nvlink.txt", [("gpu-clocks", "GPU5", (5,))], ("hw_thermal_slowdown", "sw_power_cap")),
        ("fm.xml", "nvlink.txt", [("fabric-manager", None, tuple(range(8)))], ("all 8 GPUs", "In Progress")),
        ("mig.xml", "nvlink.txt", [("nvlink", "GPU1", (1,))], ("MIG is enabled",)),
        ("degraded.xml", "nvlink.txt", [("nvlink", "GPU7", (7,))], ("Degraded",)),
        ("healthy.xml", "nvlink-down.txt", [("nvlink", "GPU6", (6,))], ("NVLink 4, 5 inactive (16 of 18 active)",)),
        ("healthy.xml", "all-down.txt", [("nvlink", None, tuple(range(8)))], ("every NVLink",)),
    ],
)
def test_each_gpu_fault_is_named(
    trees: dict[str, Path],
    smi_files: dict[str, Path],
    xml: str,
    status: str,
    expected: list[tuple[str, str | None, tuple[int, ...]]],
    words: tuple[str, ...],
) -> None:
    found = _gpu(trees, smi_files, xml, status)
    assert _failed(found) == expected
    failed = [r for rs in found.values() for r in rs if r.status == "fail"]
    assert all(word in failed[0].reason for word in words), failed[0].reason
    assert failed[0].action and "node07" in failed[0].action


def test_a_power_cap_warns(trees: dict[str, Path], smi_files: dict[str, Path]) -> None:
    found = _gpu(trees, smi_files, "power-capped.xml")
    assert [(r.status, r.device) for r in found["gpu-clocks"]] == [("warn", "GPU5")]


def test_xid_events_since_boot_name_their_gpu(trees: dict[str, Path], smi_files: dict[str, Path]) -> None:
    found = _gpu(trees, smi_files, "healthy.xml", log="xid.log")["gpu-xid"]
    assert [(r.status, r.device, r.gpus) for r in found] == [("warn", "GPU0", (0,)), ("fail", "GPU3", (3,))]
    # code, meaning, what decides it and NVIDIA's action (docs.nvidia.com/deploy/xid-errors: 79 RESTART_BM)
    assert "Xid 79 GPU has fallen off the bus (catalogue: RESTART_BM: reboot the node (bare-metal restart)) x2" in (
        found[1].reason
    )
    assert "Xid 13 graphics engine exception (catalogue: RESTART_APP" in found[0].reason  # a program's fault: warns


def test_without_nvidia_smi_output_a_copied_tree_skips_the_gpu_checks(trees: dict[str, Path]) -> None:
    found = _of(_run(trees["healthy"]), GPU_CHECKS)
    for name, rs in found.items():
        assert [r.status for r in rs] == ["skip"], (name, rs)
        assert "--nvidia-smi" in rs[0].reason or "--kernel-log" in rs[0].reason


# ---------------------------------------------------------------------------------------------------------
# the command line


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_railbench_check_names_the_fault_and_its_action(trees: dict[str, Path], fault: Fault) -> None:
    proc = railbench(["check", "--profile", "lambda-1cc", "--sysfs-root", str(trees[fault.name])], env=GOOD_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    failing = [i for i, line in enumerate(lines) if line.lstrip().startswith(f"FAIL  {fault.check}")]
    assert failing and lines[-1].startswith("verdict: FAIL")
    assert lines[failing[0] + 1].strip().startswith("action: ") and fault.action in lines[failing[0] + 1]


@pytest.mark.slow
def test_railbench_check_passes_the_healthy_node_and_says_what_it_did_not_judge(
    trees: dict[str, Path], smi_files: dict[str, Path]
) -> None:
    files = [str(smi_files["healthy.xml"]), str(smi_files["nvlink.txt"])]
    argv = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(trees["healthy"]), "--json"]
    proc = railbench([*argv, "--nvidia-smi", *files, "--kernel-log", str(smi_files["clean.log"])], env=GOOD_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "pass"
    statuses = {r["check"]: r["status"] for r in doc["nodes"][0]["results"] if r["check"] in PATH_CHECKS + GPU_CHECKS}
    assert statuses == {**{name: "pass" for name in PATH_CHECKS + GPU_CHECKS}, "port-mtu": "skip"}


@pytest.mark.slow
def test_on_this_machine_the_gpu_checks_skip_and_nothing_unjudged_passes() -> None:
    """No GPU here: each GPU and path check says SKIP with its reason; none of them says PASS."""
    proc = railbench(["check", "--profile", "lambda-1cc", "--json"], env=GOOD_ENV)
    doc = json.loads(proc.stdout)
    results = {r["check"]: r for r in doc["nodes"][0]["results"]}
    for name in ("pcie-link", "pcie-acs", "iommu", "gpu-peer-memory", *GPU_CHECKS):
        assert results[name]["status"] == "skip" and "no GPU on this machine" in results[name]["reason"], name
    text = railbench(["check", "--profile", "lambda-1cc"], env=GOOD_ENV).stdout
    for name in ("pcie-link", "gpu-ecc", "nvlink", "fabric-manager"):
        assert any(line.split()[:2] == ["SKIP", name] for line in text.splitlines()), name


@pytest.mark.slow
def test_a_file_that_is_not_nvidia_smi_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "check", "--profile", "lambda-1cc", "--nvidia-smi", str(bogus)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "neither nvidia-smi -q -x XML" in proc.stderr


def test_a_pass_says_by_name_what_it_did_not_judge(trees: dict[str, Path]) -> None:
    """A copied tree without nvidia-smi output: the node passes what was read, and the line above the verdict
    names every check that was not judged, the GPU checks among them."""
    done = railbench_inline(["check", "--profile", "lambda-1cc", "--sysfs-root", str(trees["healthy"])], env=GOOD_ENV)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[-1].startswith("verdict: PASS"), done.stdout
    assert lines[-2].startswith("not judged (SKIP above, each with why): ")
    for name in ("port-mtu", *GPU_CHECKS):
        assert name in lines[-2]
