"""A drain budget (issue 42): ``railbench health`` drains no healthy node. Every healthy node of the verbatim
corpus (``tests/data/wild``: its manifests say which) and every healthy design fixture
(``tests/support/trees/node_designs.py``) passes health end to end with nothing drained; every unhealthy corpus node
fails, its FAIL line naming the GPU and carrying the action, and the drain reason keeps both.

Which corpus node is healthy is read from the manifests, never listed here: an ``nvidia-smi -q -x`` whose every GPU
verdict (gpu-ecc, gpu-clocks, fabric-manager) is pass, warn or skip and whose GPUs run without MIG (MIG instances
have no NVLink or peer path, which the nvlink check fails); an ``nvidia-smi nvlink -s`` with no fault; a kernel log
with no event of severity fail. Warnings drain nothing (``bench.slurm.drain``), so a warned node is healthy here.
Each node's tree holds NVIDIA GPUs at the file's own PCI addresses (``fabric_trees.build`` with each GPU's chain),
with one socket rail, under a profile that expects that many GPUs: the corpus nodes are cloud and workstation
GPUs (A10G, T4, K80...) with no rail NIC to pair them with."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bench.health.config import HealthConfig
from bench.health.node import findings, run_checks
from bench.preflight.checks import CheckResult
from bench.profile.cluster import load_profile
from bench.slurm import drain
from tests.support import railbench_inline
from tests.support.trees import fabric_trees, node_designs
from tests.support.trees import gpu_state_docs as docs
from tests.support.trees.fabric_trees import GpuSpec, NetSpec, NodeSpec
from tests.support.trees.node_designs import DESIGNS, Design
from tests.support.wild.manifest import WILD, Case, cases

NODE = "n01"
SMI_VERDICTS = ("gpu_ecc", "gpu_clocks", "fabric_manager")
"""The per-GPU check verdicts an ``nvidia-smi-xml`` manifest holds."""
CAPTURED_GPU_CHECKS = ("gpu-ecc", "gpu-clocks", "nvlink", "gpu-xid", "gpu-peer-memory")


@dataclass(frozen=True)
class CorpusNode:
    """One corpus file as a node: its GPUs' PCI addresses, the flag that gives the file, and the GPUs (their
    addresses) a correct health check fails, empty for a healthy node."""

    case: Case
    flag: str
    gpus: tuple[str, ...]
    failed: tuple[str, ...]
    judged: tuple[str, ...]
    """The checks the file lets health judge (pass or warn, never skip) on a healthy node."""

    @property
    def id(self) -> str:
        return self.case.id


def _smi_nodes() -> list[CorpusNode]:
    out = []
    for case in cases(WILD / "nvidia-smi-xml"):
        gpus = case.expect["gpus"]
        assert isinstance(gpus, list)
        failed = tuple(g["pci"] for g in gpus if "fail" in (g[v] for v in SMI_VERDICTS) or g.get("mig") == "Enabled")
        judged = tuple(v.replace("_", "-") for v in SMI_VERDICTS if any(g[v] != "skip" for g in gpus))
        out.append(CorpusNode(case, "--nvidia-smi", tuple(g["pci"] for g in gpus), failed, ("gpu-count", *judged)))
    return out


def _nvlink_address(index: int) -> str:
    """``nvlink -s`` names GPUs by index, not address: GPU k sits at the fixture trees' bus 0x13 + 0x20 k."""
    return f"0000:{docs.GPU_BUSES[index]:02x}:00.0"


def _nvlink_nodes() -> list[CorpusNode]:
    out = []
    for case in cases(WILD / "nvlink-status"):
        if case.expect.get("kind") != "nvidia-smi nvlink -s":
            continue  # nvlink -i and -R print no link state to judge
        gpus, faults = case.expect["gpus"], case.expect["faults"]
        assert isinstance(gpus, list) and isinstance(faults, list)
        count = max(g["index"] for g in gpus) + 1
        addresses = tuple(_nvlink_address(k) for k in range(count))
        judged = () if case.expect["no_nvlink"] else ("nvlink",)  # GPUs with no NVLink leave nothing to judge
        out.append(
            CorpusNode(case, "--nvidia-smi", addresses, tuple(_nvlink_address(f["gpu"]) for f in faults), judged)
        )
    return out


