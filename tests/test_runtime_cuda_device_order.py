"""Every rank railbench runs numbers its GPUs in PCI bus order (``CUDA_DEVICE_ORDER=PCI_BUS_ID``) where the site set
no order of its own (``bench.runtime.env.cuda_device_order``): CUDA's default numbers the fastest GPU first, and
local rank k must drive the GPU nvidia-smi and railbench's checks call GPU k. run.json records the value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port, railbench, rank_env

SWEEP = ["-b", "1K", "-e", "1K", "-n", "2", "-w", "1", "--no-history"]


@pytest.mark.mpi
@pytest.mark.slow
def test_ranks_under_railbenchs_own_mpirun_number_gpus_in_bus_order(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = railbench(["run", "--np", "2", *SWEEP, "--out", str(out)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


@pytest.mark.slow
def test_a_sites_own_order_is_kept_under_torchrun(tmp_path: Path) -> None:
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    cmd = [*torchrun, "--master-port", str(free_port()), "-m", "bench", "run", *SWEEP, "--out", str(out)]
    env = rank_env({"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["env"]["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"
