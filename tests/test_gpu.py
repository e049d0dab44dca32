"""The NCCL/CUDA path on a real GPU, declared as data; every case skips cleanly on machines without one.

Each case is a railbench command line and what its run directory must show. They run on the device
machine (one H200) with ``python -m pytest -m gpu``; CI has no GPU and skips them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.support import railbench

HAS_GPU = torch.cuda.is_available()


@dataclass(frozen=True)
class GpuCase:
    name: str
    args: tuple[str, ...]
    expect_exit: int = 0
    backend: str = "nccl"


CASES = [
    GpuCase("nccl-sweep-check", ("run", "--np", "1", "--backend", "nccl", "-c", "-b", "1K", "-e", "64M", "-f", "4")),
    GpuCase("nccl-graph", ("run", "--np", "1", "--backend", "nccl", "-c", "--graph", "-b", "1K", "-e", "64M",
                           "-f", "4")),
    GpuCase("auto-picks-nccl", ("run", "--np", "1", "-b", "1M", "-e", "1M", "--collectives", "all_reduce")),
    GpuCase("all-collectives", ("run", "--np", "1", "--backend", "nccl", "-c", "-b", "4K", "-e", "4M", "-f", "32",
                                "--collectives", "all_reduce,all_gather,reduce_scatter,alltoall,broadcast,sendrecv")),
]  # fmt: skip


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU (run on the device machine)")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gpu_case(case: GpuCase, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = railbench([*case.args, "--out", str(out), "--no-history"], cwd=tmp_path, timeout=600)
    assert proc.returncode == case.expect_exit, proc.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["backend"] == case.backend
    assert meta["versions"]["nccl"], "NCCL version recorded"
    assert list((out / "nccl").glob("*.log")), "NCCL_DEBUG_FILE written per rank"
    print(proc.stdout)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU (run on the device machine)")
def test_check_sees_the_gpu(tmp_path: Path) -> None:
    proc = railbench(["check", "--profile", "generic", "--json"], cwd=tmp_path, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert "gpu" in proc.stdout.lower()
