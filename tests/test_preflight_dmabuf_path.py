"""Issue 42 item 3: a node on the DMA-BUF path (the open GPU kernel module, Linux 5.12+, no ``nvidia_peermem``) is
not warned about when its kernel is known: from ``uname`` on the live node, from its kernel log's boot banner
(``--kernel-log``) for a copied tree, or from NCCL's own ``DMA-BUF is available on GPU device N``.

The open module's taint: ``/sys/module/nvidia/taint`` without ``P`` (Documentation/ABI/testing/sysfs-module:
``P`` proprietary, ``O`` out-of-tree, ``E`` unsigned); the open module is out of tree and unsigned: ``OE``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.preflight import checks
from bench.profile.cluster import load_profile
from tests.support import CORPUS, railbench_inline
from tests.support.trees import fabric_trees, gpudirect_trees
from tests.support.trees import gpu_state_docs as docs

GOOD_ENV = {"NCCL_IB_HCA": "^=mlx5_0", "NCCL_SOCKET_IFNAME": "=eno1"}
# This project's own lines in NCCL 2.27's INFO format (src/init.cc prints "DMA-BUF is available on GPU device N");
# the real wording is read from the shared corpus's NCCL 2.27.5 log in test_the_corpus_nccl_log_tells_it.
NCCL_LINES = """\
gpu-node07:41207:41207 [2] NCCL INFO Using network IB
gpu-node07:41206:41206 [1] NCCL INFO DMA-BUF is available on GPU device 1
gpu-node07:41206:41206 [1] NCCL INFO ncclCommInitRank comm 0x55d0c8e31a40 rank 1 nranks 16 cudaDev 1 \
nvmlDev 1 busId 2a000 commId 0x7c1d52a09e6b3f10 - Init START
"""
CORPUS_LOG = CORPUS / "nccl_log_h100_2node_roce_8rails_nccl2.27.5_ofi_fallback.txt"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A healthy 1CC node without nvidia_peermem whose GPU driver is NVIDIA's open kernel module."""
    root = gpudirect_trees.build(
        tmp_path_factory.mktemp("dmabuf") / "node", replace(fabric_trees.healthy_1cc(), peermem=False)
    )
    (root / "module" / "nvidia" / "taint").write_text("OE\n")
    return root


def _peer(tree: Path, kernel_log: Path | None = None, nccl: tuple[Path, ...] = ()) -> list[checks.CheckResult]:
    results = checks.run_checks(
        load_profile("lambda-1cc"),
        tree,
        nccl,
        env=GOOD_ENV,
        kernel_log=kernel_log,
        node="node07",
        only=["gpu-peer-memory"],
    )
    return [r for r in results if r.check == "gpu-peer-memory"]


def _log(tmp_path: Path, release: str) -> Path:
    """The kernel log ``tests.support.trees.gpu_state_docs`` writes (a syslog boot banner as Ubuntu prints it), at
    ``release``."""
    path = tmp_path / "kern.log"
    path.write_text(docs.kernel_log(docs.KernelLog()).replace("5.15.0-122-generic", release))
    return path


def test_without_the_kernel_a_copied_tree_warns_and_says_how_to_tell(tree: Path) -> None:
    found = _peer(tree)
    assert [r.status for r in found] == ["warn"]
    assert "--kernel-log" in found[0].reason and "--nccl-log" in found[0].reason


def test_the_kernel_logs_banner_tells_the_kernel(tree: Path, tmp_path: Path) -> None:
    found = _peer(tree, kernel_log=_log(tmp_path, "5.15.0-122-generic"))
    assert [r.status for r in found] == ["pass"], found
    assert "DMA-BUF: the open GPU kernel module on Linux 5.15.0-122-generic (the boot banner in" in found[0].reason


def test_a_kernel_older_than_5_12_in_the_banner_fails(tree: Path, tmp_path: Path) -> None:
    found = _peer(tree, kernel_log=_log(tmp_path, "4.18.0-553.el8_10.x86_64"))
    assert [r.status for r in found] == ["fail"]
    assert "on Linux 4.18.0-553.el8_10.x86_64" in found[0].reason and found[0].action


def test_nccls_own_dmabuf_line_tells_it(tree: Path, tmp_path: Path) -> None:
    log = tmp_path / "nccl.log"
    log.write_text(NCCL_LINES)
    found = _peer(tree, nccl=(log,))
    assert [r.status for r in found] == ["pass"], found
    assert found[0].reason == "DMA-BUF: NCCL on gpu-node07 said DMA-BUF is available on GPU device 1"


@pytest.mark.skipif(not CORPUS_LOG.is_file(), reason="the shared corpus is not beside this checkout")
def test_the_corpus_nccl_log_tells_it(tree: Path) -> None:
    assert [r.status for r in _peer(tree, nccl=(CORPUS_LOG,))] == ["pass"]


def test_the_proprietary_module_fails_whatever_nccl_says(tree: Path, tmp_path: Path) -> None:
    log = tmp_path / "nccl.log"
    log.write_text(NCCL_LINES)
    proprietary = tmp_path / "node"
    gpudirect_trees.build(proprietary, replace(fabric_trees.healthy_1cc(), peermem=False))
    assert [r.status for r in _peer(proprietary, nccl=(log,))] == ["fail"]


def test_check_command_line_passes_the_dmabuf_node_given_its_kernel_log(tree: Path, tmp_path: Path) -> None:
    args = ["check", "--profile", "lambda-1cc", "--sysfs-root", str(tree), "--kernel-log", str(_log(tmp_path, "6.8.0"))]
    done = railbench_inline(args, env=GOOD_ENV)
    peer = [line for line in done.stdout.splitlines() if "gpu-peer-memory" in line]
    assert peer and peer[0].split()[0] == "PASS", done.stdout
    assert "DMA-BUF: the open GPU kernel module on Linux 6.8.0" in peer[0]
