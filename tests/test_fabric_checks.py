"""``railbench check`` on sysfs fixture trees: the verdict and the device it names, plus topology and profiles."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.fabric import topology
from bench.fabric.rail_nics import node_rail_nics
from bench.fabric.sysfs import Sysfs, nvidia_gpus
from bench.preflight import checks
from bench.profile.cluster import load_profile
from tests.support import REPO, railbench
from tests.support.trees import fabric_trees
from tests.support.trees.fabric_trees import CASES, Case, NetSpec, NodeSpec

GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sysfs")
    return {case.name: fabric_trees.build(base / case.name, case.spec) for case in CASES}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check_lambda_1cc_verdict_names_the_device(trees: dict[str, Path], case: Case) -> None:
    proc = railbench(["check", "--profile", "lambda-1cc", "--sysfs-root", str(trees[case.name])], env=GOOD_ENV)
    assert proc.returncode == (0 if case.verdict == "pass" else 1), proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(f"verdict: {case.verdict.upper()}")
    failing = [line for line in proc.stdout.splitlines() if line.lstrip().startswith("FAIL")]
    if case.device is None:
        assert failing == []
    else:
        assert any(case.device in line and all(w in line for w in case.words) for line in failing), proc.stdout


def test_unset_nccl_ib_hca_on_a_1cc_fails_naming_mlx5_0(trees: dict[str, Path]) -> None:
    results = checks.run_checks(load_profile("lambda-1cc"), trees["healthy"], (), {})
    hca = next(r for r in results if r.check == "nccl-ib-hca")
    assert hca.status == "fail" and hca.device == "mlx5_0:1"
    assert "NCCL_IB_HCA unset" in hca.reason and "set NCCL_IB_HCA='^=mlx5_0'" in hca.reason
    socket = next(r for r in results if r.check == "nccl-socket-ifname")
    assert socket.status == "warn" and "'=eno1'" in socket.reason
    for value, device in (("^mlx5_1", "mlx5_0:1"), ("=^mlx5_0", "mlx5_1:1"), ("^=mlx5_8,^=mlx5_14", "mlx5_0:1")):
        results = checks.run_checks(load_profile("lambda-1cc"), trees["healthy"], (), {"NCCL_IB_HCA": value})
        result = next(r for r in results if r.check == "nccl-ib-hca")
        assert (result.status, result.device) == ("fail", device), result


@pytest.mark.slow
def test_check_json_and_bond_fix_suggestion(trees: dict[str, Path]) -> None:
    proc = railbench(["check", "--profile", "lambda-1cc", "--sysfs-root", str(trees["bond"]), "--json"], env=GOOD_ENV)
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "fail" and len(doc["nodes"]) == 1 and doc["cross_node"] == []
    by_check = {(r["check"], r["status"]): r for r in doc["nodes"][0]["results"]}
    assert "NCCL_IB_HCA='^=mlx5_0,mlx5_bond_0'" in by_check[("nccl-ib-hca", "fail")]["reason"]
    assert by_check[("rail-count", "warn")]["device"] == "mlx5_bond_0:1"
    assert doc["nodes"][0]["versions"]["driver"] == "550.54.15"


def test_checks_that_cannot_apply_say_skip(tmp_path: Path) -> None:
    root = fabric_trees.build(tmp_path / "nogpu", replace(fabric_trees.healthy_1cc(), gpus=()))
    results = {r.check: r for r in checks.run_checks(load_profile("lambda-1cc"), root, (), GOOD_ENV)}
    # the count is a fact (issue 42): no GPU where the profile expects 8 fails, as NHC's GPU count check does
    assert results["gpu-count"].status == "fail" and results["gpu-count"].reason.startswith("0 of 8 GPUs")
    assert results["gpu-nic-affinity"].status == "skip"
    assert results["nccl-log"].status == "skip"
    assert checks.verdict([r for r in results.values() if r.check != "gpu-count"]) == "pass"
    empty = checks.run_checks(load_profile("lambda-1cc"), tmp_path, (), GOOD_ENV)
    assert [r.status for r in empty if r.check == "ib-devices"] == ["fail"]
    assert {r.status for r in empty if r.check in ("rail", "rail-count", "nccl-ib-hca")} == {"skip"}
    local = checks.run_checks(load_profile("local"), tmp_path, (), {})
    assert {r.status for r in local} == {"skip"} and checks.verdict(local) == "skip"  # nothing checked: never pass


def test_socket_profile_rails(tmp_path: Path) -> None:
    nets = [NetSpec("eth0", speed_mbps=10000)]
    nets += [NetSpec(f"eth{k}", speed_mbps=200000) for k in range(1, 9)]
    nets[5] = NetSpec("eth5", operstate="down")
    # a RunPod node: its 8 GPUs on the bus (the profile counts them), socket rails, no RDMA device
    node = NodeSpec(hcas=(), gpus=fabric_trees.healthy_1cc().gpus, nets=tuple(nets))
    root = fabric_trees.build(tmp_path / "runpod", node)
    profile = load_profile("runpod-instant")
    results = checks.run_checks(profile, root, (), {"NCCL_SOCKET_IFNAME": "eth"})
    failing = {(r.check, r.device) for r in results if r.status == "fail"}
    assert failing == {("socket-rail", "eth5"), ("nccl-socket-ifname", "eth0")}
    good = checks.run_checks(profile, root, (), dict(profile.recommended_env))
    assert {r.device for r in good if r.status == "fail"} == {"eth5"}
    assert checks.expected_rails(profile, root) == [f"eth{k}" for k in range(1, 9)]
    assert checks.expected_rails(load_profile("local"), root) == []


def test_expected_rails_on_a_1cc(trees: dict[str, Path]) -> None:
    one_cc = load_profile("lambda-1cc")
    assert checks.expected_rails(one_cc, trees["bond"]) == [f"mlx5_{k}:1" for k in range(1, 9)]
    assert checks.expected_rails(one_cc, trees["missing-rail"]) == [f"mlx5_{k}:1" for k in (1, 2, 3, 5, 6, 7, 8)]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        (
            ("pci0000:10", "0000:10:01.0", "0000:11:00.0", "0000:12:00.0", "0000:13:00.0"),
            ("pci0000:10", "0000:10:01.0", "0000:11:00.0", "0000:12:01.0", "0000:14:00.0"),
            "PIX",
        ),
        (
            (
                "pci0000:10",
                "0000:10:01.0",
                "0000:11:00.0",
                "0000:12:00.0",
                "0000:13:00.0",
                "0000:14:00.0",
                "0000:15:00.0",
            ),
            (
                "pci0000:10",
                "0000:10:01.0",
                "0000:11:00.0",
                "0000:12:01.0",
                "0000:16:00.0",
                "0000:17:00.0",
                "0000:18:00.0",
            ),
            "PXB",
        ),
        (("pci0000:10", "0000:10:01.0", "0000:11:00.0"), ("pci0000:10", "0000:10:02.0", "0000:12:00.0"), "PHB"),
        (("pci0000:10", "0000:10:01.0"), ("pci0000:30", "0000:30:01.0"), "NODE"),
    ],
)
def test_pci_distance(a: tuple[str, ...], b: tuple[str, ...], distance: str) -> None:
    assert topology.distance(a, 0, b, 0) == distance
    assert topology.distance(a, 0, b, 1) == (distance if distance != "NODE" else "SYS")


def test_gpus_from_sysfs_pair_with_their_rail(trees: dict[str, Path]) -> None:
    sysfs = Sysfs(trees["healthy"])
    gpus = topology.gpus(sysfs)
    assert [g.model for g in gpus] == ["NVIDIA H100 80GB HBM3"] * 8 and {g.source for g in gpus} == {"sysfs"}
    assert [g.numa_node for g in gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    found = node_rail_nics(sysfs, "^=mlx5_0")  # the one mapping rails, accept and check use
    assert [(found[g.pci_address or ""].nic, found[g.pci_address or ""].distance) for g in gpus] == [
        (f"mlx5_{k}:1", "PIX") for k in range(1, 9)
    ]


def test_node_env_adds_the_ip_interface(trees: dict[str, Path]) -> None:
    env = checks.node_env(load_profile("lambda-1cc"), trees["healthy"])
    assert env == {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_IB_PCI_RELAXED_ORDERING": "1", "NCCL_SOCKET_IFNAME": "=eno1"}
    assert checks.node_env(load_profile("local"), trees["healthy"]) == {"GLOO_SOCKET_IFNAME": "lo"}


@pytest.mark.slow
def test_check_never_imports_torch_without_gpus() -> None:
    code = (
        "import sys; from bench.cli import main; rc = main(['check', '--profile', 'lambda-1cc']); "
        "sys.exit(99 if 'torch' in sys.modules else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_gpus_are_counted_on_the_pci_bus_not_by_what_this_process_sees(tmp_path: Path) -> None:
    # NVSwitches and the audio function carry NVIDIA's vendor id and the BMC's VGA is a display class: only
    # the 3D controllers from NVIDIA are GPUs. A rank with CUDA_VISIBLE_DEVICES=3 still checks all 8.
    root = fabric_trees.build(tmp_path / "hgx", fabric_trees.hgx_with_other_pci())
    gpus = topology.gpus(Sysfs(root))
    assert len(gpus) == 8 and [g.pci_address for g in gpus] == sorted(g.pci_address for g in gpus)
    assert [g.numa_node for g in gpus] == [0, 0, 0, 0, 1, 1, 1, 1] and all(g.pci_path for g in gpus)
    proc = railbench(
        ["check", "--profile", "lambda-1cc", "--sysfs-root", str(root), "--json"],
        env={**GOOD_ENV, "CUDA_VISIBLE_DEVICES": "3"},
    )
    results = {r["check"]: r for r in json.loads(proc.stdout)["nodes"][0]["results"]}
    assert results["gpu-count"]["status"] == "pass" and results["gpu-count"]["reason"].startswith("8 GPUs")
    assert results["gpu-nic-affinity"]["status"] == "pass", results["gpu-nic-affinity"]


def test_torch_names_every_gpu_with_the_same_device_id(tmp_path: Path) -> None:
    # One GPU visible to this rank (srun --gpus-per-task=1) names all 8, even a model the table does not know.
    root = fabric_trees.build(tmp_path / "new", fabric_trees.hgx_with_other_pci(gpu_device_id=0x2999))
    on_bus = nvidia_gpus(Sysfs(root))
    assert [g.model for g in topology.named_gpus(on_bus, {})] == ["NVIDIA GPU 0x2999"] * 8
    seen = {on_bus[5].address: "NVIDIA B300 SXM6"}
    named = topology.named_gpus(on_bus, seen)
    assert [g.model for g in named] == ["NVIDIA B300 SXM6"] * 8 and [g.index for g in named] == list(range(8))


def test_gpu_numbers_follow_pci_bus_order_on_hgx_h100_bus_numbers(tmp_path: Path) -> None:
    # CUDA (CUDA_DEVICE_ORDER=PCI_BUS_ID) and nvidia-smi call the GPU at 0000:18:00.0 GPU 0 on an HGX H100; a
    # natural (digit-run) sort of the addresses put 0000:2a:00.0 first and called 18 GPU 4.
    root = fabric_trees.build(tmp_path / "hgx", fabric_trees.hgx_h100_buses())
    expected = [f"0000:{bus:02x}:00.0" for bus in fabric_trees.HGX_H100_GPU_BUSES]
    assert [g.address for g in nvidia_gpus(Sysfs(root))] == expected
    assert [(g.index, g.pci_address) for g in topology.gpus(Sysfs(root))] == list(enumerate(expected))
    proc = railbench(["check", "--profile", "lambda-1cc", "--sysfs-root", str(root), "--json"], env=GOOD_ENV)
    results = {r["check"]: r for r in json.loads(proc.stdout)["nodes"][0]["results"]}
    affinity = results["gpu-nic-affinity"]
    assert affinity["status"] == "pass", affinity
    # GPU k shares PCIe switch k with rail NIC mlx5_{k+1}: the number, its address and its NIC agree.
    for k, address in enumerate(expected):
        assert f"GPU{k} ({address})->mlx5_{k + 1}" in affinity["reason"], affinity["reason"]
