"""Issue 42: ``--ibv-devinfo FILE`` gives ``check`` and ``health`` an InfiniBand port's active MTU on a copied tree.

The port's active MTU is not in sysfs (``bench.fabric.devinfo``); the captured ``ibv_devinfo`` output of the node
stands in for the live command. The text here is written in the tool's own format, line for line as
``libibverbs/examples/devinfo.c`` (rdma-core) prints it: ``hca_id:\\t<name>``, ``\\t\\tport:\\t<n>``, then
``\\t\\t\\tstate:``, ``max_mtu:``, ``active_mtu:`` with the value and its enum in parentheses, ``link_layer:``.
The verbatim corpus of real outputs is ``tests/data/wild/ibv-devinfo`` where one exists; the shared corpus's
ibstat output is the other tool a user may hand in by mistake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.exits import UserError
from bench.fabric import devinfo
from tests.support import CORPUS, railbench_inline
from tests.support.trees import gpudirect_trees

GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}
MTU_ENUM = {256: 1, 512: 2, 1024: 3, 2048: 4, 4096: 5}


def _devinfo(mtus: dict[str, int]) -> str:
    """ibv_devinfo's text for single-port InfiniBand HCAs at the given active MTUs."""
    out = []
    for hca, mtu in mtus.items():
        out += [
            f"hca_id:\t{hca}",
            "\ttransport:\t\t\tInfiniBand (0)",
            "\tphys_port_cnt:\t\t\t1",
            "\t\tport:\t1",
            "\t\t\tstate:\t\t\tPORT_ACTIVE (4)",
            "\t\t\tmax_mtu:\t\t4096 (5)",
            f"\t\t\tactive_mtu:\t\t{mtu} ({MTU_ENUM[mtu]})",
            "\t\t\tlink_layer:\t\tInfiniBand",
            "",
        ]
    return "\n".join(out)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gpudirect_trees.build(tmp_path_factory.mktemp("devinfo") / "node", *gpudirect_trees.healthy())


def _rails(mtu_of_4: int) -> dict[str, int]:
    return {f"mlx5_{k}": (mtu_of_4 if k == 4 else 4096) for k in range(9)}


def test_check_fails_a_port_below_the_profile_mtu_naming_it_and_the_action(tree: Path, tmp_path: Path) -> None:
    capture = tmp_path / "devinfo.txt"
    capture.write_text(_devinfo(_rails(2048)))
    argv = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--ibv-devinfo", str(capture)]
    proc = railbench_inline(argv, env=GOOD_ENV)
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("FAIL  port-mtu"))
    assert "mlx5_4:1 (InfiniBand: set by the subnet manager" in lines[at]
    assert "active MTU 2048 bytes, under the profile's 4096" in lines[at]
    assert lines[at + 1].strip().startswith("action: raise the active MTU of mlx5_4:1")
    assert sum("port-mtu" in line for line in lines if "FAIL" in line) == 1  # the other rails are at 4096


def test_health_judges_the_mtu_from_the_capture_and_passes_the_rails_at_4096(tree: Path, tmp_path: Path) -> None:
    capture = tmp_path / "devinfo.txt"
    capture.write_text(_devinfo(_rails(4096)))
    argv = ["health", "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--ibv-devinfo", str(capture)]
    healthy = railbench_inline(argv, env=GOOD_ENV)
    assert "port-mtu" not in healthy.stdout, healthy.stdout
    capture.write_text(_devinfo(_rails(1024)))
    low = railbench_inline(argv, env=GOOD_ENV)
    assert low.returncode == 1
    assert "FAIL port-mtu: mlx5_4:1 (InfiniBand" in low.stdout and "active MTU 1024 bytes" in low.stdout


def test_another_tools_output_is_one_line_and_exit_2(tree: Path, tmp_path: Path) -> None:
    ibstat = CORPUS / "ibstat_a100_8xHDR_ibpanic_gpud.txt"
    if not ibstat.is_file():
        pytest.skip("the shared corpus is not on this machine")
    for command in ("check", "health"):
        argv = [command, "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--ibv-devinfo", str(ibstat)]
        proc = railbench_inline(argv, env=GOOD_ENV)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "is ibstat's output, not ibv_devinfo's" in proc.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("no ports here\n")
    with pytest.raises(UserError, match="lists no port under an hca_id: line"):
        devinfo.read_file(empty)


def test_a_port_without_a_link_layer_line_has_none_read() -> None:
    """Some builds print no ``link_layer:`` line: ibv_devinfo of 2009, and a Soft-RoCE rxe0 of 2016 (an Ethernet
    port, tests/data/wild/ibv-devinfo); the output then does not say, and nothing is guessed."""
    old = ["hca_id: mlx4_0", "        fw_ver: 2.3.000", "                port:   1", "   active_mtu:  2048 (4)"]
    assert [(p.name, p.link_layer, p.active_mtu) for p in devinfo.ports(old)] == [("mlx4_0:1", None, 2048)]


def test_the_shared_corpus_captures_read_every_port() -> None:
    roce = CORPUS / "ibv_devinfo_h200_10xCX7_roce_plus_bond_deepep355.txt"
    if not roce.is_file():
        pytest.skip("the shared corpus is not on this machine")
    ports = devinfo.read_file(roce)
    assert {p.link_layer for p in ports} == {"Ethernet"} and all(p.state == "PORT_ACTIVE" for p in ports)
    assert {p.name: p.active_mtu for p in ports if p.active_mtu != 4096} == {"mlx5_bond_0:1": 1024}