def _kernel_log_nodes() -> list[CorpusNode]:
    out = []
    for case in cases(WILD / "kernel-log"):
        events = case.expect.get("events", [])
        assert isinstance(events, list)
        gpu_events = [e for e in events if e["kind"] in ("Xid", "bus")]  # an SXid's device is an NVSwitch
        # A log whose events are all NVSwitches' still comes from a GPU node: one GPU, at an address no event names.
        addresses = tuple(dict.fromkeys(f"{e['device']}.0" for e in gpu_events)) or ("0000:18:00.0",)
        failed = tuple(dict.fromkeys(f"{e['device']}.0" for e in gpu_events if e["severity"] == "fail"))
        out.append(CorpusNode(case, "--kernel-log", addresses, failed, ("gpu-xid",)))
    return out


CORPUS_NODES = _smi_nodes() + _nvlink_nodes() + _kernel_log_nodes()
HEALTHY = [n for n in CORPUS_NODES if not n.failed]
UNHEALTHY = [n for n in CORPUS_NODES if n.failed]


def _corpus_tree(root: Path, addresses: tuple[str, ...]) -> Path:
    """NVIDIA GPUs at ``addresses`` (each below its domain's host bridge, as a VM's or a workstation's GPU), one
    Ethernet interface as the node's one socket rail, no RDMA device."""
    gpus = tuple(GpuSpec(k, chain=(f"pci{a[:4]}:{a[5:7]}", a)) for k, a in enumerate(addresses))
    nets = (NetSpec("lo", operstate="unknown", kind="loopback"), NetSpec("eth0"))
    return fabric_trees.build(root, NodeSpec((), gpus, nets))


def _profile(path: Path, gpus: int) -> Path:
    """bench/profile/shipped/generic.toml's node on one socket rail, expecting ``gpus`` GPUs."""
    path.write_text(
        f'name = "corpus-node"\ndescription = "a node of the verbatim corpus"\ntransport = "socket"\n'
        f'gpus_per_node = {gpus}\npass_fraction = 0.9\n[rails]\ncount = 1\nlink_layer = "Ethernet"\n'
        'names = ["eth0"]\n[network]\nsocket_ifnames = "=eth0"\n[errors]\nwindow_s = 0.1\n'
    )
    return path


def _health(root: Path, profile: str, inputs: list[str]) -> tuple[int, list[str]]:
    args = ["health", "--profile", profile, "--sysfs-root", str(root), "--node", NODE, "--error-window", "0.1"]
    proc = railbench_inline([*args, *inputs])
    assert not proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def _faults(config: HealthConfig) -> tuple[list[drain.NodeFault], list[CheckResult]]:
    """What ``--drain`` would drain the node for: the drain policy on health's findings."""
    profile = load_profile(config.profile)
    answers = run_checks(config, profile)
    faults, _ = drain.check_faults(NODE, findings(answers), profile.actions)
    return faults, list(answers.answers)


def _corpus_run(tmp_path: Path, node: CorpusNode) -> tuple[int, list[str], HealthConfig]:
    root = _corpus_tree(tmp_path / "sys", node.gpus)
    profile = str(_profile(tmp_path / "corpus-node.toml", len(node.gpus)))
    status, lines = _health(root, profile, [node.flag, str(node.case.file)])
    config = HealthConfig(profile, node=NODE, sysfs_root=root, error_window_s=0.1)
    if node.flag == "--nvidia-smi":
        config = replace(config, nvidia_smi=(node.case.file,))
    else:
        config = replace(config, kernel_log=node.case.file)
    return status, lines, config


def test_the_manifests_hold_healthy_and_unhealthy_nodes_of_each_reader() -> None:
    # The budget is only tested if both sides are there: a manifest change that left one side empty would pass
    # every parametrized test below by running none.
    for flag in ("--nvidia-smi", "--kernel-log"):
        assert [n for n in HEALTHY if n.flag == flag] and [n for n in UNHEALTHY if n.flag == flag]
    assert {n.case.folder for n in HEALTHY} == {"nvidia-smi-xml", "nvlink-status", "kernel-log"}


@pytest.mark.parametrize("node", HEALTHY, ids=[n.id for n in HEALTHY])
def test_a_healthy_corpus_node_passes_health_with_nothing_drained(tmp_path: Path, node: CorpusNode) -> None:
    status, lines, config = _corpus_run(tmp_path, node)
    assert status == 0 and not [line for line in lines if " FAIL " in line], lines
    assert lines[-1].startswith(f"railbench health {NODE}: PASS"), lines
    faults, answers = _faults(config)
    assert faults == [], faults
    # Judged, not waved through: the file's own check answered (the GPUs were found at its addresses).
    for check in node.judged:
        assert any(r.check == check and r.status in ("pass", "warn") for r in answers), (check, answers)


