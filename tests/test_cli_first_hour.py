"""Issue 33, the first hour of a new user: the README's install does not pull the CUDA build of torch, and
``accept --profile lambda-1cc --np 2`` on a CPU machine says what is wrong with the machine (no RDMA device)
instead of refusing the profile's GPU-sized sweep for want of 32 GiB."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.profile.cluster import load_profile
from bench.sweep.config import DEFAULT_MAX_BYTES, RunConfig, cpu_sized, sized
from tests.support import REPO, railbench

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _setup_block() -> str:
    """The setup section's ``bash`` blocks, in order, one after the other."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("<!-- --8<-- [start:setup] -->") : readme.index("<!-- --8<-- [end:setup] -->")]
    return "".join(re.findall(r"```bash\n(.*?)```", section, flags=re.S))


def test_the_readme_installs_torch_from_the_cpu_index_before_railbench() -> None:
    """On Linux the public index's torch is the CUDA build (GBs of CUDA libraries); ``pip install -e .`` first
    would pull it. The README installs the pinned CPU wheel from PyTorch's CPU index, before railbench; and,
    as a command of its own, the plain pinned install for a site whose mirror or wheelhouse serves the CPU
    wheel (issue 43: there the index command retries PyTorch's index for minutes)."""
    commands = [line.split("#")[0].strip() for line in _setup_block().splitlines()]
    torches = [i for i, c in enumerate(commands) if c.startswith("pip install torch")]
    railbench_at = next(i for i, c in enumerate(commands) if c.startswith("pip install -e"))
    assert len(torches) == 2 and max(torches) < railbench_at
    from_index, plain = (commands[i].split() for i in torches)
    assert from_index[:3] == ["pip", "install", "torch==2.13.0"]
    assert from_index[from_index.index("--index-url") + 1] == CPU_INDEX
    assert plain == ["pip", "install", "torch==2.13.0"]
    readme = (REPO / "README.md").read_text()
    assert "reaches only a site mirror or a wheelhouse that serves the CPU wheel" in readme


def test_ci_installs_the_same_pinned_torch_first() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    pinned = re.search(r"^pip install (torch==\S+)", ci, re.M)
    assert pinned is not None and ci.index(pinned.group(0)) < ci.index("pip install -e")
    assert pinned.group(1) in _setup_block()


def test_cpu_ranks_without_e_sweep_to_the_cpu_default_and_say_why() -> None:
    one_cc = load_profile("lambda-1cc")
    assert sized(RunConfig(), one_cc).max_bytes == 8 << 30  # GPU ranks: the profile's own default
    config, note = cpu_sized(RunConfig(), one_cc, 2)
    assert config.max_bytes == DEFAULT_MAX_BYTES and note is not None
    assert "profile lambda-1cc sweeps to 8G" in note and "about 32 GiB" in note
    assert "stops at 64M, below the 256M its targets judge from (give -e to choose)" in note
    # -e given is the user's: kept (and refused by the memory check if it cannot fit)
    assert cpu_sized(RunConfig(max_bytes=8 << 30), one_cc, 2) == (RunConfig(max_bytes=8 << 30), None)
    # a CPU profile's own default is already a CPU size
    local = load_profile("local")
    assert cpu_sized(RunConfig(), local, 4) == (sized(RunConfig(), local), None)
    # -b above the CPU default: the sweep still has its first size
    assert cpu_sized(RunConfig(min_bytes=128 << 20), one_cc, 2)[0].max_bytes == 128 << 20


def _has_rdma_device() -> bool:
    root = Path("/sys/class/infiniband")
    return root.is_dir() and any(root.iterdir())


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(_has_rdma_device(), reason="shows what a node without an RDMA device is told")
def test_accept_on_a_cpu_machine_names_the_missing_rdma_device(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["accept", "--profile", "lambda-1cc", "--np", "2", "-n", "1", "-w", "0", "--collectives", "all_reduce"]
    done = railbench([*args, "--out", str(out), "--no-history"], timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "GiB is available" not in done.stderr
    assert done.stderr.startswith("railbench: note: -e not given: profile lambda-1cc sweeps to 8G")
    fails = [line for line in done.stdout.splitlines() if "FAIL" in line]
    assert "ib-devices" in fails[0] and "no RDMA device" in fails[0]
    record = json.loads((out / "run.json").read_text())
    assert record["verdict"] == "fail" and "no RDMA device" in record["reasons"][0]
    assert record["sweep"]["max_bytes"] == DEFAULT_MAX_BYTES
