"""A node's design is not its fault (issue 42): healthy nodes of current designs
(``tests/support/trees/node_designs.py``: a GB200 NVL72 tray, HGX B200 on DMA-BUF, H200, a RoCE node like a Dell XE9680)
pass ``railbench health`` and ``railbench check`` against their shipped profiles with nothing failed, so nothing is
drained; one fault on each is named with its GPU or port and its action, on the FAIL line itself and in the drain
reason."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from bench.fabric.sysfs import Sysfs, ib_devices
from bench.fabric.sysfs import nvidia_gpus as sysfs_gpus
from bench.fabric.topology import distance
from bench.health.config import HealthConfig
from bench.health.node import findings, run_checks
from bench.profile.cluster import load_profile
from bench.slurm import drain
from tests.support import CORPUS, railbench_inline
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees import node_designs
from tests.support.trees.node_designs import DESIGNS, Design, Fault

FAULTS = node_designs.faults()


def _tree(tmp_path: Path, design: Design) -> Path:
    return node_designs.build(tmp_path / design.name, design)


def _health(root: Path, design: Design, *extra: str) -> tuple[int, list[str]]:
    args = ["health", "--profile", design.profile, "--sysfs-root", str(root), "--node", "tray01"]
    proc = railbench_inline([*args, "--error-window", "0.1", *extra])
    assert not proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def _env(design: Design) -> dict[str, str]:
    """What the operator sets on a node of this profile: its recommended NCCL environment."""
    return dict(load_profile(design.profile).recommended_env)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_a_healthy_node_of_each_design_passes_health_and_check(tmp_path: Path, name: str) -> None:
    design = DESIGNS[name]
    root = _tree(tmp_path, design)
    status, lines = _health(root, design)
    assert status == 0 and not [line for line in lines if " FAIL " in line], lines
    assert re.search(r"railbench health tray01: PASS \(.*\d+ pass", lines[-1]), lines
    proc = railbench_inline(["check", "--profile", design.profile, "--sysfs-root", str(root)], env=_env(design))
    assert proc.returncode == 0 and "FAIL" not in proc.stdout, proc.stdout
    # Judged, not skipped: the design's own GPU-NIC placement and its links.
    profile = load_profile(design.profile)
    answers = run_checks(HealthConfig(design.profile, node="tray01", sysfs_root=root, error_window_s=0.1), profile)
    by_check = {r.check: r for r in answers.answers}
    for check in ("gpu-count", "gpu-nic-affinity", "pcie-link", "rail-count"):
        assert by_check[check].status == "pass", by_check[check]
    assert not [r for r in findings(answers) if r.status == "fail"]


def test_the_gb200_tray_is_judged_by_its_design_not_excused(tmp_path: Path) -> None:
    # Every GPU-NIC pair of a GB200 tray is beyond a host bridge by design (sglang#11208 prints them SYS): the
    # pass says why, names each GPU's NIC on its own Grace (nvidia-resiliency-ext#152's map), and the Grace root
    # ports, which keep ACS redirection on, carry no peer traffic for pcie-acs to judge.
    design = DESIGNS["gb200"]
    root = _tree(tmp_path, design)
    answers = run_checks(
        HealthConfig(design.profile, sysfs_root=root, error_window_s=0.1), load_profile(design.profile)
    )
    by_check = {r.check: r for r in answers.answers}
    affinity = by_check["gpu-nic-affinity"].reason
    for k, (address, nic) in enumerate(
        zip(("0008", "0009", "0018", "0019"), ("mlx5_0", "mlx5_1", "mlx5_3", "mlx5_4"), strict=True)
    ):
        assert f"GPU{k} ({address}:01:00.0)->{nic}" in affinity, affinity
    assert "NVLink-C2C by design" in affinity
    assert by_check["pcie-acs"].status == "skip" and "no GPU shares a PCIe switch" in by_check["pcie-acs"].reason
    # The same tree on a switch design's profile is still failed: the C2C judgement comes from the GB200s' own
    # PCI device id, not from a looser check (an HGX node's NIC on a root port fails as before).
    moved = node_designs.nic_on_other_socket(DESIGNS["h200"], "mlx5_5")
    status, lines = _health(_tree(tmp_path, moved), moved)
    assert status == 1 and any("FAIL gpu-nic-affinity: GPU5" in line for line in lines), lines


@pytest.mark.parametrize("gpu_numa", [(0, 0, 1, 1), (2, 10, 18, 26)], ids=["cpu-nodes", "gpu-memory-nodes"])
def test_the_gb200_pairs_are_the_trays_own_whichever_numa_node_sysfs_gives_its_gpus(
    tmp_path: Path, gpu_numa: tuple[int, ...]
) -> None:
    # sysfs may give a C2C GPU its Grace's node or its own memory's (sglang#11208's "GPU NUMA ID" 2, 10, 18, 26):
    # either way GPU k leaves through the NIC nvidia-resiliency-ext#152 maps to it, and nothing fails.
    tray = DESIGNS["gb200"]
    gpus = tuple(replace(g, numa=n) for g, n in zip(tray.spec.gpus, gpu_numa, strict=True))
    design = replace(tray, spec=replace(tray.spec, gpus=gpus))
    root = _tree(tmp_path, design)
    answers = run_checks(
        HealthConfig(design.profile, sysfs_root=root, error_window_s=0.1), load_profile(design.profile)
    )
    affinity = next(r for r in answers.answers if r.check == "gpu-nic-affinity")
    assert affinity.status == "pass", affinity
    for k, nic in enumerate(("mlx5_0", "mlx5_1", "mlx5_3", "mlx5_4")):
        assert re.search(rf"GPU{k} \([0-9a-f:.]+\)->{nic} ", affinity.reason), affinity.reason
    assert not [r for r in answers.answers if r.status in ("fail", "warn")]


def test_the_same_tray_with_gpus_that_are_not_superchips_fails_affinity(tmp_path: Path) -> None:
    # The C2C judgement is the GPU's own (its PCI device id), not a looser check: H200s (0x2335) placed as a
    # tray's GPUs, each alone under a root port with no NIC below it, are 4 GPUs far from their NICs.
    tray = DESIGNS["gb200"]
    gpus = tuple(replace(g, device_id=0x2335) for g in tray.spec.gpus)
    design = replace(tray, spec=replace(tray.spec, gpus=gpus))
    status, lines = _health(_tree(tmp_path, design), design)
    failed = [line for line in lines if " FAIL gpu-nic-affinity: " in line]
    assert status == 1 and len(failed) == 4, lines
    assert all("expected PIX or PXB" in line and "; action: " in line for line in failed)


def test_two_gpus_on_one_rail_nic_while_another_carries_none_warn(tmp_path: Path) -> None:
    # GPU 5 seated behind GPU 4's switch: both are PIX to mlx5_4, and mlx5_5 has no GPU near it. NCCL sends both
    # GPUs' rails through mlx5_4 (half the network each); a tie NCCL spreads one GPU per NIC warns nothing (the
    # HGX B200 and GB200 trees above).
    design = DESIGNS["h200"]
    gpus = list(design.spec.gpus)
    gpus[5] = replace(gpus[5], chain=("pci0000:90", "0000:90:01.0", "0000:91:00.0", "0000:92:02.0", "0000:97:00.0"))
    moved = replace(design, spec=replace(design.spec, gpus=tuple(gpus)))
    status, lines = _health(_tree(tmp_path, moved), moved)
    assert status == 0, lines
    warned = [line for line in lines if " WARN gpu-nic-affinity: " in line]
    assert warned and "GPUs share rail NIC mlx5_4 while mlx5_5 carries no GPU" in warned[0], lines
    assert "; action: " in warned[0]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_fault_is_named_with_its_part_and_action_in_health_check_and_the_drain_reason(
    tmp_path: Path, fault: Fault
) -> None:
    root = _tree(tmp_path, fault.design)
    status, lines = _health(root, fault.design)
    failed = [line for line in lines if " FAIL " in line and line.count(":") > 1]
    assert status == 1 and failed, lines
    assert all(f" FAIL {fault.check}: " in line for line in failed), failed
    line = next(line for line in failed if fault.part in line)
    for word in fault.words:
        assert word in line, (word, line)
    assert all("; action: " in failure and "tray01" in failure.split("; action: ")[1] for failure in failed)
    # check prints the same finding with its action on the line under it.
    proc = railbench_inline(
        ["check", "--profile", fault.design.profile, "--sysfs-root", str(root)], env=_env(fault.design)
    )
    out = proc.stdout.splitlines()
    fails = [i for i, text in enumerate(out) if text.lstrip().startswith("FAIL ")]
    assert proc.returncode == 1 and fails, proc.stdout
    assert all(out[i + 1].strip().startswith("action: ") for i in fails), proc.stdout
    # The drain reason keeps the part and the whole action, shortening the finding between them.
    profile = load_profile(fault.design.profile)
    answers = run_checks(
        HealthConfig(fault.design.profile, node="tray01", sysfs_root=root, error_window_s=0.1), profile
    )
    # an answer that opens with its device gives its words apart (CheckResult.said): the drain reason, which
    # names the device itself, takes them whole and never cuts them from the reason
    opened = [r for r in answers.answers if r.device and r.reason.startswith(f"{r.device}: ")]
    assert all(r.said == r.reason[len(r.device or "") + 2 :] for r in opened), opened
    faults, _ = drain.check_faults("tray01", findings(answers), profile.actions)
    reason = drain.reason(faults)
    key = f"railbench[check:{fault.check}/{fault.check}]"
    assert len(reason) <= drain.MAX_REASON_CHARS and reason.startswith(f"{key} {fault.check} ")
    assert len(reason) - len(key) - 1 <= drain.MAX_SENTENCE_CHARS
    assert faults[0].part in reason and faults[0].action in reason, reason


def test_health_judges_captured_nvidia_smi_and_kernel_log(tmp_path: Path) -> None:
    # health reads another node's nvidia-smi and kernel log as check does: GPU 2 of an H200 node fell off the bus.
    design = DESIGNS["h200"]
    root = _tree(tmp_path, design)
    gpus = [docs.SmiGpuSpec(0x15 + 0x20 * k, name="NVIDIA H200") for k in range(8)]
    smi, links = tmp_path / "smi.xml", tmp_path / "nvlink.txt"
    smi.write_text(docs.smi_xml(gpus))
    links.write_text(docs.nvlink_status(gpus))
    log = tmp_path / "kern.log"
    log.write_text(docs.kernel_log(docs.KernelLog(host="tray01")))
    status, lines = _health(root, design, "--nvidia-smi", str(smi), str(links), "--kernel-log", str(log))
    assert status == 0, lines
    answers = run_checks(
        HealthConfig(design.profile, sysfs_root=root, kernel_log=log, nvidia_smi=(smi, links), error_window_s=0.1),
        load_profile(design.profile),
    )
    judged = {r.check: r.status for r in answers.answers}
    assert judged["gpu-ecc"] == judged["nvlink"] == judged["gpu-xid"] == "pass", judged
    event = docs.XidLine(0x55, 79, docs.XID_MESSAGES[79])
    log.write_text(docs.kernel_log(docs.KernelLog(host="tray01", events=(event,))))
    status, lines = _health(root, design, "--nvidia-smi", str(smi), "--kernel-log", str(log))
    failed = [line for line in lines if " FAIL gpu-xid: " in line]
    assert status == 1 and failed and "79" in failed[0] and "; action: " in failed[0], lines


@pytest.mark.parametrize("flag", ["--kernel-log", "--nvidia-smi"])
def test_a_missing_captured_input_is_bad_input_in_one_line(tmp_path: Path, flag: str) -> None:
    proc = railbench_inline(
        ["health", "--profile", "h200", "--sysfs-root", str(tmp_path), flag, str(tmp_path / "nope")]
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert flag in proc.stderr and "Traceback" not in proc.stderr


MATRICES = {
    # design: (corpus file of a real node of that shape, its NIC columns that are the rails, in GPU order)
    "h200": ("topo_h100_8gpu_8nic_2numa_sglang30401.txt", tuple(range(8))),
    "roce": ("topo_h100_8gpu_8nic_2numa_sglang30401.txt", tuple(range(8))),
    "hgx-b200": ("topo_b300_8gpu_tabs_ansi_remnant_mlx5_10_17_sglang26039.txt", tuple(range(8))),
}


def _matrix(path: Path, gpus: int, rails: tuple[int, ...]) -> list[list[str]]:
    """The GPU x rail part of an ``nvidia-smi topo -m`` matrix: the cells after each GPU row's GPU columns."""
    rows = [line.split() for line in path.read_text().splitlines() if re.match(r"GPU[0-9]+\s", line)]
    return [[row[1 + gpus + j] for j in rails] for row in rows[:gpus]]