@pytest.mark.parametrize("node", UNHEALTHY, ids=[n.id for n in UNHEALTHY])
def test_an_unhealthy_corpus_node_fails_naming_its_gpu_and_action(tmp_path: Path, node: CorpusNode) -> None:
    status, lines, config = _corpus_run(tmp_path, node)
    failed = [line for line in lines if " FAIL " in line and line.count(":") > 2]
    assert status == 1 and failed, lines
    assert all("; action: " in line for line in failed), failed
    for address in node.failed:
        assert any(f"({address})" in line.split("; action: ")[0] for line in failed), (address, failed)
    faults, _ = _faults(config)
    assert faults, "a failed GPU drains its node"
    reason = drain.reason(faults)
    assert len(reason) <= drain.MAX_REASON_CHARS, reason
    assert reason.startswith(f"{faults[0].key.token} "), reason
    assert len(reason) - len(faults[0].key.token) - 1 <= drain.MAX_SENTENCE_CHARS, reason
    assert faults[0].part in reason and faults[0].action in reason, reason
    assert any(address in reason for address in node.failed), reason


# ---------------------------------------------------------------------------------------------------------
# the design fixtures with healthy captured inputs

GPU_NAMES = {0x2941: "NVIDIA GB200", 0x2901: "NVIDIA B200", 0x2335: "NVIDIA H200", 0x2330: "NVIDIA H100 80GB HBM3"}
"""PCI device id -> the product name nvidia-smi prints for it (the corpus' own GB200, B200 and H100 outputs)."""


def _captured(tmp_path: Path, design: Design) -> tuple[Path, Path, Path]:
    """A healthy ``nvidia-smi -q -x`` and ``nvlink -s`` of the design's GPUs at its tree's addresses, and a kernel
    log of this boot (its banner: Linux 5.15) with no Xid."""
    specs = []
    for gpu in design.spec.gpus:
        address = fabric_trees._gpu_chain(gpu)[-1]
        domain, bus = int(address[:4], 16), int(address[5:7], 16)
        specs.append(docs.SmiGpuSpec(bus, name=GPU_NAMES[gpu.device_id], domain=domain))
    smi, links, log = tmp_path / "smi.xml", tmp_path / "nvlink.txt", tmp_path / "kern.log"
    smi.write_text(docs.smi_xml(specs))
    links.write_text(docs.nvlink_status(specs))
    log.write_text(docs.kernel_log(docs.KernelLog(host=NODE)))
    return smi, links, log


@pytest.mark.parametrize("name", list(DESIGNS))
def test_a_healthy_design_with_healthy_captured_inputs_passes_with_its_gpus_judged(tmp_path: Path, name: str) -> None:
    design = DESIGNS[name]
    root = node_designs.build(tmp_path / "sys", design)
    smi, links, log = _captured(tmp_path, design)
    status, lines = _health(root, design.profile, ["--nvidia-smi", str(smi), str(links), "--kernel-log", str(log)])
    assert status == 0 and not [line for line in lines if " FAIL " in line or " WARN " in line], lines
    config = HealthConfig(
        design.profile, node=NODE, sysfs_root=root, kernel_log=log, nvidia_smi=(smi, links), error_window_s=0.1
    )
    faults, answers = _faults(config)
    assert faults == [], faults
    by_check = {r.check: r.status for r in answers}
    for check in CAPTURED_GPU_CHECKS:
        assert by_check.get(check) == "pass", (check, by_check)


def test_one_gpu_held_down_by_its_power_brake_fails_health_and_drains(tmp_path: Path) -> None:
    # The converse of the pass above for gpu-clocks: a GPU whose clocks a power brake holds down at idle is a
    # fault of the node (its cooling or power), drained with its address and the action.
    design = DESIGNS["h200"]
    root = node_designs.build(tmp_path / "sys", design)
    smi, links, log = _captured(tmp_path, design)
    specs = [docs.SmiGpuSpec(docs.GPU_BUSES[k] + 2, name="NVIDIA H200") for k in range(8)]
    specs[3] = replace(specs[3], active_events=("hw_slowdown", "hw_power_brake_slowdown"))
    smi.write_text(docs.smi_xml(specs))
    status, lines = _health(root, design.profile, ["--nvidia-smi", str(smi), str(links), "--kernel-log", str(log)])
    failed = [line for line in lines if " FAIL gpu-clocks: " in line]
    assert status == 1 and len(failed) == 1 and specs[3].pci.lower()[4:] in failed[0].lower(), lines
    assert "; action: check the cooling and power" in failed[0]