@pytest.mark.parametrize("name", list(MATRICES))
def test_each_switch_design_places_its_gpus_and_rails_as_a_real_node_of_that_shape(tmp_path: Path, name: str) -> None:
    # The fixture's GPU x rail distances (bench.fabric.topology, as nvidia-smi topo -m reckons them) are those
    # a real node of the shape printed: PIX (H100 SXM, sglang#30401) or PXB (HGX B300, sglang#26039) to its own
    # rail, NODE to the other rails of its socket, SYS across sockets.
    corpus_file, rails = MATRICES[name]
    path = CORPUS / corpus_file
    if not path.is_file():
        pytest.skip(f"corpus file {corpus_file} absent")
    design = DESIGNS[name]
    root = _tree(tmp_path, design)
    sysfs = Sysfs(root)
    gpus = sysfs_gpus(sysfs)
    by_name = {d.name: d for d in ib_devices(sysfs)}
    names = node_designs.ROCE_RAILS if name == "roce" else tuple(f"mlx5_{k}" for k in range(8))
    nics = [by_name[n] for n in names]
    ours = [[distance(g.pci_path, g.numa_node, n.pci_path, n.numa_node) for n in nics] for g in gpus]
    assert ours == _matrix(path, 8, rails)


def test_the_hgx_b200_on_dma_buf_is_judged_from_its_kernel_log_not_warned(tmp_path: Path) -> None:
    """HGX B200 nodes run GPUDirect RDMA over DMA-BUF (no nvidia_peermem). On a copied tree the kernel that
    makes DMA-BUF possible is read from the log's boot banner (Linux 5.15 >= 5.12): gpu-peer-memory passes
    and health passes with no warning about it; without the log it can only warn, never pass or fail."""
    design = DESIGNS["hgx-b200"]
    root = _tree(tmp_path, design)
    log = tmp_path / "kern.log"
    log.write_text(docs.kernel_log(docs.KernelLog(host="tray01")))
    profile = load_profile(design.profile)
    with_log = run_checks(HealthConfig(design.profile, sysfs_root=root, kernel_log=log, error_window_s=0.1), profile)
    peer = [r for r in with_log.answers if r.check == "gpu-peer-memory"]
    assert [r.status for r in peer] == ["pass"] and "5.15" in peer[0].reason, peer
    status, lines = _health(root, design, "--kernel-log", str(log))
    assert status == 0 and not [line for line in lines if "gpu-peer-memory" in line and " WARN " in line], lines
    without = run_checks(HealthConfig(design.profile, sysfs_root=root, error_window_s=0.1), profile)
    assert [r.status for r in without.answers if r.check == "gpu-peer-memory"] == ["warn"]
